"""HTTP API of the incident log. The organisation always comes from the token."""

import asyncio
import base64
import functools
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from services.incidents.domain import (
    AnchorUnavailable,
    DomainError,
    Incident,
    apply_event,
    check_anchor,
    new_state,
)
from services.incidents.store import (
    AccessLog,
    DamagedLog,
    IdTaken,
    IncidentLog,
    Leaf,
    OrgLogs,
)
from shared.auth import Principal
from shared.canonical import canonical_json, recorded_by
from shared.http import Problem
from shared.law import registry as law_registry
from shared.policy import Action, IncidentFacts, OrgTree, allowed, visible
from shared.schemas import Actor, IncidentEventV1

Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]
# JSON's safe integers only (RFC 8785 / I-JSON): a larger one reads differently in JavaScript
# and many other verifiers, so the hashed event would not be the same bytes there.
MAX_SAFE = 2**53 - 1
SafeInt = Annotated[StrictInt, Field(ge=-MAX_SAFE, le=MAX_SAFE)]
# Strict: in lax mode 1, 1.0, "true" and "yes" all became `true` in the log, a fact the person
# never gave; a yes / no fact is JSON true, false or null.
FactValue = StrictBool | SafeInt | Annotated[StrictStr, StringConstraints(max_length=500)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


EARLIEST_YEAR, LATEST_YEAR = 1900, 2199
FUTURE_SLACK = timedelta(days=1)
"""How far ahead of the service's clock a time of something that happened may lie (clock skew,
a time zone typed wrong); beyond that it is a typo."""


def _plausible_year(value: datetime | date) -> datetime | date:
    # A typo such as 0202 or 9999 would be stored, and then break every date computed from it.
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"året må være mellom {EARLIEST_YEAR} og {LATEST_YEAR}")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(_plausible_year)]
Day = Annotated[date, AfterValidator(_plausible_year)]


INCIDENT_ID = "0b6f6a52-4a3e-4c9e-9f7e-2d1c1f0e8a11"
HASH = "9f2c4e1a7b3d5f60e8a1c2b3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607"
AT = "2026-03-02T09:15:00Z"
SLUG = "Letters, digits and _ . : - (at most 100)"


def _fact_doc(fact_id: str) -> str:
    fact = next(f for f in law_registry().facts if f.id == fact_id)
    duties = [p.short for p in law_registry().duties() if fact_id in p.duty.trigger.facts]  # type: ignore[union-attr]
    starts = f" Starts: {', '.join(dict.fromkeys(duties))}." if duties else ""
    kind = "A date (YYYY-MM-DD)" if fact.type == "date" else "true (yes), false (no)"
    return f"{fact.description} {kind}, or null / left out while not known.{starts}"


FACTS = (
    "What is known about the harm, each yes / no / unknown (true / false / null; a key left out "
    "is unknown too). These facts, with the category's kind (work environment or personal), "
    "start the legal duties of the registry (docs/legal.md); severity starts none. A fact "
    "learnt later is added with POST /api/v1/incidents/{id}/facts, and its duties start then. "
    "Other keys (at most 30 in all, values true, false, null, a number or a text of at most "
    "500 characters) are kept in the log as given."
)
FACTS_EXAMPLE: dict[str, JsonValue] = {
    "death": False,
    "serious_injury": False,
    "serious_psychological_injury": False,
    "injury": True,
    "sick_leave_from": "2026-03-03",
    "police_involved": True,
}


