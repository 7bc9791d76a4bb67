"""HTTP API of the incident log (DESIGN §8). The organisation always comes from the token."""

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from services.incidents.domain import (
    AnchorUnavailable,
    DomainError,
    Incident,
    apply_event,
    check_anchor,
    new_state,
)
from services.incidents.store import AccessLog, DamagedLog, IncidentLog
from shared.auth import Principal
from shared.canonical import canonical_json, rfc3339
from shared.http import Problem
from shared.policy import Action, IncidentFacts, OrgTree, allowed, visible

Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]
FactValue = bool | int | Annotated[str, StringConstraints(max_length=500)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReportIn(Strict):
    category: Slug = Field(description="Guidance sub-theme id, e.g. vold-fysisk")
    title: Line
    description: Text | None = None
    occurred_at: AwareDatetime | None = Field(
        None,
        description="When it happened, with a time zone; left out, the time of the report",
    )
    place: Line | None = None
    unit_id: Slug
    affected: list[Slug] = Field(default_factory=list, max_length=50)
    severity: Literal["low", "medium", "high", "critical"]
    facts: dict[Slug, FactValue] = Field(default_factory=dict, max_length=30)
    content_version: Slug | None = None


class MeasureIn(Strict):
    measure_id: Slug | None = None
    title: Line | None = None
    status: Literal["done", "started", "not_applicable"]
    performed_at: AwareDatetime | None = None
    note: Text | None = None


class NoteIn(Strict):
    text: Text


class CorrectionIn(Strict):
    seq: int = Field(ge=1, description="The seq of the entry being corrected")
    reason: Text
    note: Text | None = None


class DeadlineMetIn(Strict):
    met_at: AwareDatetime | None = Field(default=None, description="When it was done; default now")
    note: Text | None = None


class PhaseIn(Strict):
    phase: Literal["akutt", "oppfolging"] = Field(
        description="The acute phase, or follow-up once the immediate danger is over"
    )
    note: Text | None = None


class CloseIn(Strict):
    summary: Text


class Written(BaseModel):
    id: str
    seq: int
    hash: str


class VerifyOut(BaseModel):
    valid: bool
    length: int
    head_hash: str
    first_invalid_seq: int | None
    reason: str | None = None
    anchor_checked: bool = Field(
        description="False when the anchor keeper did not answer; the chain alone was checked"
    )
    anchored_seq: int | None = None


AnchorLookup = Callable[[str, str], Awaitable[tuple[int, str] | None]]
"""(org_id, incident_id) -> the latest anchored (seq, hash), or None when there is none."""


def _written(incident: Incident) -> Response:
    """201 with `Written`, encoded directly: pydantic's response serialisation cost more here."""
    body = {"id": str(incident.id), "seq": incident.version, "hash": incident.head_hash}
    return Response(json.dumps(body).encode(), status_code=201, media_type="application/json")


def _not_found(incident_id: UUID) -> Problem:
    return Problem(404, "Incident not found", f"No incident {incident_id} in your organisation.")


def build_router(
    log: IncidentLog,
    caller: Callable[..., Awaitable[Principal]],
    anchor_lookup: AnchorLookup,
    tree: Callable[[str], OrgTree],
    access: AccessLog,
) -> APIRouter:
    """`tree(org)` gives the organisation's units for the access rules (shared.policy)."""
    router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])
    Caller = Annotated[Principal, Depends(caller)]

    def actor(who: Principal) -> dict[str, str]:
        return {"id": who.person_id, "name": who.name}

    def permitted(incident_id: UUID, who: Principal, action: Action) -> None:
        """Pass if `who` may do `action` on the incident: 404 outside the organisation, else 403.

        Raises DamagedLog when even the first event (which names the organisation) is unreadable.
        """
        facts = log.facts(incident_id, who.org_id)
        if facts is None:
            raise _not_found(incident_id)
        check(incident_id, who, action, facts)

    def check(incident_id: UUID, who: Principal, action: Action, facts: IncidentFacts) -> None:
        if not allowed(who, action, facts, tree(who.org_id)):
            raise Problem(
                403, "Not allowed", f"Your role does not allow this ({action}) on this incident."
            )
        if action in ("read", "export"):
            access.record(who.org_id, str(incident_id), who.person_id, who.name, action)

    def append(
        incident_id: UUID,
        who: Principal,
        kind: str,
        data: dict[str, Any],
        occurred_at: datetime | None = None,
        action: Action = "write",
    ) -> Response:
        """In a worker thread: the access rules, then the append (both block on the store)."""
        permitted(incident_id, who, action)
        try:
            incident = log.append(
                incident_id, who.org_id, kind, actor=actor(who), data=data, occurred_at=occurred_at
            )
        except DomainError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from exc
        if incident is None:
            raise _not_found(incident_id)
        return _written(incident)

    # The write endpoints are async and hop to a thread once, with asyncio's own executor: a
    # sync endpoint goes through anyio's thread pool, which cost the event loop (which also
    # serves every other request and the relay) about twice as much per request.

    @router.post("", status_code=201, response_model=Written)
    async def report(body: ReportIn, who: Caller) -> Response:
        if not allowed(who, "report", None, tree(who.org_id)):
            raise Problem(403, "Not allowed", "Your role cannot report incidents.")
        data = body.model_dump(exclude={"occurred_at"}, exclude_none=True)
        incident = await asyncio.to_thread(
            functools.partial(
                log.report,
                org_id=who.org_id,
                actor=actor(who),
                data=data,
                occurred_at=body.occurred_at,
            )
        )
        return _written(incident)

    @router.get("")
    def list_incidents(
        who: Caller, status: Literal["open", "closed"] | None = None
    ) -> list[dict[str, Any]]:
        entries = log.list_incidents(who.org_id, status)
        facts = [(e.id, IncidentFacts(e.unit_id, e.category, e.reported_by)) for e in entries]
        shown = set(visible(who, facts, tree(who.org_id)))
        return [vars(e) for e in entries if e.id in shown]

    @router.get("/{incident_id}")
    def get_incident(incident_id: UUID, who: Caller) -> Response:
        permitted(incident_id, who, "read")
        state = log.state_json(incident_id, who.org_id)
        if state is None:
            raise _not_found(incident_id)
        return Response(state, media_type="application/json")

    @router.post("/{incident_id}/measures", status_code=201, response_model=Written)
    async def log_measure(incident_id: UUID, body: MeasureIn, who: Caller) -> Response:
        if not body.measure_id and not body.title:
            raise Problem(422, "Invalid request", "Give measure_id or title (or both).")
        data = body.model_dump(exclude={"performed_at"}, exclude_none=True)
        data["performed_by"] = actor(who)
        return await asyncio.to_thread(
            append, incident_id, who, "MeasureLogged", data, body.performed_at
        )

    @router.post("/{incident_id}/notes", status_code=201, response_model=Written)
    async def add_note(incident_id: UUID, body: NoteIn, who: Caller) -> Response:
        data = {"text": body.text}
        return await asyncio.to_thread(append, incident_id, who, "NoteAdded", data, None, "note")

    @router.post("/{incident_id}/corrections", status_code=201, response_model=Written)
    async def correct(incident_id: UUID, body: CorrectionIn, who: Caller) -> Response:
        data: dict[str, Any] = {"corrects_seq": body.seq, "reason": body.reason}
        if body.note:
            data["note"] = body.note
        return await asyncio.to_thread(append, incident_id, who, "EntryCorrected", data)

    @router.post(
        "/{incident_id}/deadlines/{deadline_id}/met", status_code=201, response_model=Written
    )
    async def deadline_met(
        incident_id: UUID, deadline_id: Slug, body: DeadlineMetIn, who: Caller
    ) -> Response:
        """Mark a duty done; notify stops reminding the responsible person."""
        data: dict[str, Any] = {"deadline_id": deadline_id, "met_by": actor(who)}
        if body.note:
            data["note"] = body.note
        return await asyncio.to_thread(
            append, incident_id, who, "DeadlineMet", data, body.met_at, "deadline"
        )

    @router.post("/{incident_id}/phase", status_code=201, response_model=Written)
    async def change_phase(incident_id: UUID, body: PhaseIn, who: Caller) -> Response:
        """Move the incident from the acute phase to follow-up (or back); closing ends it."""
        data = body.model_dump(exclude_none=True)
        return await asyncio.to_thread(append, incident_id, who, "PhaseChanged", data)

    @router.post("/{incident_id}/close", status_code=201, response_model=Written)
    async def close(incident_id: UUID, body: CloseIn, who: Caller) -> Response:
        data = {"summary": body.summary}
        return await asyncio.to_thread(append, incident_id, who, "IncidentClosed", data)

    @router.get("/{incident_id}/timeline")
    def timeline(
        incident_id: UUID,
        who: Caller,
        as_of: Annotated[AwareDatetime | None, Query(description="RFC 3339")] = None,
        until_seq: Annotated[int | None, Query(ge=0)] = None,
    ) -> Response:
        if as_of is not None and until_seq is not None:
            raise Problem(422, "Invalid request", "Give as_of or until_seq, not both.")
        permitted(incident_id, who, "read")
        events = log.exported_events(incident_id, until_seq=until_seq or None)
        if until_seq == 0:
            events = []
        if as_of is not None:
            cutoff = rfc3339(as_of)
            # recorded_at has one fixed-width UTC form, so text order is time order.
            events = [e for e in events if e["recorded_at"] <= cutoff]
        state = new_state(str(incident_id))
        for event in events:
            apply_event(state, event)
        # Straight to JSON: FastAPI's generic encoder costs more than the replay itself here.
        body = json.dumps({"incident": state, "events": events}, ensure_ascii=False)
        return Response(body.encode(), media_type="application/json")

    @router.get("/{incident_id}/verify", response_model=VerifyOut)
    async def verify(incident_id: UUID, who: Caller) -> VerifyOut:
        try:
            await asyncio.to_thread(permitted, incident_id, who, "export")
            owner_unknown = False
        except DamagedLog:
            owner_unknown = True
        # The anchor first, then the events: anchors only follow committed events, so an event
        # appended meanwhile makes the stream longer than the anchor, never shorter (which
        # would read as a truncation).
        try:
            anchor = await anchor_lookup(who.org_id, str(incident_id))
        except AnchorUnavailable:
            anchor, checked = None, False
        else:
            checked = True
        if owner_unknown:
            # The first event, which names the organisation, is unreadable. The anchor keeper
            # knows apart from the store that this incident is the caller's organisation's;
            # without its unit, only the roles that see every incident may verify it.
            if anchor is None:
                raise _not_found(incident_id)
            check(incident_id, who, "export", IncidentFacts("", "", ""))
        report, hashes = await asyncio.to_thread(log.verify, incident_id)
        valid, first_bad, reason = report.valid, report.first_invalid_seq, report.reason
        if anchor is not None:
            mismatch = check_anchor(len(hashes), hashes, anchor[0], anchor[1])
            if mismatch is not None and (first_bad is None or mismatch[0] < first_bad):
                valid, (first_bad, reason) = False, mismatch
        return VerifyOut(
            valid=valid,
            length=report.length,
            head_hash=report.head_hash,
            first_invalid_seq=first_bad,
            reason=reason,
            anchor_checked=checked,
            anchored_seq=anchor[0] if anchor else None,
        )

    @router.get(
        "/{incident_id}/export",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "The events as JSON Lines, one canonical JSON object per line",
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            }
        },
    )
    def export(incident_id: UUID, who: Caller) -> StreamingResponse:
        permitted(incident_id, who, "export")
        events = log.exported_events(incident_id)

        def lines() -> Iterator[bytes]:
            for event in events:
                yield canonical_json(event) + b"\n"

        return StreamingResponse(
            lines(),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="incident-{incident_id}.jsonl"'},
        )

    @router.get("/{incident_id}/access")
    def access_log(incident_id: UUID, who: Caller) -> list[dict[str, str]]:
        """Who read or exported this incident's log, and when: for the organisation's auditors."""
        if log.facts(incident_id, who.org_id) is None:
            raise _not_found(incident_id)
        if not who.has_any("auditor"):
            raise Problem(403, "Not allowed", "Only an auditor can see who read a log.")
        return access.reads(who.org_id, str(incident_id))

    return router
