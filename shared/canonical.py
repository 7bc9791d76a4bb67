"""Canonical JSON and the hash chain (README, "Verifying a log yourself").

Standard library only, on purpose: this module is the reference for anyone who wants to write their
own verifier, and `kriselogg verify` must run on a machine that has nothing but Python.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> bytes:
    """UTF-8, sorted keys, no insignificant whitespace, non-ASCII kept as is."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the only timestamp form inside hashed events."""
    if moment.tzinfo is None:
        raise ValueError("timestamps in events must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(event: Mapping[str, Any]) -> str:
    """`hash` = SHA-256 of the canonical JSON of the event without its `hash` field."""
    return sha256_hex(canonical_json({k: v for k, v in event.items() if k != "hash"}))


@dataclass(frozen=True)
class ChainReport:
    valid: bool
    length: int
    head_hash: str
    first_invalid_seq: int | None = None
    reason: str | None = None


_FIRST_EVENT_TYPE = "IncidentReported"


def verify_chain(
    events: Iterable[Mapping[str, Any]], *, after_seq: int = 0, after_hash: str = GENESIS_HASH
) -> ChainReport:
    """Check seq numbering, prev_hash links and every hash; stop at the first bad event.

    `after_seq`/`after_hash` continue a chain whose first `after_seq` events were checked before.
    Duplicate keys cannot be seen in a Mapping: whoever parses the JSON must refuse them.
    """
    prev = after_hash
    length = after_seq
    for expected_seq, event in enumerate(events, start=after_seq + 1):
        seq = event.get("seq")
        # bool is an int and True == 1 == 1.0: `"seq": true` or `1.0` must not pass as seq 1,
        # since another verifier (or a stricter schema) would read that line differently.
        if isinstance(seq, bool) or not isinstance(seq, int):
            why = "seq is missing" if "seq" not in event else "seq is not an integer"
            return ChainReport(False, length, prev, expected_seq, why)
        if seq != expected_seq:
            return ChainReport(False, length, prev, expected_seq, f"expected seq {expected_seq}")
        if event.get("prev_hash") != prev:
            return ChainReport(False, length, prev, expected_seq, "prev_hash does not link")
        if event.get("hash") != event_hash(event):
            return ChainReport(False, length, prev, expected_seq, "hash does not match content")
        # An incident always starts with its report; a chain that starts otherwise (a cut-off
        # tail relinked from the genesis hash, say) is not a whole incident. Only checkable
        # when the check starts at seq 1.
        if expected_seq == 1 and event.get("type") != _FIRST_EVENT_TYPE:
            return ChainReport(
                False, length, prev, 1, f"the first event is not {_FIRST_EVENT_TYPE}"
            )
        prev = str(event["hash"])
        length = expected_seq
    return ChainReport(True, length, prev)


def recorded_by(events: Iterable[Mapping[str, Any]], moment: datetime) -> int:
    """How many events, from the first, were recorded by `moment`: the log as it stood then.

    A prefix in log order, never a filter: `recorded_at` is each writer's own wall clock, and
    two replicas a little apart can record event 5 "before" event 4. Filtering would then show
    5 without 4, and the timeline and the log form as of one moment could disagree. The log
    as of a moment ends at the first event recorded after it.
    """
    count = 0
    for event in events:
        if datetime.fromisoformat(str(event["recorded_at"])) > moment:
            break
        count += 1
    return count