class Facts(BaseModel):
    """Yes / no / unknown facts of the harm; see `facts` of ReportIn."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [FACTS_EXAMPLE]})
    death: StrictBool | None = Field(default=None, description=_fact_doc("death"), examples=[False])
    serious_injury: StrictBool | None = Field(
        default=None, description=_fact_doc("serious_injury"), examples=[False]
    )
    serious_psychological_injury: StrictBool | None = Field(
        default=None, description=_fact_doc("serious_psychological_injury"), examples=[None]
    )
    injury: StrictBool | None = Field(
        default=None, description=_fact_doc("injury"), examples=[True]
    )
    sick_leave_from: Day | None = Field(
        default=None, description=_fact_doc("sick_leave_from"), examples=["2026-03-03"]
    )
    sick_leave_full: StrictBool | None = Field(
        default=None, description=_fact_doc("sick_leave_full"), examples=[True]
    )
    police_involved: StrictBool | None = Field(
        default=None, description=_fact_doc("police_involved"), examples=[True]
    )
    consent_safety_rep: StrictBool | None = Field(
        default=None, description=_fact_doc("consent_safety_rep"), examples=[None]
    )

    @model_validator(mode="after")
    def _other_keys(self) -> "Facts":
        extra = self.model_extra or {}
        if len(self.model_fields_set) + len(extra) > 30:
            raise ValueError("høyst 30 opplysninger")
        for key, value in extra.items():
            _EXTRA_KEY.validate_python(key)
            _EXTRA_VALUE.validate_python(value)
        return self

    def given(self) -> dict[str, Any]:
        """The facts as given, in JSON form: unknown (null) kept, keys left out left out."""
        return self.model_dump(mode="json", exclude_unset=True)


_EXTRA_KEY: TypeAdapter[str] = TypeAdapter(Slug)
_EXTRA_VALUE: TypeAdapter[Any] = TypeAdapter(FactValue | None)


class ReportIn(Strict):
    """A new incident: what happened, where, to whom, and what is known of the harm."""

    category: Slug = Field(
        description="Guidance sub-theme id, e.g. vold-fysisk (GET /api/v1/guidance/themes). "
        + SLUG,
        examples=["vold-fysisk"],
    )
    title: Line = Field(
        description="What happened, in one line (1-200 characters)",
        examples=["Slått og truet av bruker under hjemmebesøk"],
    )
    description: Text | None = Field(
        default=None,
        description="What happened, in more words (at most 10 000 characters)",
        examples=["Brukeren ble urolig og slo den ansatte i ansiktet. Den ansatte gikk ut."],
    )
    occurred_at: Moment | None = Field(
        default=None,
        description="When it happened, with a time zone; left out, the time of the report",
        examples=["2026-03-02T10:05:00+01:00"],
    )
    place: Line | None = Field(
        default=None,
        description="Where it happened (1-200 characters)",
        examples=["Storgata 1, Tromsø"],
    )
    unit_id: Slug = Field(
        description=f"The unit where it happened, an id of the organisation's directory. {SLUG}",
        examples=["u-nord"],
    )
    affected: list[Slug] = Field(
        default_factory=list,
        max_length=50,
        description="Person ids of those it happened to (at most 50)",
        examples=[["p-ansatt"]],
    )
    severity: Literal["low", "medium", "high", "critical"] = Field(
        description="How serious it is, as the reporter sees it", examples=["high"]
    )
    facts: Facts = Field(default_factory=Facts, description=FACTS, examples=[FACTS_EXAMPLE])
    content_version: Slug | None = Field(
        default=None,
        description="The guidance version the reporter followed (`content_version` of the "
        "guidance answers)",
        examples=["a52e2d54986c13a0"],
    )
    id: UUID | None = Field(
        default=None,
        description="The incident's id, chosen by the client (a random UUID) so that the "
        "report can safely be sent again: a resend by the same person answers 200 with the "
        "incident it opened; left out, kriselogg chooses it",
        examples=[INCIDENT_ID],
    )


class MeasureIn(Strict):
    """A measure taken (or started, or found not to apply): from the guidance, or one's own."""

    measure_id: Slug | None = Field(
        default=None,
        description="The guidance measure's id; give it, a title, or both",
        examples=["risikovurdering"],
    )
    title: Line | None = Field(
        default=None,
        description="The measure in words; needed when it is not one of the guidance",
        examples=["Ringte politiet"],
    )
    status: Literal["done", "started", "not_applicable"] = Field(
        description="Done, started, or not applicable to this incident", examples=["done"]
    )
    performed_at: Moment | None = Field(
        default=None,
        description="When it was done, with a time zone; left out, now",
        examples=["2026-03-02T10:20:00+01:00"],
    )
    note: Text | None = Field(
        default=None,
        description="Anything to add (at most 10 000 characters)",
        examples=["Politiet kom."],
    )


class FactsIn(Strict):
    facts: Facts = Field(description="The facts learnt, each yes / no / unknown")


class NoteIn(Strict):
    text: Text = Field(
        description="The note (1-10 000 characters)",
        examples=["Snakket med den ansatte; hun ønsker oppfølging fra bedriftshelsetjenesten."],
    )


class CorrectionIn(Strict):
    """A correction of an entry: the entry stays in the log, marked as corrected."""

    seq: StrictInt = Field(
        ge=1, le=MAX_SAFE, description="The seq of the entry being corrected", examples=[9]
    )
    reason: Text = Field(
        description="Why it is corrected (1-10 000 characters)", examples=["Feil tidspunkt"]
    )
    note: Text | None = Field(
        default=None,
        description="What is right instead (at most 10 000 characters)",
        examples=["Tiltaket ble utført kl. 10.40, ikke 10.20."],
    )


class DeadlineMetIn(Strict):
    met_at: Moment | None = Field(
        default=None,
        description="When it was done; default now",
        examples=["2026-03-03T08:30:00+01:00"],
    )
    note: Text | None = Field(
        default=None,
        description="How it was done (at most 10 000 characters)",
        examples=["Registrert i avvikssystemet, sak 2026-114."],
    )


class PhaseIn(Strict):
    phase: Literal["akutt", "oppfolging"] = Field(
        description="The acute phase, or follow-up once the immediate danger is over",
        examples=["oppfolging"],
    )
    note: Text | None = Field(
        default=None,
        description="Why (at most 10 000 characters)",
        examples=["Faren er over; videre oppfølging."],
    )


class CloseIn(Strict):
    summary: Text = Field(
        description="How the incident ended and what was learnt (1-10 000 characters)",
        examples=["Den ansatte er tilbake i arbeid. Rutinen for hjemmebesøk er endret."],
    )


