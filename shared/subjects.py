"""Subject and stream names on the bus: `kriselogg.<org_id>.<source>.<EventName>`.

The root (`kriselogg`) is the installation's bus namespace. It can be changed so that several
installations (staging beside production, parallel test runs) share one NATS cluster untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Source = Literal["incident", "alert", "document", "deadline", "log"]

# NATS subject tokens may not contain '.', '*', '>' or whitespace; organisation ids are slugs.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_token(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"not a valid subject token: {value!r}")
    return value


@dataclass(frozen=True)
class Subjects:
    root: str = "kriselogg"

    def __post_init__(self) -> None:
        check_token(self.root)

    @property
    def stream(self) -> str:
        return self.root.upper().replace("-", "_")

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.stream}_DLQ"

    @property
    def dead_letter_root(self) -> str:
        return f"{self.root}-dlq"

    def subject(self, org_id: str, source: Source, event_name: str) -> str:
        return f"{self.root}.{check_token(org_id)}.{source}.{check_token(event_name)}"

    def all_orgs(self, source: Source, event_name: str = ">") -> str:
        """Filter for one kind of message across organisations (a consumer's filter subject)."""
        tail = event_name if event_name == ">" else check_token(event_name)
        return f"{self.root}.*.{source}.{tail}"

    def request(self, org_id: str, name: str) -> str:
        """Request-reply subjects live outside the stream, or JetStream would answer them."""
        return f"{self.root}-rpc.{check_token(org_id)}.{check_token(name)}"

    def all_orgs_request(self, name: str) -> str:
        return f"{self.root}-rpc.*.{check_token(name)}"

    def dead_letter(self, service: str, reason_kind: str) -> str:
        return f"{self.dead_letter_root}.{check_token(service)}.{check_token(reason_kind)}"
