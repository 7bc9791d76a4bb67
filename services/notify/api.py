"""HTTP API of notify: the directory, who would be alerted, the alerts and their acknowledgement.

Acknowledging is possible two ways: `POST /api/v1/alerts/{id}/ack` with the recipient's token,
and the signed link in the message. The link's GET only shows a page with a button; the POST
behind the button acknowledges. Mail scanners open every link in a message, and a GET that
acknowledged would stop the escalation before any person had read the alert.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from html import escape
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from services.notify.domain import Directory, Issue, Resolver, check_ack, sms, versions
from services.notify.domain import receipt as receipts
from services.notify.store import DirectoryChanged, NotifyStore, OutboxFact, alert_fact, ts
from shared.auth import Principal
from shared.http import Problem, RateLimit, client_address
from shared.policy import IncidentFacts, allowed, tree_of
from shared.schemas import AckVia
from shared.subjects import Subjects

INCIDENT_ID = "0b6f6a52-4a3e-4c9e-9f7e-2d1c1f0e8a11"
ALERT_ID = "c513bf3b-f1c0-5fad-825e-3b2d4b7102f6"
AT = "2026-03-02T09:15:00.000000Z"
ID = "Letters, digits and _ . : - (1-64)"

# The directory's models live in services.notify.domain; their fields are described here, for
# the OpenAPI document (shared.apidocs.describe_fields).
FIELD_DOCS: dict[str, dict[str, tuple[str, Any]]] = {
    "Directory": {
        "org": ("The organisation itself", {"id": "demo", "name": "Demo kommune"}),
        "units": (
            "Every unit, at least one; `parent` makes the tree",
            [{"id": "u-nord", "name": "Hjemmetjenesten nord", "leader": "p-ln"}],
        ),
        "people": (
            "Everyone who can be alerted or reminded",
            [{"id": "p-ln", "name": "Lise Nord", "email": "lise@example.org", "unit": "u-nord"}],
        ),
        "routine": (
            "The organisation's own follow-up routine (not law); left out, the default one; "
            "[] for none",
            [
                {
                    "id": "oppfolging-en-uke",
                    "title": "Oppfølgingssamtale etter en uke",
                    "after_days": 7,
                }
            ],
        ),
    },
    "Org": {
        "id": (f"The organisation's id; must be the one of your token. {ID}", "demo"),
        "name": ("Its name (1-200 characters)", "Demo kommune"),
        "main_safety_rep": ("Person id of the main safety representative", "p-hvo"),
        "hr": ("Person ids of HR, who get the duties HR answers for", ["p-hr"]),
    },
    "Unit": {
        "id": (f"The unit's id. {ID}", "u-nord"),
        "name": ("Its name (1-200 characters)", "Hjemmetjenesten nord"),
        "parent": ("The unit above it; left out at the top", "u-top"),
        "leader": ("Person id of its leader, the first to be alerted", "p-ln"),
        "deputies": (
            "Person ids of the leader's deputies, in the order they stand in",
            ["p-stedfortreder"],
        ),
        "safety_rep": ("Person id of its safety representative", "p-vo"),
    },
    "Person": {
        "id": (f"The person's id, as in tokens (`sub`). {ID}", "p-ln"),
        "name": ("Their name (1-200 characters)", "Lise Nord"),
        "email": ("E-mail address for alerts (at most 320 characters)", "lise.nord@example.org"),
        "mobile": ("Mobile number for SMS alerts (at most 32 characters)", "+47 900 00 000"),
        "webhook": (
            "URL that gets a signed JSON POST per alert (at most 2000 characters)",
            "https://vakt.example.org/kriselogg",
        ),
        "unit": ("The unit they work in", "u-nord"),
        "absences": (
            "When they cannot be reached: alerts go to the next person",
            [{"from": "2026-07-01", "to": "2026-07-21"}],
        ),
        "channels": (
            "The channels to try, in order; left out: email, sms, webhook",
            ["sms", "email"],
        ),
    },
    "Absence": {
        "from": ("First day away (YYYY-MM-DD)", "2026-07-01"),
        "to": ("Last day away, inclusive (YYYY-MM-DD)", "2026-07-21"),
    },
    "RoutineDuty": {
        "id": (f"The duty's id. {ID}", "oppfolging-en-uke"),
        "title": ("The duty (1-200 characters)", "Oppfølgingssamtale etter en uke"),
        "responsible": ("Who answers for it", "nearest_leader"),
        "after_days": (
            "Due this many days after the incident's day (then the next working day); "
            "give exactly one of the three",
            7,
        ),
        "after_working_days": ("Due this many working days after the incident's day", 1),
        "after_months": (
            "Due this many months after the incident's day (then the next working day)",
            1,
        ),
    },
}


class DirectorySaved(BaseModel):
    """The directory was saved and shared with the other services."""

    org: str = Field(description="The organisation", examples=["demo"])
    units: int = Field(description="How many units it has", examples=[4])
    people: int = Field(description="How many people it has", examples=[9])
    version: int = Field(
        description="Its version number (GET /api/v1/directory/versions); the same as before "
        "when it was the very directory in use",
        examples=[7],
    )


class DirectoryIssue(BaseModel):
    loc: list[str | int] = Field(
        description="Where: the path of keys and list positions in the directory",
        examples=[["people", 3, "unit"]],
    )
    message: str = Field(
        description="What is wrong, in Norwegian",
        examples=["personen «p-x» har en ukjent enhet «u-y»"],
    )


class DirectoryChange(BaseModel):
    field: str = Field(description="The field that changes", examples=["leader"])
    text: str = Field(
        description="The change in Norwegian", examples=["leder: «Lise Nord» (p-ln) → ingen"]
    )
    before: Any = Field(
        description="The old value; null for contact points and absences, which are not shown",
        examples=["p-ln"],
    )
    after: Any = Field(description="The new value; null as for `before`", examples=[None])


class DirectoryItem(BaseModel):
    id: str = Field(description="The unit's or person's id", examples=["u-nord"])
    name: str = Field(description="Its name", examples=["Hjemmetjenesten nord"])


class DirectoryItemChanged(DirectoryItem):
    changes: list[DirectoryChange] = Field(description="What changes in it")


class DirectorySection(BaseModel):
    added: list[DirectoryItem] = Field(description="New ones")
    removed: list[DirectoryItem] = Field(description="Those that would be gone")
    changed: list[DirectoryItemChanged] = Field(description="Those that change")


class DirectoryDiff(BaseModel):
    org: list[DirectoryChange] = Field(description="Changes to the organisation and its routine")
    units: DirectorySection = Field(description="The units")
    people: DirectorySection = Field(
        description="The people; a changed role (leader, deputy, safety rep, HR) is a change"
    )
    unchanged: bool = Field(description="True when it is the directory in use", examples=[False])


class DirectoryPreview(BaseModel):
    """A candidate directory checked against the one in use: nothing is applied."""

    valid: bool = Field(description="Whether PUT would accept it", examples=[True])
    base: int = Field(
        description="The version in use it was compared with; give it to PUT as `base`",
        examples=[6],
    )
    issues: list[DirectoryIssue] = Field(description="Every problem; none when valid")
    diff: DirectoryDiff | None = Field(
        description="What it changes; null when it is not even a directory in form"
    )


class DirectoryVersionOut(BaseModel):
    version: int = Field(description="Its number, 1 the first", examples=[7])
    applied_at: str = Field(description="When it was applied", examples=[AT])
    applied_by: str | None = Field(
        description="The admin's person id; null for the demo seed or a directory from before "
        "versions were kept",
        examples=["p-admin"],
    )
    applied_by_name: str | None = Field(description="The admin's name", examples=["Astrid Admin"])
    restored_from: int | None = Field(
        description="A roll back: the version it brought back", examples=[None]
    )
    units: int = Field(description="How many units it has", examples=[4])
    people: int = Field(description="How many people it has", examples=[9])


class DirectoryVersions(BaseModel):
    """The directories applied lately, the one in use first (at most the last 20)."""

    current: int = Field(description="The version in use; 0 while there is none", examples=[7])
    versions: list[DirectoryVersionOut] = Field(description="Newest first")


class DirectoryVersionBody(BaseModel):
    version: int = Field(description="Its number", examples=[6])
    directory: dict[str, Any] = Field(
        description="The directory as it was applied (the body of PUT /api/v1/directory)",
        examples=[{"org": {"id": "demo", "name": "Demo kommune"}, "units": [], "people": []}],
    )


class Responder(BaseModel):
    person_id: str = Field(description="Person id", examples=["p-ln"])
    name: str = Field(description="Their name", examples=["Lise Nord"])


class LeaderResponder(Responder):
    role: str = Field(
        description="nearest_leader, deputy or leader (a unit above)", examples=["nearest_leader"]
    )
    unit: str | None = Field(description="The unit they lead", examples=["u-nord"])


class SkippedResponder(Responder):
    role: str = Field(description="The role they would have had", examples=["nearest_leader"])
    reason: str = Field(
        description="Why they are passed over", examples=["absent 2026-07-01 to 2026-07-21"]
    )


class Responders(BaseModel):
    """Who would be alerted for an incident in the unit today, and who is passed over."""

    leaders: list[LeaderResponder] = Field(description="The leaders, in the order they are tried")
    safety_rep: Responder | None = Field(description="The unit's safety representative")
    main_safety_rep: Responder | None = Field(description="The main safety representative")
    hr: list[Responder] = Field(description="HR")
    skipped: list[SkippedResponder] = Field(description="Those passed over today, and why")


class Attempt(BaseModel):
    n: int = Field(description="1 for the first attempt", examples=[1])
    channel: str = Field(description="email, sms, webhook or log", examples=["email"])
    started_at: str = Field(description="When it started", examples=[AT])
    finished_at: str = Field(description="When it ended", examples=[AT])
    outcome: str = Field(
        description="delivered (the server or gateway accepted it), failed (see error), or "
        "not_sent (the log channel: no e-mail or SMS set up, or no contact point; only "
        "recorded in kriselogg)",
        examples=["delivered"],
    )
    error: str | None = Field(description="Why it failed; null when delivered", examples=[None])


class AckUse(BaseModel):
    at: str = Field(description="When", examples=[AT])
    via: str = Field(
        description="lenke (the signed link), sms (a reply) or kriselogg (logged in)",
        examples=["lenke"],
    )
    outcome: str = Field(
        description="acknowledged, or already_acknowledged (a later use changed nothing)",
        examples=["acknowledged"],
    )


class Alert(BaseModel):
    """An alert or a reminder, with every delivery attempt and every acknowledgement made."""

    id: str = Field(description="The alert's id", examples=[ALERT_ID])
    incident_id: str = Field(description="The incident", examples=[INCIDENT_ID])
    kind: str = Field(
        description="alert; reminder (of a deadline); or receipt (the reporter's e-mail of who "
        "was alerted: not an alert, never acknowledged or escalated)",
        examples=["alert"],
    )
    role: str = Field(
        description="Why this person: nearest_leader, deputy, safety_rep, "
        "main_safety_rep, hr or leader; reporter for a receipt",
        examples=["nearest_leader"],
    )
    person_id: str = Field(description="Who", examples=["p-ln"])
    person_name: str = Field(description="Their name", examples=["Lise Nord"])
    channel: str | None = Field(description="The channel of the last attempt", examples=["email"])
    status: str = Field(
        description="pending, sending, sent, acknowledged, escalated, unanswered or cancelled",
        examples=["sent"],
    )
    delivery: str = Field(
        description="sent (accepted by a server or gateway), no_channel (only recorded: "
        "nobody was told), pending, failed (attempts failed, still retried) or cancelled",
        examples=["sent"],
    )
    attempts: int = Field(description="How many delivery attempts were made", examples=[1])
    created_at: str = Field(description="When it was planned", examples=[AT])
    sent_at: str | None = Field(description="When it was delivered", examples=[AT])
    acknowledged_at: str | None = Field(description="When it was acknowledged", examples=[None])
    escalate_at: str | None = Field(
        description="Leaders: when the next person is alerted without an acknowledgement",
        examples=[AT],
    )
    escalated_at: str | None = Field(
        description="When it went on to the next person", examples=[None]
    )
    deadline_id: str | None = Field(description="Reminders: the duty", examples=[None])
    last_error: str | None = Field(description="The last delivery error", examples=[None])
    attempt_log: list[Attempt] = Field(description="Every attempt, in order")
    ack_log: list[AckUse] = Field(
        description="Every acknowledgement made by the alerted person, first one first"
    )


class DeadlineReminder(BaseModel):
    """A duty of the incident with its deadline and the reminder of it."""

    deadline_id: str = Field(description="The duty's id", examples=["aml-5-1"])
    kind: str = Field(description="law, or the organisation's own routine", examples=["law"])
    title: str = Field(description="The duty", examples=["Registrer personskaden"])
    legal_ref: str | None = Field(description="The law; null for a routine", examples=["aml § 5-1"])
    due_at: str | None = Field(
        description="When it is due; null where the law sets no date (snarest mulig, none)",
        examples=["2026-03-03T15:00:00.000000Z"],
    )
    due_label: str = Field(description="The due time in words", examples=["straks"])
    responsible_role: str = Field(description="Who answers for it", examples=["nearest_leader"])
    person_id: str | None = Field(
        description="That person; null when nobody has the role", examples=["p-ln"]
    )
    person_name: str | None = Field(description="Their name", examples=["Lise Nord"])
    remind_at: str | None = Field(
        description="When the reminder goes out; null when none is planned", examples=[AT]
    )
    reminded_at: str | None = Field(description="When it went out", examples=[None])
    met_at: str | None = Field(description="When the duty was done", examples=[None])


class ChannelsOut(BaseModel):
    channels: list[str] = Field(
        description="email, sms and webhook as configured (KRISELOGG_SMTP_HOST, _SMS_URL); "
        "webhook is always possible, per person",
        examples=[["email", "webhook"]],
    )
    people_reachable: bool = Field(
        description="False while neither e-mail nor SMS is set up: alerts are then only "
        "recorded in kriselogg (the log channel), unless a person has a webhook",
        examples=[True],
    )


class UnitName(BaseModel):
    id: str = Field(description="The unit's id", examples=["u-nord"])
    name: str = Field(description="Its name", examples=["Hjemmetjenesten nord"])


class MyUnits(BaseModel):
    """The units a report can be made for, as the report form asks it."""

    units: list[UnitName] = Field(
        description="The caller's own units: the unit they work in, then those they lead or "
        "deputise for; empty when the directory does not list them"
    )
    all_units: list[UnitName] = Field(
        description="Every unit of the organisation, in the directory's order: to choose from "
        "when the caller has no unit of their own"
    )


class SmsReplyHandled(BaseModel):
    """What an SMS reply did, for the gateway (or its relay) that posted it."""

    outcome: str = Field(
        description="acknowledged, already_acknowledged, wrong_code or unknown_number; "
        "only acknowledged changes anything",
        examples=["acknowledged"],
    )
    alert_id: str | None = Field(
        description="The alert the reply was for; null when none matched", examples=[ALERT_ID]
    )
    reply: str = Field(
        description="The answer SMS to the sender, in Norwegian",
        examples=["Takk, varselet er bekreftet kl. 10.17 og står i loggen."],
    )
    reply_sent: bool = Field(
        description="Whether the SMS gateway (KRISELOGG_SMS_URL) accepted the answer",
        examples=[True],
    )


SMS_INBOUND_BODY: dict[str, Any] = {
    "description": "The gateway's callback, signed: `X-Kriselogg-Signature: sha256=<hex>`, "
    "HMAC-SHA256 of the raw body with KRISELOGG_SMS_INBOUND_SECRET. JSON or form-encoded; "
    "besides this format, Twilio's (From, Body, MessageSid), Sveve's (number, msg) and "
    "46elks' (from, message, id) fields are read (docs/sms.md).",
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "title": "InboundSms",
                "required": ["from", "text"],
                "properties": {
                    "from": {
                        "type": "string",
                        "description": "The number the reply came from, written any way",
                        "examples": ["+47 900 00 002"],
                    },
                    "text": {
                        "type": "string",
                        "description": "The reply as typed",
                        "examples": ["OK 4821"],
                    },
                    "id": {
                        "type": "string",
                        "description": "The gateway's id of the message; makes the answer's "
                        "reference the same when the gateway retries",
                        "examples": ["mo-7f3a"],
                    },
                },
            }
        }
    },
}

log = logging.getLogger(__name__)


class Acknowledged(BaseModel):
    alert_id: str = Field(description="The alert", examples=[ALERT_ID])
    status: str = Field(description="acknowledged", examples=["acknowledged"])
    acknowledged_at: str | None = Field(
        description="When (the first acknowledgement)", examples=[AT]
    )


def build_router(
    store: NotifyStore,
    caller: Callable[..., Awaitable[Principal]],
    timezone: str,
    subjects: Subjects,
    ack_key: bytes,
    wake: Callable[[], None],
    share: Callable[[Directory], Awaitable[None]],
    channels: frozenset[str] = frozenset(),
    sms_replies: sms.SmsReplies | None = None,
) -> APIRouter:
    """`wake` nudges the dispatcher to publish a new fact now rather than at its next timer.
    `sms_replies`: what POST /sms/inbound needs; None, it answers that it is not set up."""
    router = APIRouter(prefix="/api/v1", tags=["notify"])
    Caller = Annotated[Principal, Depends(caller)]

    def admin(who: Principal) -> None:
        if not who.has_any("admin"):
            raise Problem(403, "Ingen tilgang", "Bare en administrator kan se og endre katalogen.")

    Base = Annotated[
        int | None,
        Query(
            ge=0,
            le=10**9,
            description="The version in use that the caller saw (the preview's `base`); when "
            "the directory changed since, 409 and nothing is applied. Left out: no check",
            openapi_examples={"seen": {"value": 6}},
        ),
    ]

    async def apply(
        directory: Directory, who: Principal, base: int | None, restored_from: int | None = None
    ) -> dict[str, Any]:
        try:
            version = await asyncio.to_thread(
                store.put_directory, directory, by=who, base=base, restored_from=restored_from
            )
        except DirectoryChanged as exc:
            raise Problem(
                409,
                "Katalogen er endret",
                f"Katalogen er endret siden du så den (versjon {base}, nå {exc.current}). Se "
                "over endringene på nytt før du tar den i bruk.",
                current=exc.current,
            ) from exc
        try:
            await share(directory)
        except Exception as exc:
            # Saved here, not yet seen by the access rules elsewhere; startup shares it again.
            raise Problem(
                503,
                "Katalogen er lagret, men ikke delt",
                "De andre tjenestene har ikke fått den ennå; send den igjen om litt.",
            ) from exc
        return {
            "org": directory.org.id,
            "units": len(directory.units),
            "people": len(directory.people),
            "version": version,
        }

    def refuse_problems(issues: list[Issue]) -> None:
        if issues:
            raise Problem(
                422,
                "Ugyldig katalog",
                f"Katalogen har {len(issues)} feil; ingenting er endret.",
                problems=[i.message for i in issues],
                issues=[{"loc": list(i.loc), "message": i.message} for i in issues],
            )

    @router.put(
        "/directory",
        summary="Replace the organisation's directory (admin)",
        response_model=None,
        responses={200: {"model": DirectorySaved, "description": "Saved and shared"}},
    )
    async def put_directory(body: Directory, who: Caller, base: Base = None) -> dict[str, Any]:
        """Applied as a new version, kept with who applied it (GET /api/v1/directory/versions).
        A problem (an unknown person, a cycle…) is 422 with `problems`, and nothing changes."""
        admin(who)
        if body.org.id != who.org_id:
            raise Problem(
                422,
                "Feil virksomhet",
                f"Katalogen er for «{body.org.id}», men du er logget inn for «{who.org_id}».",
            )
        refuse_problems(body.issues())
        return await apply(body, who, base)

    @router.post(
        "/directory/preview",
        summary="What a directory would change, applying nothing (admin)",
        response_model=DirectoryPreview,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "A directory as for PUT /api/v1/directory; any JSON is checked",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Directory"}}
                },
            }
        },
    )
    async def preview_directory(request: Request, who: Caller) -> dict[str, Any]:
        """Every problem with where it is (`loc`), and the units and people added, removed and
        changed against the version in use (`base`). Contact points are said to change, never
        shown."""
        admin(who)
        try:
            body = await request.json()
        except ValueError as exc:
            raise Problem(400, "Ikke JSON", "Send katalogen som JSON.") from exc
        return await asyncio.to_thread(preview, body, who.org_id)

    def preview(body: Any, org_id: str) -> dict[str, Any]:
        base, current = store.directory_in_use(org_id)
        candidate, issues = versions.check(body, org_id)
        return {
            "valid": candidate is not None and not issues,
            "base": base,
            "issues": [{"loc": list(i.loc), "message": i.message} for i in issues],
            "diff": versions.diff(current, candidate) if candidate is not None else None,
        }

    @router.get(
        "/directory/versions",
        summary="The directories applied lately (admin)",
        response_model=DirectoryVersions,
    )
    def directory_versions(who: Caller) -> dict[str, Any]:
        admin(who)
        kept = store.directory_versions(who.org_id)
        return {
            "current": kept[0].version if kept else 0,
            "versions": [
                {
                    "version": v.version,
                    "applied_at": ts(v.applied_at),
                    "applied_by": v.applied_by,
                    "applied_by_name": v.applied_by_name,
                    "restored_from": v.restored_from,
                    "units": v.units,
                    "people": v.people,
                }
                for v in kept
            ],
        }

    Version = Annotated[
        # Bounded: SQLite's integers end at 2**63, and no organisation reaches a billion versions.
        int,
        Path(
            ge=1,
            le=10**9,
            description="A directory version",
            openapi_examples={"one": {"value": 6}},
        ),
    ]

    def kept_version(who: Principal, version: int) -> Directory:
        directory = store.directory_at(who.org_id, version)
        if directory is None:
            raise Problem(
                404,
                "Versjonen finnes ikke",
                f"Versjon {version} av katalogen finnes ikke, eller den er for gammel til å "
                "være tatt vare på.",
            )
        return directory

    @router.get(
        "/directory/versions/{version}",
        summary="One directory as it was applied (admin)",
        response_model=DirectoryVersionBody,
    )
    def directory_version(version: Version, who: Caller) -> dict[str, Any]:
        admin(who)
        directory = kept_version(who, version)
        return {"version": version, "directory": directory.model_dump(mode="json", by_alias=True)}

    @router.post(
        "/directory/versions/{version}/restore",
        summary="Roll back: apply a kept version again, as a new version (admin)",
        response_model=None,
        responses={200: {"model": DirectorySaved, "description": "Applied and shared"}},
    )
    async def restore_directory(version: Version, who: Caller, base: Base = None) -> dict[str, Any]:
        admin(who)
        directory = kept_version(who, version)
        # Valid when applied; the legal registry may have changed since.
        refuse_problems(directory.issues())
        return await apply(directory, who, base, restored_from=version)

    def overseer(who: Principal) -> None:
        # Who was alerted, and how to reach them, is for those who act or check, not for
        # every employee who can report.
        if not who.has_any("leader", "safety_rep", "hr", "auditor", "admin"):
            raise Problem(403, "Ingen tilgang", "Rollen din kan ikke se varsler eller mottakere.")

    @router.get(
        "/alerts/channels",
        summary="The channels this installation can deliver alerts on",
        response_model=ChannelsOut,
    )
    def delivery_channels(who: Caller) -> dict[str, Any]:
        """Without e-mail or SMS, alerts are only recorded: the admin page warns of it."""
        overseer(who)
        real = sorted(c for c in channels if c in ("email", "sms"))
        return {"channels": sorted(channels), "people_reachable": bool(real)}

    @router.get(
        "/directory/units/{unit_id}/responders",
        summary="Who would be alerted for the unit today",
        response_model=None,
        responses={200: {"model": Responders, "description": "The chain for the unit"}},
    )
    def responders(unit_id: str, who: Caller) -> dict[str, Any]:
        overseer(who)
        directory = store.directory(who.org_id)
        if directory is None or all(u.id != unit_id for u in directory.units):
            raise Problem(404, "Enheten finnes ikke", f"Ingen enhet {unit_id} i virksomheten din.")
        res = Resolver(directory).resolve(unit_id, store.clock.today(timezone))
        return {
            "leaders": [
                {"person_id": r.person.id, "name": r.person.name, "role": r.role, "unit": r.unit_id}
                for r in res.leaders
            ],
            "safety_rep": (
                {"person_id": res.safety_rep.person.id, "name": res.safety_rep.person.name}
                if res.safety_rep
                else None
            ),
            "main_safety_rep": (
                {
                    "person_id": res.main_safety_rep.person.id,
                    "name": res.main_safety_rep.person.name,
                }
                if res.main_safety_rep
                else None
            ),
            "hr": [{"person_id": r.person.id, "name": r.person.name} for r in res.hr],
            "skipped": [
                {
                    "person_id": s.person.id,
                    "name": s.person.name,
                    "role": s.role,
                    "reason": s.reason,
                }
                for s in res.skipped
            ],
        }

    @router.get(
        "/directory/me",
        summary="The caller's own units, for the report form (any role)",
        response_model=MyUnits,
    )
    def my_units(who: Caller) -> dict[str, Any]:
        """Unit ids and names only: no people, so every role may ask."""
        directory = store.directory(who.org_id)
        if directory is None:
            return {"units": [], "all_units": []}
        everyone = [{"id": u.id, "name": u.name} for u in directory.units]
        person = next((p for p in directory.people if p.id == who.person_id), None)
        # The unit they work in first; then those they answer for, where they may also report.
        own = {person.unit} if person is not None and person.unit else set()
        me = who.person_id
        led = {u.id for u in directory.units if me == u.leader or me in u.deputies}
        mine = [u for u in everyone if u["id"] in own]
        mine += [u for u in everyone if u["id"] in led - own]
        return {"units": mine, "all_units": everyone}

    @router.get(
        "/alerts",
        response_model=None,
        responses={200: {"model": list[Alert], "description": "Oldest first"}},
    )
    def alerts(who: Caller, incident_id: str | None = None) -> list[dict[str, Any]]:
        """Every alert and reminder: status, attempts and times, for the portal and audits."""
        overseer(who)
        return store.alerts(who.org_id, incident_id)

    @router.get(
        "/alerts/deadlines/{incident_id}",
        response_model=None,
        responses={200: {"model": list[DeadlineReminder], "description": "Soonest due first"}},
    )
    def deadlines(incident_id: str, who: Caller) -> list[dict[str, Any]]:
        """The duties of an incident, law and routine labelled, with their reminders."""
        overseer(who)
        return store.deadlines(who.org_id, incident_id)

    @router.get(
        "/alerts/receipt/{incident_id}",
        summary="The reporter's receipt: who was alerted, on which channel, who acknowledged",
        response_model=None,
        responses={200: {"model": receipts.Receipt, "description": "First alerted first"}},
    )
    def receipt(incident_id: str, who: Caller) -> dict[str, Any]:
        """For the person who reported the incident, and for those who may see alerts. Names,
        roles, channels and delivery states only: no contact points, deadlines or facts."""
        summary = store.summary(who.org_id, incident_id)
        if summary is None or "reported_at" not in summary:
            # Unknown, or not yet planned (the portal asks again), or closed before notify saw
            # its report: there is nothing to tell.
            raise Problem(404, "Hendelsen finnes ikke", f"Ingen varsler for {incident_id} (ennå).")
        reporter = summary.get("reporter_id")  # None in summaries kept before receipts
        if reporter is None or reporter != who.person_id:
            overseer(who)
        directory = store.directory(who.org_id)
        facts = IncidentFacts(
            str(summary.get("unit_id") or ""), str(summary.get("category", "")), reporter or ""
        )
        may_open = directory is not None and allowed(who, "read", facts, tree_of(directory.tree()))
        shown = receipts.entries(store.alerts(who.org_id, incident_id))
        return receipts.summary_of(incident_id, summary.get("reported_at"), shown, may_open)

    async def acknowledge(org_id: str, alert_id: str, via: AckVia) -> dict[str, Any]:
        subject = subjects.subject(org_id, "alert", "AlertAcknowledged")

        def fact(alert: dict[str, Any], at: datetime) -> OutboxFact:
            return alert_fact("AlertAcknowledged", alert, subject, at, via=via)

        updated = await asyncio.to_thread(store.acknowledge, org_id, alert_id, via, fact)
        if updated is None:
            raise Problem(
                404, "Varselet finnes ikke", f"Ingen varsel {alert_id} i virksomheten din."
            )
        wake()
        return {
            "alert_id": alert_id,
            "status": updated["status"],
            "acknowledged_at": updated["acknowledged_at"],
        }

    @router.post(
        "/alerts/{alert_id}/ack",
        summary="Acknowledge one's own alert; escalation stops",
        response_model=None,
        responses={200: {"model": Acknowledged, "description": "It is in the incident's log"}},
    )
    async def ack(alert_id: str, who: Caller) -> dict[str, Any]:
        alert = await asyncio.to_thread(store.alert, who.org_id, alert_id)
        # A receipt is not an alert: acknowledging it would put a false fact in the log.
        if alert is None or alert["kind"] == receipts.RECEIPT_KIND:
            raise Problem(
                404, "Varselet finnes ikke", f"Ingen varsel {alert_id} i virksomheten din."
            )
        if alert["person_id"] != who.person_id:
            raise Problem(
                403,
                "Ikke ditt varsel",
                "Bare den som ble varslet, kan bekrefte varselet; det er det loggen viser.",
            )
        return await acknowledge(who.org_id, alert_id, via="kriselogg")

    def signed(
        request: Request, alert_id: str, expires: int, sig: str
    ) -> dict[str, Any] | HTMLResponse:
        """The alert a link is for, or the Norwegian page that says why the link does not work
        (the person tapped it on a phone: no JSON).

        Only failures count against a limit, per real client address: a link we signed is
        never refused for being used often (mail scanners open every link; the leader must
        still get through), while guessing signatures is slowed down at its source.
        """
        alert = store.alert_by_id(alert_id)
        # Signed by us at all (any expiry), then still valid now: two different answers.
        if alert is None or not check_ack(ack_key, alert_id, expires, sig, 0):
            client = client_address(request)
            retry = link_failures.blocked(client)
            if retry is not None:
                refused = page(
                    "For mange forsøk",
                    f"<p>Det er prøvd for mange lenker som ikke virker herfra. Vent {retry} "
                    "sekunder og prøv igjen, eller logg inn i kriselogg og bekreft varselet "
                    "der.</p>",
                    status=429,
                )
                refused.headers["Retry-After"] = str(retry)
                return refused
            link_failures.hit(client)
            return page(
                "Lenken virker ikke",
                "<p>Lenken er ufullstendig eller endret. Åpne hendelsen i kriselogg og bekreft "
                "varselet der, eller ring lederen din.</p>",
                status=404,
            )
        if not check_ack(ack_key, alert_id, expires, sig, store.clock.time()):
            return page(
                "Lenken er utløpt",
                "<p>Bekreftelseslenker gjelder bare en stund. Logg inn i kriselogg og bekreft "
                "varselet på hendelsen.</p>",
                status=410,
            )
        return alert

    def done(alert: dict[str, Any], first: bool) -> HTMLResponse:
        """The page after a use of the link: the first acknowledges, any later one (a second
        tap, a replayed form, the link opened again) says it was done already and when."""
        at = datetime.fromisoformat(str(alert["acknowledged_at"])).astimezone(ZoneInfo(timezone))
        when = f"{at:%d.%m.%Y} kl. {at:%H.%M}"
        if first:
            return page(
                "Varselet er bekreftet",
                f"<p>Takk. Varselet ble bekreftet {escape(when)}, og det står i hendelsesloggen. "
                "Åpne hendelsen i kriselogg for å se hva som skjedde og hva som skal gjøres.</p>",
            )
        return page(
            "Lenken er allerede brukt",
            f"<p>Varselet ble bekreftet {escape(when)}. Lenken kan bare brukes én gang, og "
            "dette trykket endret ingenting.</p>",
        )

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(
            status_code=status,
            content="<!doctype html><html lang='nb'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            # The portal's icon and style: the link is opened on the one origin (PUBLIC_URL).
            "<link rel='icon' href='/static/favicon.svg' type='image/svg+xml'>"
            "<link rel='stylesheet' href='/static/style.css'>"
            f"<title>{escape(title)}</title></head><body><main>"
            f"<h1>{escape(title)}</h1>{body}</main></body></html>",
        )

    # The links work without a token: limit how fast anyone can try signatures on them.
    link_failures = RateLimit(per_minute=30)

    @router.get(
        "/alerts/{alert_id}/ack",
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    def ack_page(
        request: Request,
        alert_id: str,
        expires: Annotated[int, Query()],
        sig: Annotated[str, Query()],
    ) -> HTMLResponse:
        alert = signed(request, alert_id, expires, sig)
        if isinstance(alert, HTMLResponse):
            return alert
        if alert["acknowledged_at"]:
            return done(alert, first=False)
        return page(
            "Bekreft varselet",
            f"<p>Hei {escape(alert['person_name'])}. Trykk på knappen for å bekrefte at du har "
            "mottatt varselet og tar hånd om det.</p>"
            f"<form method='post' action='ack-link'>"
            f"<input type='hidden' name='expires' value='{expires}'>"
            f"<input type='hidden' name='sig' value='{escape(sig)}'>"
            "<button type='submit'>Jeg har mottatt varselet</button></form>",
        )

    @router.post(
        "/alerts/{alert_id}/ack-link",
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    async def ack_by_link(
        request: Request,
        alert_id: str,
        expires: Annotated[int, Form()],
        sig: Annotated[str, Form()],
    ) -> HTMLResponse:
        alert = await asyncio.to_thread(signed, request, alert_id, expires, sig)
        if isinstance(alert, HTMLResponse):
            return alert
        # A second tap (or a replayed form) changes nothing: the first acknowledgement stands,
        # and the use is logged as a repeat.
        updated = await acknowledge(alert["org_id"], alert_id, via="lenke")
        return done(updated, first=not alert["acknowledged_at"])

    @router.post(
        "/sms/inbound",
        summary="An SMS reply, posted by the SMS gateway: `OK <code>` acknowledges the alert",
        response_model=None,
        openapi_extra={"requestBody": SMS_INBOUND_BODY},
        responses={
            200: {"model": SmsReplyHandled, "description": "Handled; the answer SMS went out"},
            401: {"description": "Signature missing or wrong"},
            404: {"description": "Not set up here: KRISELOGG_SMS_INBOUND_SECRET is not set"},
        },
    )
    async def sms_inbound(request: Request) -> dict[str, Any]:
        """No token: the gateway signs the body. Answers 200 for every signed reply, matched or
        not, so the gateway does not retry what was handled; only `acknowledged` changes
        anything. Logs ids and outcomes, never the number or the text."""
        if sms_replies is None or sms_replies.secret is None:
            # Not an outage but a door this installation has not opened: 404, with the fix.
            raise Problem(
                404,
                "Svar på SMS er ikke satt opp",
                "Sett KRISELOGG_SMS_INBOUND_SECRET i notify og den samme nøkkelen i "
                "SMS-gatewayen (eller mellomleddet som signerer for den).",
            )
        body = await request.body()
        if not sms.signature_ok(
            sms_replies.secret, body, request.headers.get(sms.SIGNATURE_HEADER)
        ):
            raise Problem(
                401,
                "Ugyldig signatur",
                f"{sms.SIGNATURE_HEADER} må være sha256=<hex>: HMAC-SHA256 av hele kroppen "
                "med KRISELOGG_SMS_INBOUND_SECRET.",
            )
        message = sms.inbound_sms(body, request.headers.get("content-type", ""))
        if message is None:
            raise Problem(
                422,
                "Ukjent format",
                'Kroppen må ha avsender og tekst som {"from", "text"} eller i et av '
                "formatene i docs/sms.md.",
            )
        number = sms.phone_number(message.sender)
        now = store.clock.now()
        alerts = (
            await asyncio.to_thread(store.sms_alerts_to, number, now - sms_replies.window)
            if number
            else []
        )
        outcome, alert = sms.match_reply(alerts, message.text, sms_replies.code_key)
        acknowledged_at: datetime | None = None
        link: str | None = None
        if alert is not None:
            # A repeat goes through acknowledge too: it changes nothing and is logged as a use.
            updated = await acknowledge(str(alert["org_id"]), str(alert["id"]), via="sms")
            acknowledged_at = datetime.fromisoformat(str(updated["acknowledged_at"]))
            link = sms_replies.incident_link(str(alert["incident_id"]))
        text = sms.reply_text(
            outcome,
            acknowledged_at,
            now,
            ZoneInfo(sms_replies.timezone),
            link,
            sms_replies.window,
        )
        sent = False
        if number:
            try:
                await sms_replies.send(number, text, sms.reply_reference(message.message_id, body))
                sent = True
            except Exception as exc:  # the reply did its work; the answer is only courtesy
                log.warning("sms reply answer not sent: %s", type(exc).__name__)
        log.info(
            "sms reply: %s (alert %s, answer %s)",
            outcome,
            alert["id"] if alert else "-",
            "sent" if sent else "not sent",
        )
        return {
            "outcome": outcome,
            "alert_id": str(alert["id"]) if alert else None,
            "reply": text,
            "reply_sent": sent,
        }

    return router