class Written(BaseModel):
    """An entry appended to the incident's log."""

    id: str = Field(description="The incident's id", examples=[INCIDENT_ID])
    seq: int = Field(description="The entry's place in the log (the report is 1)", examples=[2])
    hash: str = Field(
        description="SHA-256 of the entry, chained to the one before (hex)", examples=[HASH]
    )


class VerifyOut(BaseModel):
    """Whether the incident's log is whole: every hash chained, and as long as its anchor."""

    valid: bool = Field(description="True when the whole chain verifies", examples=[True])
    length: int = Field(description="How many entries the log has", examples=[12])
    head_hash: str = Field(description="The hash of the last entry", examples=[HASH])
    first_invalid_seq: int | None = Field(
        description="The first entry that does not verify; null when all do", examples=[None]
    )
    reason: str | None = Field(
        default=None, description="Why it does not verify; null when it does", examples=[None]
    )
    anchor_checked: bool = Field(
        description="False when the anchor keeper did not answer; the chain alone was checked",
        examples=[True],
    )
    anchored_seq: int | None = Field(
        default=None,
        description="The last entry the anchor keeper (documents) saw; null without an anchor",
        examples=[12],
    )


class IncidentSummary(BaseModel):
    """One incident in the list."""

    id: str = Field(description="The incident's id", examples=[INCIDENT_ID])
    org_id: str = Field(description="The organisation (the caller's)", examples=["demo"])
    title: str = Field(description="What happened, in one line", examples=["Slått av bruker"])
    category: str = Field(description="Guidance sub-theme id", examples=["vold-fysisk"])
    severity: str = Field(description="low, medium, high or critical", examples=["high"])
    reported_at: str = Field(description="When it was reported (UTC, RFC 3339)", examples=[AT])
    unit_id: str = Field(description="The unit where it happened", examples=["u-nord"])
    reported_by: str = Field(description="Person id of the reporter", examples=["p-ansatt"])
    status: str = Field(
        description="open, closed, or damaged (in the organisation's log, but its events can no "
        "longer be read from the store: ask an auditor to verify it)",
        examples=["open"],
    )


class Entry(BaseModel):
    """What every entry of the incident's state has."""

    seq: int = Field(description="The entry's place in the log", examples=[9])
    recorded_at: str = Field(description="When it was recorded (UTC, RFC 3339)", examples=[AT])
    occurred_at: str | None = Field(
        description="When it happened, when given apart from the recording", examples=[None]
    )
    actor: Actor = Field(description="Who wrote it")


class MeasureEntry(Entry):
    measure_id: str | None = Field(
        default=None,
        description="The guidance measure, when it is one",
        examples=["risikovurdering"],
    )
    title: str | None = Field(
        default=None, description="The measure in words", examples=["Ringte politiet"]
    )
    status: str = Field(description="done, started or not_applicable", examples=["done"])
    performed_by: Actor | None = Field(default=None, description="Who logged the measure")
    note: str | None = Field(default=None, description="Anything added", examples=["Politiet kom."])
    corrections: list[int] = Field(description="Seqs of the corrections of it", examples=[[]])


class NoteEntry(Entry):
    text: str = Field(description="The note", examples=["Snakket med den ansatte."])
    corrections: list[int] = Field(description="Seqs of the corrections of it", examples=[[]])


class CorrectionEntry(Entry):
    corrects_seq: int = Field(description="The entry it corrects", examples=[9])
    reason: str = Field(description="Why", examples=["Feil tidspunkt"])
    note: str | None = Field(
        default=None, description="What is right instead", examples=["Kl. 10.40."]
    )


class AlertState(BaseModel):
    """An alert of the incident, as its facts from notify tell it."""

    alert_id: str = Field(
        description="The alert's id", examples=["c513bf3b-f1c0-5fad-825e-3b2d4b7102f6"]
    )
    recipient: Actor | None = Field(default=None, description="Who was alerted")
    role: str | None = Field(
        default=None,
        description="Why: nearest_leader, deputy, safety_rep, main_safety_rep, hr or leader",
        examples=["nearest_leader"],
    )
    channel: str | None = Field(
        default=None, description="How: email, sms, webhook or log", examples=["email"]
    )
    status: str | None = Field(
        default=None, description="sent, acknowledged or escalated", examples=["acknowledged"]
    )
    alerted_at: str | None = Field(default=None, description="When it was sent", examples=[AT])
    seq: int | None = Field(default=None, description="The log entry of the alert", examples=[4])
    acknowledged_at: str | None = Field(
        default=None,
        description="When the recipient acknowledged it",
        examples=["2026-03-02T09:18:00Z"],
    )
    escalation_reason: str | None = Field(
        default=None,
        description="Why it went on to the next person",
        examples=["not acknowledged in 15 min"],
    )


