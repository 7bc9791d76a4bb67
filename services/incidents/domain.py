"""The incident aggregate, its events and the state they add up to. Pure: no I/O.

Every event is stored with the fields of its exported form and with its place in the
hash chain, computed when the event is created, so that what was hashed is exactly what is stored
and later exported.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from shared.canonical import GENESIS_HASH, event_hash, rfc3339

# The user commands a closed incident still accepts; system facts (alerts, deadlines, documents)
# keep arriving after closing, e.g. the final log form issued on close.
OPEN_ONLY = frozenset({"MeasureLogged", "PhaseChanged", "IncidentClosed"})
# The phases a leader moves an open incident between; closing sets "avsluttet".
PHASES = ("akutt", "oppfolging")  # the ids of the guidance catalogue's phases


class DomainError(Exception):
    """A command that the incident's rules refuse; `status` is the HTTP answer it maps to."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def new_state(incident_id: str) -> dict[str, Any]:
    return {
        "id": incident_id,
        "status": "open",
        "phase": "akutt",
        "measures": [],
        "notes": [],
        "corrections": [],
        "alerts": {},
        "deadlines": {},
        "documents": [],
        "summary": None,
        "closed_at": None,
        "length": 0,
        "head_hash": GENESIS_HASH,
    }


def apply_event(state: dict[str, Any], event: dict[str, Any]) -> None:
    """Fold one exported event into the incident's state (used live and for as-of replay)."""
    kind = event["type"]
    data = event["data"]
    entry_base = {
        "seq": event["seq"],
        "recorded_at": event["recorded_at"],
        "occurred_at": event.get("occurred_at"),
        "actor": event["actor"],
    }
    if kind == "IncidentReported":
        state.update({k: v for k, v in data.items()})
        state["org_id"] = event["org_id"]
        state["reported_by"] = event["actor"]
        state["reported_at"] = event["recorded_at"]
        state["occurred_at"] = event.get("occurred_at")
    elif kind == "FactsRecorded":
        state["facts"] = {**(state.get("facts") or {}), **data["facts"]}
    elif kind == "MeasureLogged":
        state["measures"].append({**entry_base, **data, "corrections": []})
    elif kind == "NoteAdded":
        state["notes"].append({**entry_base, **data, "corrections": []})
    elif kind == "EntryCorrected":
        correction = {**entry_base, **data}
        state["corrections"].append(correction)
        for entry in (*state["measures"], *state["notes"]):
            if entry["seq"] == data["corrects_seq"]:
                entry["corrections"].append(event["seq"])
    elif kind in ("RecipientAlerted", "AlertAcknowledged", "AlertEscalated"):
        alert = state["alerts"].setdefault(data["alert_id"], {"alert_id": data["alert_id"]})
        if kind == "RecipientAlerted":
            alert.update(
                recipient=data["recipient"],
                role=data["role"],
                channel=data["channel"],
                status="sent",
                alerted_at=event["occurred_at"] or event["recorded_at"],
                seq=event["seq"],
            )
        elif kind == "AlertAcknowledged":
            alert.update(status="acknowledged", acknowledged_at=event["occurred_at"])
        else:
            alert.update(status="escalated", escalation_reason=data.get("reason"))
    elif kind == "DeadlineSet":
        state["deadlines"][data["deadline_id"]] = {**data, "met_at": None, "seq": event["seq"]}
    elif kind == "DeadlineMet":
        deadline = state["deadlines"].get(data["deadline_id"])
        if deadline is not None:
            deadline["met_at"] = event.get("occurred_at") or event["recorded_at"]
    elif kind == "PhaseChanged":
        state["phase"] = data["phase"]
    elif kind == "DocumentIssued":
        state["documents"].append({**entry_base, **data})
    elif kind == "IncidentClosed":
        state["status"] = "closed"
        state["phase"] = "avsluttet"
        state["summary"] = data["summary"]
        state["closed_at"] = event["recorded_at"]
    state["length"] = event["seq"]
    state["head_hash"] = event["hash"]
    state["updated_at"] = event["recorded_at"]


