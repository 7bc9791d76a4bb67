"""The documents service's own store (SQLite in its data dir): the anchors of incident heads.

Anchors live here, not beside the incident events, so that whoever can rewrite the event store
still cannot make a truncated or rewritten log verify (DESIGN §4, tamper evidence).
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS anchors (
  incident_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,
  anchored_at TEXT NOT NULL);
"""


class AnchorStore:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def anchor(self, org_id: str, incident_id: str, seq: int, hash_: str) -> None:
        """Keep the highest seq seen; events may arrive out of order or twice."""
        with self._lock:
            self._db.execute(
                "INSERT INTO anchors VALUES (?, ?, ?, ?, ?) ON CONFLICT (incident_id) DO UPDATE "
                "SET seq = excluded.seq, hash = excluded.hash, anchored_at = excluded.anchored_at "
                "WHERE excluded.seq > anchors.seq",
                (incident_id, org_id, seq, hash_, datetime.now(UTC).isoformat()),
            )
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, org_id: str, incident_id: str, seq: int, timeout: float) -> bool:
        """Block until the incident is anchored at `seq` or later (for callers that must know)."""

        def reached() -> bool:
            latest = self.latest(org_id, incident_id)
            return latest is not None and latest[0] >= seq

        with self._changed:
            return self._changed.wait_for(reached, timeout)

    def latest(self, org_id: str, incident_id: str) -> tuple[int, str, str] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT seq, hash, anchored_at FROM anchors WHERE incident_id = ? AND org_id = ?",
                (incident_id, org_id),
            ).fetchone()
        return (int(row[0]), str(row[1]), str(row[2])) if row else None

    def ping(self) -> bool:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()
        return True

    def close(self) -> None:
        # Under the lock: a statement still running in a worker thread (its awaiting task may
        # have been cancelled) must finish first; closing under it crashes SQLite.
        with self._lock:
            self._db.close()