class DeadlineState(BaseModel):
    """A duty with a deadline, set by notify from the facts of the report."""

    deadline_id: str = Field(description="The duty's id", examples=["aml-5-1"])
    fact_id: str | None = Field(
        default=None,
        description="The fact it came from",
        examples=[f"{INCIDENT_ID}:deadline:aml-5-1"],
    )
    kind: str | None = Field(
        default=None, description="law, or the organisation's own routine", examples=["law"]
    )
    title: str | None = Field(
        default=None, description="The duty", examples=["Registrer personskaden"]
    )
    legal_ref: str | None = Field(
        default=None, description="The law that sets it", examples=["aml § 5-1"]
    )
    due_at: str | None = Field(
        default=None, description="When it is due", examples=["2026-03-03T15:00:00Z"]
    )
    due_label: str | None = Field(
        default=None, description="The due time in words", examples=["neste virkedag"]
    )
    responsible: Actor | None = Field(default=None, description="Who answers for it")
    responsible_role: str | None = Field(
        default=None, description="Their role in it", examples=["nearest_leader"]
    )
    met_at: str | None = Field(
        description="When it was done; null while it is not", examples=[None]
    )
    seq: int = Field(description="The log entry that set it", examples=[2])


class DocumentEntry(Entry):
    """A log form that was issued (downloaded, or archived at the close)."""

    format: str | None = Field(default=None, description="docx or pdf", examples=["pdf"])
    filename: str | None = Field(
        default=None, description="The file's name", examples=["loggskjema-12.pdf"]
    )
    as_of_seq: int | None = Field(
        default=None, description="The last entry in the form", examples=[12]
    )
    head_hash: str | None = Field(
        default=None, description="The hash of that entry", examples=[HASH]
    )
    sha256: str | None = Field(
        default=None, description="SHA-256 of the file as issued", examples=[HASH]
    )
    size: int | None = Field(default=None, description="Its size in bytes", examples=[37911])
    issued_by: Actor | None = Field(default=None, description="Who it was issued to")
    purpose: str | None = Field(
        default=None,
        description="download, or final (archived at the close)",
        examples=["download"],
    )


class IncidentState(BaseModel):
    """The incident as its log tells it (at a point in time, for the timeline)."""

    id: str = Field(description="The incident's id", examples=[INCIDENT_ID])
    status: str = Field(description="open or closed", examples=["open"])
    phase: str = Field(description="akutt, oppfolging or avsluttet", examples=["akutt"])
    measures: list[MeasureEntry] = Field(description="The measures logged, in order")
    notes: list[NoteEntry] = Field(description="The notes, in order")
    corrections: list[CorrectionEntry] = Field(description="The corrections, in order")
    alerts: dict[str, AlertState] = Field(
        description="The alerts, by alert id",
        examples=[
            {
                "c513bf3b-f1c0-5fad-825e-3b2d4b7102f6": {
                    "alert_id": "c513bf3b-f1c0-5fad-825e-3b2d4b7102f6",
                    "role": "nearest_leader",
                    "status": "sent",
                }
            }
        ],
    )
    deadlines: dict[str, DeadlineState] = Field(
        description="The duties with deadlines, by deadline id",
        examples=[
            {
                "aml-5-1": {
                    "deadline_id": "aml-5-1",
                    "title": "Registrer personskaden",
                    "met_at": None,
                    "seq": 2,
                }
            }
        ],
    )
    documents: list[DocumentEntry] = Field(description="The log forms issued, in order")
    summary: str | None = Field(description="The closing summary; null while open", examples=[None])
    closed_at: str | None = Field(
        description="When it was closed; null while open", examples=[None]
    )
    length: int = Field(description="How many entries the log has", examples=[12])
    head_hash: str = Field(description="The hash of the last entry", examples=[HASH])
    updated_at: str | None = Field(
        default=None, description="When the last entry was recorded", examples=[AT]
    )
    org_id: str | None = Field(default=None, description="The organisation", examples=["demo"])
    reported_by: Actor | None = Field(default=None, description="Who reported it")
    reported_at: str | None = Field(default=None, description="When it was reported", examples=[AT])
    occurred_at: str | None = Field(default=None, description="When it happened", examples=[AT])
    category: str | None = Field(
        default=None, description="As reported (ReportIn)", examples=["vold-fysisk"]
    )
    title: str | None = Field(default=None, description="As reported", examples=["Slått av bruker"])
    description: str | None = Field(
        default=None, description="As reported", examples=["Brukeren slo."]
    )
    place: str | None = Field(
        default=None, description="As reported", examples=["Storgata 1, Tromsø"]
    )
    unit_id: str | None = Field(default=None, description="As reported", examples=["u-nord"])
    affected: list[str] | None = Field(
        default=None, description="As reported", examples=[["p-ansatt"]]
    )
    severity: str | None = Field(default=None, description="As reported", examples=["high"])
    facts: dict[str, Any] | None = Field(
        default=None, description="As reported; see `facts` of ReportIn", examples=[FACTS_EXAMPLE]
    )
    content_version: str | None = Field(
        default=None, description="As reported", examples=["a52e2d54986c13a0"]
    )


class TimelineOut(BaseModel):
    """The log replayed up to a point: the state then, and the entries that made it."""

    incident: IncidentState = Field(description="The incident as it stood then")
    events: list[IncidentEventV1] = Field(description="Its entries up to then, in order")


class AccessEntry(BaseModel):
    """One reading or export of the incident's log."""

    person_id: str = Field(description="Who", examples=["p-ln"])
    name: str = Field(description="Their name", examples=["Lise Nord"])
    action: str = Field(description="read or export", examples=["read"])
    at: str = Field(description="When (RFC 3339)", examples=["2026-03-02T09:20:00+00:00"])