class Incident(Aggregate):
    """One incident's log. Commands check the rules, then trigger one hash-chained event."""

    class Event(Aggregate.Event):
        org_id: str
        actor: dict[str, str]
        recorded_at: str
        occurred_at: str | None
        data: dict[str, Any]
        prev_hash: str
        hash: str

        def export(self) -> dict[str, Any]:
            return {
                "seq": self.originator_version,
                "type": type(self).__name__,
                "incident_id": str(self.originator_id),
                "org_id": self.org_id,
                "recorded_at": self.recorded_at,
                "occurred_at": self.occurred_at,
                "actor": dict(self.actor),
                "data": copy.deepcopy(self.data),
                "prev_hash": self.prev_hash,
                "hash": self.hash,
            }

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Incident)
            aggregate.fold(self.export())

    class IncidentReported(Event, Aggregate.Created):
        pass

    class FactsRecorded(Event):
        pass

    class MeasureLogged(Event):
        pass

    class NoteAdded(Event):
        pass

    class EntryCorrected(Event):
        pass

    class RecipientAlerted(Event):
        pass

    class AlertAcknowledged(Event):
        pass

    class AlertEscalated(Event):
        pass

    class DeadlineSet(Event):
        pass

    class DeadlineMet(Event):
        pass

    class PhaseChanged(Event):
        pass

    class DocumentIssued(Event):
        pass

    class IncidentClosed(Event):
        pass

    EVENT_TYPES: ClassVar[dict[str, type[Incident.Event]]] = {}

    def __init__(self, **_: Any) -> None:
        # The Created event's apply() builds the state; the constructor only needs to exist.
        self.state: dict[str, Any] = new_state(str(self.id))
        # fact id -> seq; a dict, not a set, because snapshots are stored as JSON.
        self.fact_ids: dict[str, int] = {}

    def fold(self, exported: dict[str, Any]) -> None:
        if not hasattr(self, "state"):
            self.state = new_state(str(self.id))
            self.fact_ids = {}
        apply_event(self.state, exported)
        fact_id = exported["data"].get("fact_id")
        if fact_id:
            self.fact_ids[fact_id] = exported["seq"]

    @property
    def org_id(self) -> str:
        return str(self.state["org_id"])

    @property
    def head_hash(self) -> str:
        return str(self.state["head_hash"])

    @property
    def is_closed(self) -> bool:
        return bool(self.state["status"] == "closed")

    # --- commands -------------------------------------------------------------------------

    @classmethod
    def report(
        cls,
        *,
        org_id: str,
        actor: dict[str, str],
        data: dict[str, Any],
        occurred_at: datetime,
        now: datetime,
        incident_id: UUID | None = None,
    ) -> Incident:
        incident_id = incident_id or uuid4()
        fields = _chained(
            "IncidentReported", incident_id, 1, GENESIS_HASH, org_id, actor, data, occurred_at, now
        )
        return cls._create(cls.IncidentReported, id=incident_id, **fields)

    def record(
        self,
        kind: str,
        *,
        actor: dict[str, str],
        data: dict[str, Any],
        now: datetime,
        occurred_at: datetime | None = None,
    ) -> None:
        event_class = self.EVENT_TYPES.get(kind)
        if event_class is None or kind == "IncidentReported":
            raise DomainError(422, "Ukjent oppføring", f"{kind} kan ikke føres i loggen.")
        if self.is_closed and kind in OPEN_ONLY:
            raise DomainError(
                409,
                "Hendelsen er avsluttet",
                "En avsluttet hendelse tar bare imot notater og rettelser.",
            )
        if kind == "DeadlineMet":
            deadline = self.state["deadlines"].get(data.get("deadline_id"))
            if deadline is None:
                raise DomainError(
                    404,
                    "Fristen finnes ikke",
                    f"Fristen {data.get('deadline_id')} er ikke satt på denne hendelsen.",
                )
            if deadline["met_at"] is not None:
                raise DomainError(
                    409,
                    "Fristen er allerede oppfylt",
                    f"Den ble markert som oppfylt {deadline['met_at']}.",
                )
        if kind == "PhaseChanged":
            phase = data.get("phase")
            if phase not in PHASES:
                raise DomainError(422, "Ukjent fase", f"Velg en av: {', '.join(PHASES)}.")
            if phase == self.state["phase"]:
                raise DomainError(
                    409, "Fasen er uendret", f"Hendelsen er allerede i fasen {phase}."
                )
        if kind == "EntryCorrected":
            target = data.get("corrects_seq")
            if not isinstance(target, int) or not 1 <= target <= self.version:
                raise DomainError(
                    422, "Oppføringen finnes ikke", f"Oppføring {target} finnes ikke i hendelsen."
                )
        fields = _chained(
            kind,
            self.id,
            self.version + 1,
            self.head_hash,
            self.org_id,
            actor,
            data,
            occurred_at,
            now,
        )
        self.trigger_event(event_class, **fields)


Incident.EVENT_TYPES.update(
    {
        name: value
        for name, value in vars(Incident).items()
        if isinstance(value, type)
        and issubclass(value, Incident.Event)
        and value is not Incident.Event
    }
)


def _chained(
    kind: str,
    incident_id: UUID,
    seq: int,
    prev_hash: str,
    org_id: str,
    actor: dict[str, str],
    data: dict[str, Any],
    occurred_at: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    exported = {
        "seq": seq,
        "type": kind,
        "incident_id": str(incident_id),
        "org_id": org_id,
        "recorded_at": rfc3339(now),
        "occurred_at": rfc3339(occurred_at) if occurred_at else None,
        "actor": {"id": actor["id"], "name": actor["name"]},
        "data": data,
        "prev_hash": prev_hash,
    }
    exported["hash"] = event_hash(exported)
    return {
        "org_id": org_id,
        "actor": exported["actor"],
        "recorded_at": exported["recorded_at"],
        "occurred_at": exported["occurred_at"],
        "data": data,
        "prev_hash": prev_hash,
        "hash": exported["hash"],
    }


class AnchorUnavailable(Exception):
    """The anchor keeper did not answer: the chain can be checked, the anchor cannot."""


def check_anchor(
    stored_length: int, hashes: list[str], anchored_seq: int, anchored_hash: str
) -> tuple[int, str] | None:
    """Compare a stream with its latest anchor: (first bad seq, reason), or None if consistent.

    The anchor was taken from the bus when the event was first published, so a store that was
    cut short, or rewritten into another consistent chain, no longer matches it.
    """
    if anchored_seq > stored_length:
        return (
            stored_length + 1,
            f"truncated: the log ends at seq {stored_length}, but seq {anchored_seq} was anchored",
        )
    if anchored_seq and hashes[anchored_seq - 1] != anchored_hash:
        return (
            anchored_seq,
            f"rewritten: the hash of seq {anchored_seq} differs from the anchored hash",
        )
    return None
