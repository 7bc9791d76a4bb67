"""Canonical JSON and the hash chain of DESIGN §8.

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


def verify_chain(
    events: Iterable[Mapping[str, Any]], *, after_seq: int = 0, after_hash: str = GENESIS_HASH
) -> ChainReport:
    """Check seq numbering, prev_hash links and every hash; stop at the first bad event.

    `after_seq`/`after_hash` continue a chain whose first `after_seq` events were checked before.
    """
    prev = after_hash
    length = after_seq
    for expected_seq, event in enumerate(events, start=after_seq + 1):
        seq = event.get("seq")
        if seq != expected_seq:
            return ChainReport(False, length, prev, expected_seq, f"expected seq {expected_seq}")
        if event.get("prev_hash") != prev:
            return ChainReport(False, length, prev, expected_seq, "prev_hash does not link")
        if event.get("hash") != event_hash(event):
            return ChainReport(False, length, prev, expected_seq, "hash does not match content")
        prev = str(event["hash"])
        length = expected_seq
    return ChainReport(True, length, prev)