AnchorLookup = Callable[[str, str], Awaitable[tuple[int, str] | None]]
"""(org_id, incident_id) -> the latest anchored (seq, hash), or None when there is none."""


def tree_mismatch(
    in_tree: list[Leaf], stored: list[bytes], stored_count: int
) -> tuple[int, str] | None:
    """The first event whose stored form is not the one the organisation's tree took in.

    `stored` holds the leaves of the events that could be read, in seq order; `stored_count`
    counts every stored event. A leaf the tree has but the store lacks is a deleted event.
    """
    for leaf in in_tree:
        where = f"leaf {leaf.leaf_index} of the organisation's log"
        if leaf.seq > stored_count:
            return leaf.seq, f"event {leaf.seq} is missing ({where})"
        if leaf.seq <= len(stored) and stored[leaf.seq - 1] != leaf.hash:
            return leaf.seq, f"event {leaf.seq} is not the one the log recorded ({where})"
    return None


def _written(incident: Incident, status: int = 201) -> Response:
    """201 with `Written`, encoded directly: pydantic's response serialisation cost more here."""
    body = {"id": str(incident.id), "seq": incident.version, "hash": incident.head_hash}
    return Response(json.dumps(body).encode(), status_code=status, media_type="application/json")


# What each action is, in the sentence "Rollen din gir ikke lov til å ... denne hendelsen."
ACTION_WORDS: dict[Action, str] = {
    "report": "melde",
    "read": "lese",
    "note": "skrive notater i",
    "write": "føre inn i",
    "deadline": "oppdatere frister og opplysninger for",
    "export": "eksportere",
}


def _not_found(incident_id: UUID) -> Problem:
    return Problem(
        404, "Hendelsen finnes ikke", f"Ingen hendelse {incident_id} i virksomheten din."
    )


def build_router(
    log: IncidentLog,
    caller: Callable[..., Awaitable[Principal]],
    anchor_lookup: AnchorLookup,
    tree: Callable[[str], OrgTree],
    access: AccessLog,
    logs: OrgLogs | None = None,
) -> APIRouter:
    """`tree(org)` gives the organisation's units for the access rules (shared.policy).

    `logs`, the organisation's Merkle tree: it knows every incident and every event ever
    stored, so one whose rows were deleted is reported as tampered with, never as missing.
    """
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
            if logs is not None and logs.org_of(str(incident_id)) == who.org_id:
                raise DamagedLog(str(incident_id))  # its report was deleted from the store
            raise _not_found(incident_id)
        check(incident_id, who, action, facts)

    def check(incident_id: UUID, who: Principal, action: Action, facts: IncidentFacts) -> None:
        if not allowed(who, action, facts, tree(who.org_id)):
            raise Problem(
                403,
                "Ingen tilgang",
                f"Rollen din gir ikke lov til å {ACTION_WORDS[action]} denne hendelsen.",
            )
        if action in ("read", "export"):
            access.record(who.org_id, str(incident_id), who.person_id, who.name, action)

    def not_ahead(moment: datetime | None) -> None:
        """Something that happened cannot lie days ahead: refused, never stored (every
        deadline and reminder would be computed from it)."""
        if moment is not None and moment > log.clock.now() + FUTURE_SLACK:
            raise Problem(
                422,
                "Tidspunkt i fremtiden",
                "Tidspunktet ligger mer enn et døgn frem i tid. Sjekk datoen og tidssonen.",
            )

    def append(
        incident_id: UUID,
        who: Principal,
        kind: str,
        data: dict[str, Any],
        occurred_at: datetime | None = None,
        action: Action = "write",
    ) -> Response:
        """In a worker thread: the access rules, then the append (both block on the store)."""
        not_ahead(occurred_at)
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

    @router.post(
        "",
        status_code=201,
        response_model=Written,
        summary="Report an incident",
        response_description="The incident is opened; its log has the report as entry 1",
        responses={
            200: {
                "model": Written,
                "description": "Sent before with this `id` by the caller: the incident it "
                "opened, as it is now (nothing new is written)",
            }
        },
    )
    async def report(body: ReportIn, who: Caller) -> Response:
        if not allowed(who, "report", None, tree(who.org_id)):
            raise Problem(403, "Ingen tilgang", "Rollen din kan ikke melde hendelser.")
        not_ahead(body.occurred_at)
        data = body.model_dump(exclude={"occurred_at", "facts", "id"}, exclude_none=True)
        data["facts"] = body.facts.given()
        try:
            incident = await asyncio.to_thread(
                functools.partial(
                    log.report,
                    org_id=who.org_id,
                    actor=actor(who),
                    data=data,
                    occurred_at=body.occurred_at,
                    incident_id=body.id,
                )
            )
        except IdTaken:
            assert body.id is not None
            return await asyncio.to_thread(resent, body.id, who)
        return _written(incident)

    def resent(incident_id: UUID, who: Principal) -> Response:
        """A report sent again (the network failed before the answer came): its incident. An
        id another person's report has, in any organisation, is a clash, and says no more."""
        facts = log.facts(incident_id, who.org_id)
        incident = log.get(incident_id, who.org_id, fresh=False) if facts else None
        if facts is None or incident is None or facts.reported_by != who.person_id:
            raise Problem(
                409,
                "Id-en er i bruk",
                "En annen hendelse har allerede denne id-en. Send uten id, eller med en ny.",
            )
        return _written(incident, status=200)

    @router.get(
        "",
        summary="The incidents the caller may see",
        response_model=None,
        responses={200: {"model": list[IncidentSummary], "description": "Newest first"}},
    )
    def list_incidents(
        who: Caller, status: Literal["open", "closed", "damaged"] | None = None
    ) -> list[dict[str, Any]]:
        entries = log.list_incidents(who.org_id, status)
        facts = [(e.id, IncidentFacts(e.unit_id, e.category, e.reported_by)) for e in entries]
        shown = set(visible(who, facts, tree(who.org_id)))
        listed = [vars(e) for e in entries if e.id in shown]
        if logs is not None and status in (None, "damaged"):
            # In the organisation's tree but not readable from the store: rows were deleted or
            # damaged. Shown, as damaged, to those who see every incident (nothing else is known).
            known = {e.id for e in log.list_incidents(who.org_id, None)}
            lost = [i for i in logs.incidents(who.org_id) if i not in known]
            if lost and allowed(who, "read", IncidentFacts("", "", ""), tree(who.org_id)):
                leaves = {i: logs.leaves(i) for i in lost}
                listed += [
                    {"id": i, "org_id": who.org_id, "title": "", "category": "", "severity": "",
                     "reported_at": "", "unit_id": "", "reported_by": "", "status": "damaged",
                     "first_leaf_index": leaves[i][0].leaf_index if leaves[i] else None}
                    for i in lost
                ]  # fmt: skip
        return listed

    @router.get(
        "/{incident_id}",
        summary="The incident as its log tells it now",
        response_model=IncidentState,
    )
    def get_incident(incident_id: UUID, who: Caller) -> Response:
        permitted(incident_id, who, "read")
        state = log.state_json(incident_id, who.org_id)
        if state is None:
            raise _not_found(incident_id)
        return Response(state, media_type="application/json")

    @router.post(
        "/{incident_id}/measures",
        status_code=201,
        response_model=Written,
        summary="Log a measure",
        response_description="The measure is in the log",
    )
    async def log_measure(incident_id: UUID, body: MeasureIn, who: Caller) -> Response:
        if not body.measure_id and not body.title:
            raise Problem(422, "Ugyldig forespørsel", "Oppgi measure_id eller title (eller begge).")
        data = body.model_dump(exclude={"performed_at"}, exclude_none=True)
        data["performed_by"] = actor(who)
        return await asyncio.to_thread(
            append, incident_id, who, "MeasureLogged", data, body.performed_at
        )

    @router.post(
        "/{incident_id}/notes",
        status_code=201,
        response_model=Written,
        summary="Add a note",
        response_description="The note is in the log",
    )
    async def add_note(incident_id: UUID, body: NoteIn, who: Caller) -> Response:
        data = {"text": body.text}
        return await asyncio.to_thread(append, incident_id, who, "NoteAdded", data, None, "note")

    @router.post(
        "/{incident_id}/facts",
        status_code=201,
        response_model=Written,
        summary="Record facts learnt later (injury, sick leave, consent, ...)",
        response_description="The facts are in the log; the duties they start are set now",
    )
    async def record_facts(incident_id: UUID, body: FactsIn, who: Caller) -> Response:
        """Add or change yes / no / unknown facts after the report. A duty a fact starts runs
        from now, when the employer learnt it (aml § 5-2 `straks`); a duty already set stays."""
        facts = body.facts.given()
        if not facts:
            raise Problem(422, "Ugyldig forespørsel", "Oppgi minst én opplysning.")
        data = {"facts": facts}
        return await asyncio.to_thread(
            append, incident_id, who, "FactsRecorded", data, None, "deadline"
        )

    @router.post(
        "/{incident_id}/corrections",
        status_code=201,
        response_model=Written,
        summary="Correct an entry (it stays in the log, marked as corrected)",
        response_description="The correction is in the log",
    )
    async def correct(incident_id: UUID, body: CorrectionIn, who: Caller) -> Response:
        data: dict[str, Any] = {"corrects_seq": body.seq, "reason": body.reason}
        if body.note:
            data["note"] = body.note
        return await asyncio.to_thread(append, incident_id, who, "EntryCorrected", data)

    @router.post(
        "/{incident_id}/deadlines/{deadline_id}/met",
        status_code=201,
        response_model=Written,
        summary="Mark a duty with a deadline done",
        response_description="It is in the log; the reminders stop",
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

    @router.post(
        "/{incident_id}/phase",
        status_code=201,
        response_model=Written,
        summary="Change the phase",
        response_description="The new phase is in the log",
    )
    async def change_phase(incident_id: UUID, body: PhaseIn, who: Caller) -> Response:
        """Move the incident from the acute phase to follow-up (or back); closing ends it."""
        data = body.model_dump(exclude_none=True)
        return await asyncio.to_thread(append, incident_id, who, "PhaseChanged", data)

    @router.post(
        "/{incident_id}/close",
        status_code=201,
        response_model=Written,
        summary="Close the incident",
        response_description="Closed; documents archives the final log form",
    )
    async def close(incident_id: UUID, body: CloseIn, who: Caller) -> Response:
        data = {"summary": body.summary}
        return await asyncio.to_thread(append, incident_id, who, "IncidentClosed", data)

    @router.get(
        "/{incident_id}/timeline",
        summary="The log replayed to a point in time (as_of) or an entry (until_seq)",
        response_model=TimelineOut,
    )
    def timeline(
        incident_id: UUID,
        who: Caller,
        as_of: Annotated[AwareDatetime | None, Query(description="RFC 3339")] = None,
        until_seq: Annotated[int | None, Query(ge=0)] = None,
    ) -> Response:
        if as_of is not None and until_seq is not None:
            raise Problem(422, "Ugyldig forespørsel", "Oppgi as_of eller until_seq, ikke begge.")
        permitted(incident_id, who, "read")
        events = log.exported_events(incident_id, until_seq=until_seq or None)
        if until_seq == 0:
            events = []
        if as_of is not None:
            events = events[: recorded_by(events, as_of)]  # a prefix, as the log form takes it
        state = new_state(str(incident_id))
        for event in events:
            apply_event(state, event)
        # Straight to JSON: FastAPI's generic encoder costs more than the replay itself here.
        body = json.dumps({"incident": state, "events": events}, ensure_ascii=False)
        return Response(body.encode(), media_type="application/json")

    @router.get(
        "/{incident_id}/verify",
        response_model=VerifyOut,
        summary="Verify the log's hash chain, and its length against the anchor",
    )
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
            known = logs is not None and logs.org_of(str(incident_id)) == who.org_id
            if anchor is None and not known:
                raise _not_found(incident_id)
            check(incident_id, who, "export", IncidentFacts("", "", ""))
        report, hashes, leaves = await asyncio.to_thread(log.verify_with_leaves, incident_id)
        valid, first_bad, reason = report.valid, report.first_invalid_seq, report.reason
        if anchor is not None:
            mismatch = check_anchor(len(hashes), hashes, anchor[0], anchor[1])
            if mismatch is not None and (first_bad is None or mismatch[0] < first_bad):
                valid, (first_bad, reason) = False, mismatch
        if logs is not None:
            in_tree = await asyncio.to_thread(logs.leaves, str(incident_id))
            against = tree_mismatch(in_tree, leaves, len(hashes))
            if against is not None and (first_bad is None or against[0] < first_bad):
                valid, (first_bad, reason) = False, against
            elif first_bad is not None:
                # Name the event's place in the organisation's log too, for the auditor.
                index = {leaf.seq: leaf.leaf_index for leaf in in_tree}.get(first_bad)
                if index is not None:
                    reason = f"{reason} (leaf {index} of the organisation's log)"
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
        summary="The whole log as JSON Lines, for scripts/verify_export.py and the archive",
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

    @router.get(
        "/{incident_id}/access",
        summary="Who read or exported the log (auditors)",
        response_model=None,
        responses={200: {"model": list[AccessEntry], "description": "Oldest first"}},
    )
    def access_log(incident_id: UUID, who: Caller) -> list[dict[str, str]]:
        """Who read or exported this incident's log, and when: for the organisation's auditors."""
        if log.facts(incident_id, who.org_id) is None:
            raise _not_found(incident_id)
        if not who.has_any("auditor"):
            raise Problem(403, "Ingen tilgang", "Bare revisor kan se hvem som har lest en logg.")
        return access.reads(who.org_id, str(incident_id))

    return router


_H = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # an example hash, base64


class LeafOut(BaseModel):
    seq: int = Field(description="The event's place in the incident's log", examples=[3])
    leaf_index: int = Field(
        description="Its place in the organisation's log (Merkle tree)", examples=[1041]
    )
    leaf_hash: str = Field(description="SHA-256(0x00 ‖ export line), base64", examples=[_H])


class LeavesOut(BaseModel):
    incident_id: str = Field(description="The incident asked about", examples=[INCIDENT_ID])
    tree_size: int = Field(
        description="The organisation's tree size when this was answered", examples=[1207]
    )
    leaves: list[LeafOut] = Field(description="Each of its events, in seq order")


class InclusionOut(BaseModel):
    index: int = Field(description="The leaf's index in the tree", examples=[1041])
    size: int = Field(description="The tree size the proof is for", examples=[1207])
    leaf_hash: str = Field(description="The leaf at `index`, base64", examples=[_H])
    proof: list[str] = Field(
        description="RFC 9162 §2.1.3 inclusion path, base64, bottom up", examples=[[_H, _H]]
    )


class ConsistencyOut(BaseModel):
    from_: int = Field(
        alias="from",
        serialization_alias="from",
        description="The older tree size",
        examples=[1100],
    )
    to: int = Field(description="The newer tree size", examples=[1207])
    proof: list[str] = Field(
        description="RFC 9162 §2.1.4 consistency proof, base64", examples=[[_H, _H]]
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build_log_router(
    log: IncidentLog,
    logs: OrgLogs,
    caller: Callable[..., Awaitable[Principal]],
    tree: Callable[[str], OrgTree],
) -> APIRouter:
    """The organisation's log: checkpoints, keys and proofs (docs/verifying.md).

    Open to every member of the organisation and to its witnesses' read-only tokens: a
    checkpoint is a count and a hash, and a proof is hashes; neither says anything of an
    incident. Only the leaves of one incident are behind that incident's read rule.
    """
    router = APIRouter(prefix="/api/v1/log", tags=["log"])
    Caller = Annotated[Principal, Depends(caller)]
    text = "text/plain; charset=utf-8"

    def size_of(who: Principal, size: int | None) -> int:
        current = logs.tree(who.org_id).size
        if size is not None and size > current:
            raise Problem(
                422,
                "For stor logg",
                f"Organisasjonens logg har {current} hendelser, ikke {size}.",
            )
        return current if size is None else size

    @router.get(
        "/checkpoint",
        summary="The organisation's log now, as a signed C2SP checkpoint",
        response_class=Response,
        responses={200: {"content": {text: {"schema": {"type": "string"}}}}},
    )
    async def checkpoint(who: Caller) -> Response:
        size, note = await asyncio.to_thread(logs.checkpoint, who.org_id)
        return Response(note, media_type=text, headers={"X-Kriselogg-Tree-Size": str(size)})

    @router.get(
        "/key",
        summary="The verifier key that signs checkpoints now (signed-note format)",
        response_class=Response,
        responses={200: {"content": {text: {"schema": {"type": "string"}}}}},
    )
    async def key(who: Caller) -> Response:
        signers = await asyncio.to_thread(logs.keys.active)
        return Response(signers[0].verifier.line() + "\n", media_type=text)

    @router.get(
        "/keys",
        summary="Every verifier key that ever signed a checkpoint, newest first",
        response_class=Response,
        responses={200: {"content": {text: {"schema": {"type": "string"}}}}},
    )
    async def keys(who: Caller) -> Response:
        verifiers = await asyncio.to_thread(logs.keys.verifiers)
        return Response("".join(v.line() + "\n" for v in verifiers), media_type=text)

    @router.get("/leaves", summary="Each event's place in the organisation's log")
    async def leaves(
        who: Caller,
        incident_id: Annotated[
            UUID, Query(description="The incident's id", examples=[INCIDENT_ID])
        ],
    ) -> LeavesOut:
        def answer() -> LeavesOut:
            facts = log.facts(incident_id, who.org_id)
            if facts is None and logs.org_of(str(incident_id)) != who.org_id:
                raise _not_found(incident_id)
            if not allowed(who, "read", facts or IncidentFacts("", "", ""), tree(who.org_id)):
                raise Problem(403, "Ingen tilgang", "Du har ikke tilgang til denne hendelsen.")
            size = logs.tree(who.org_id).size
            rows = [
                LeafOut(seq=leaf.seq, leaf_index=leaf.leaf_index, leaf_hash=_b64(leaf.hash))
                for leaf in logs.leaves(str(incident_id))
            ]
            return LeavesOut(incident_id=str(incident_id), tree_size=size, leaves=rows)

        return await asyncio.to_thread(answer)

    @router.get("/proof/inclusion", summary="RFC 9162 inclusion proof of one leaf")
    async def inclusion(
        who: Caller,
        index: Annotated[int, Query(ge=0, le=2**53)],
        size: Annotated[int, Query(ge=1, le=2**53)],
    ) -> InclusionOut:
        def answer() -> InclusionOut:
            size_of(who, size)
            if index >= size:
                raise Problem(
                    422, "Ugyldig forespørsel", f"Hendelse {index} finnes ikke i en logg på {size}."
                )
            org_tree = logs.tree(who.org_id)
            proof = org_tree.inclusion_proof(index, size)
            return InclusionOut(
                index=index,
                size=size,
                leaf_hash=_b64(org_tree.leaf(index)),
                proof=[_b64(p) for p in proof],
            )

        return await asyncio.to_thread(answer)

    @router.get(
        "/proof/consistency",
        summary="RFC 9162 consistency proof between two sizes of the log",
        response_model=ConsistencyOut,
        response_model_by_alias=True,
    )
    async def consistency(
        who: Caller,
        from_: Annotated[int, Query(alias="from", ge=0, le=2**53)],
        to: Annotated[int, Query(ge=0, le=2**53)],
    ) -> ConsistencyOut:
        def answer() -> ConsistencyOut:
            size_of(who, to)
            if from_ > to:
                raise Problem(
                    422,
                    "Ugyldig forespørsel",
                    "En logg kan ikke bli kortere: from er større enn to.",
                )
            proof = logs.tree(who.org_id).consistency_proof(from_, to)
            return ConsistencyOut.model_validate(
                {"from": from_, "to": to, "proof": [_b64(p) for p in proof]}
            )

        return await asyncio.to_thread(answer)

    return router
