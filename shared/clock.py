"""The one seam for "now".

Deadlines, reminders, escalation, absences, token and link expiry and working days all ask a
`Clock`, never the operating system directly, so a test can put the clock where it needs it
(a Saturday night, the night summer time ends, a year from now) and the code runs exactly as it
would then. Each service gets its own clock: services on separate hosts do not share one, and
none of them reads the time off the bus (JetStream's timestamps are the NATS server's clock).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


class Clock:
    """The system clock. Subclass it to move time in tests; everything else calls `now()`."""

    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        return datetime.now(UTC)

    def time(self) -> float:
        """Seconds since the epoch, for token and link expiry."""
        return self.now().timestamp()

    def today(self, timezone: str) -> date:
        """The calendar day it is now in `timezone` (absences and working days are local)."""
        return self.now().astimezone(ZoneInfo(timezone)).date()


SYSTEM_CLOCK = Clock()


class ManualClock(Clock):
    """A clock that stands still until told to move: for tests of timers without waiting.

    Thread-safe, since stores ask for the time from worker threads.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("a ManualClock needs a timezone-aware time")
        with self._lock:
            self._now = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now


class OffsetClock(Clock):
    """The system clock shifted by a fixed amount: a host whose clock is off, or a test that
    runs "a year from now" while time keeps flowing (timers still fire in real seconds)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset
