"""Subject names on the bus: `kriselogg.<org_id>.<source>.<EventName>` (DESIGN §5)."""

from __future__ import annotations

import re
from typing import Literal

STREAM = "KRISELOGG"
ROOT = "kriselogg"
DEAD_LETTER_ROOT = "kriselogg-dlq"
Source = Literal["incident", "alert", "document", "anchor"]

# NATS subject tokens may not contain '.', '*', '>' or whitespace; organisation ids are slugs.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_token(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"not a valid subject token: {value!r}")
    return value


def subject(org_id: str, source: Source, event_name: str) -> str:
    return f"{ROOT}.{check_token(org_id)}.{source}.{check_token(event_name)}"


def all_orgs(source: Source, event_name: str = ">") -> str:
    """Filter for one kind of message across organisations (a consumer's filter subject)."""
    tail = event_name if event_name == ">" else check_token(event_name)
    return f"{ROOT}.*.{source}.{tail}"


def dead_letter(service: str, reason_kind: str) -> str:
    return f"{DEAD_LETTER_ROOT}.{check_token(service)}.{check_token(reason_kind)}"
