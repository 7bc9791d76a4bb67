"""The bus contracts: every message that crosses a service boundary.

A message's schema name and version travel in the `Kriselogg-Schema` header. A new field is added
with a default, so older consumers keep working; anything else is a new version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_ORG = "Kriselogg-Org"
HEADER_SCHEMA = "Kriselogg-Schema"


class Contract(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    schema_name: ClassVar[str]
    schema_version: ClassVar[int] = 1

    @classmethod
    def schema_header(cls) -> str:
        return f"{cls.schema_name}/v{cls.schema_version}"


INCIDENT = "0b6f6a52-4a3e-4c9e-9f7e-2d1c1f0e8a11"
HASH = "9f2c4e1a7b3d5f60e8a1c2b3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607"
AT = "2026-03-02T09:15:00Z"
ALERT = "c513bf3b-f1c0-5fad-825e-3b2d4b7102f6"


def _org() -> Any:
    return Field(description="The organisation", examples=["demo"])


def _incident() -> Any:
    return Field(description="The incident's id", examples=[INCIDENT])


def _fact_id(example: str) -> Any:
    return Field(description="Globally unique; also the Nats-Msg-Id", examples=[example])


class Actor(BaseModel):
    """A person (or a service, `system:<name>`) who did something."""

    model_config = ConfigDict(frozen=True)
    id: str = Field(description="Person id in the organisation's directory", examples=["p-ln"])
    name: str = Field(description="Their name", examples=["Lise Nord"])


class IncidentEventV1(Contract):
    """One stored incident event exactly as exported, relayed by incidents."""

    schema_name: ClassVar[str] = "IncidentEvent"
    seq: int = Field(description="The event's place in the incident's log, from 1", examples=[1])
    type: str = Field(
        description="IncidentReported, FactsRecorded, MeasureLogged, NoteAdded, EntryCorrected, "
        "RecipientAlerted, AlertAcknowledged, AlertEscalated, DeadlineSet, DeadlineMet, "
        "PhaseChanged, DocumentIssued or IncidentClosed",
        examples=["IncidentReported"],
    )
    incident_id: str = _incident()
    org_id: str = _org()
    recorded_at: str = Field(description="When it was stored (UTC, RFC 3339)", examples=[AT])
    occurred_at: str | None = Field(
        default=None, description="When it happened, when that was given apart", examples=[AT]
    )
    actor: Actor = Field(description="Who did it")
    data: dict[str, Any] = Field(
        description="What the event says; for IncidentReported the report (ReportIn) itself",
        examples=[{"title": "Ringte politiet", "status": "done"}],
    )
    prev_hash: str = Field(
        description="The hash of the event before (64 zeros for seq 1)", examples=["0" * 64]
    )
    hash: str = Field(
        description="SHA-256 (hex) of this event's canonical JSON with prev_hash", examples=[HASH]
    )

    def msg_id(self) -> str:
        return f"{self.incident_id}:{self.seq}"


AlertRole = Literal["nearest_leader", "deputy", "safety_rep", "main_safety_rep", "hr", "leader"]
AlertFactType = Literal["RecipientAlerted", "AlertAcknowledged", "AlertEscalated"]
AckVia = Literal["lenke", "sms", "kriselogg"]


class AlertFactV1(Contract):
    """A fact about an alert, published by notify and appended by incidents to the incident log."""

    schema_name: ClassVar[str] = "AlertFact"
    fact_id: str = _fact_id(f"{ALERT}:RecipientAlerted")
    type: AlertFactType = Field(
        description="What happened to the alert", examples=["RecipientAlerted"]
    )
    alert_id: str = Field(description="The alert's id", examples=[ALERT])
    incident_id: str = _incident()
    org_id: str = _org()
    at: datetime = Field(description="When it happened", examples=[AT])
    recipient: Actor = Field(description="Who was alerted")
    role: AlertRole = Field(description="Why this person was alerted", examples=["nearest_leader"])
    channel: str = Field(description="email, sms, webhook or log", examples=["email"])
    reason: str | None = Field(
        default=None, description="Why it was escalated", examples=["not acknowledged in time"]
    )
    replaces_alert_id: str | None = Field(
        default=None, description="The alert this one follows up (escalation)", examples=[None]
    )
    via: AckVia | None = Field(
        default=None,
        description="AlertAcknowledged: how the person acknowledged: the signed link in the "
        "message, an SMS reply, or logged in to kriselogg",
        examples=["lenke"],
    )


DutyKind = Literal["law", "routine"]


class DeadlineFactV1(Contract):
    """A duty with a deadline that notify computed for an incident; incidents appends DeadlineSet.

    `kind` keeps law and the organisation's own routine apart, so that neither the log nor the
    UI ever presents a local routine as a legal requirement.
    """

    schema_name: ClassVar[str] = "DeadlineFact"
    fact_id: str = _fact_id(f"{INCIDENT}:deadline:aml-5-2")
    type: Literal["DeadlineSet"] = Field(
        default="DeadlineSet", description="Always DeadlineSet", examples=["DeadlineSet"]
    )
    deadline_id: str = Field(
        description="The duty's id: a provision of the legal registry, or a routine step",
        examples=["aml-5-2"],
    )
    incident_id: str = _incident()
    org_id: str = _org()
    at: datetime = Field(description="When the deadline was computed", examples=[AT])
    kind: DutyKind = Field(description="law, or the organisation's own routine", examples=["law"])
    title: str = Field(
        description="The duty", examples=["Varsle Arbeidstilsynet og politiet straks"]
    )
    legal_ref: str | None = Field(
        default=None, description="The law that sets it", examples=["aml § 5-2"]
    )
    due_at: datetime | None = Field(
        default=None,
        description="When it is due; null where the law sets no date (snarest mulig, none)",
        examples=["2026-03-03T15:00:00Z"],
    )
    due_label: str = Field(description="The due time in words", examples=["straks"])
    responsible: Actor = Field(description="Who answers for it")
    responsible_role: str = Field(description="Their role in it", examples=["nearest_leader"])


class DocumentFactV1(Contract):
    """A log form was issued (downloaded or archived); incidents appends DocumentIssued."""

    schema_name: ClassVar[str] = "DocumentFact"
    fact_id: str = _fact_id(f"{INCIDENT}:document:final:12:pdf")
    type: Literal["DocumentIssued"] = Field(
        default="DocumentIssued", description="Always DocumentIssued", examples=["DocumentIssued"]
    )
    incident_id: str = _incident()
    org_id: str = _org()
    at: datetime = Field(description="When it was issued", examples=[AT])
    format: Literal["docx", "pdf"] = Field(description="Word or PDF", examples=["pdf"])
    as_of_seq: int = Field(description="The last log entry in the form", examples=[12])
    head_hash: str = Field(description="The hash of that entry", examples=[HASH])
    sha256: str = Field(description="SHA-256 of the file as issued", examples=[HASH])
    size: int = Field(description="Its size in bytes", examples=[37911])
    filename: str = Field(description="The file's name", examples=["loggskjema-endelig-12.pdf"])
    issued_by: Actor = Field(description="Who it was issued to")
    purpose: Literal["download", "final"] = Field(
        default="download",
        description="download, or final (archived at the close)",
        examples=["final"],
    )


class LogCheckpointV1(Contract):
    """A checkpoint of the organisation's log was made and signed; notify sends it to witnesses."""

    schema_name: ClassVar[str] = "LogCheckpoint"
    org_id: str = _org()
    size: int = Field(description="Events in the organisation's log (its tree size)", ge=0)
    root_hash: str = Field(description="The Merkle tree's root hash, base64 (RFC 9162)")
    note: str = Field(description="The checkpoint as a C2SP signed note, verbatim")
    reason: Literal["interval", "closed", "document"] = Field(
        description="Why it was made: the log grew, an incident was closed, a form was issued"
    )
    made_at: datetime = Field(description="When it was signed", examples=[AT])
    tsa_token: str | None = Field(
        default=None, description="An RFC 3161 time-stamp token of the note's text, base64"
    )


class UnitV1(BaseModel):
    """A unit of the organisation, with who answers for it (person ids)."""

    model_config = ConfigDict(frozen=True)
    id: str = Field(description="The unit's id", examples=["u-nord"])
    parent: str | None = Field(
        default=None, description="The unit above; null at the top", examples=["u-top"]
    )
    leader: str | None = Field(default=None, description="Its leader", examples=["p-ln"])
    deputies: list[str] = Field(
        default_factory=list,
        description="The leader's deputies, in order",
        examples=[["p-stedfortreder"]],
    )
    safety_rep: str | None = Field(
        default=None, description="Its safety representative", examples=["p-vo"]
    )


class DirectoryTreeV1(Contract):
    """Who answers for which unit, shared by notify (owner of the directory) with the services
    that apply the access rules. Kept in a JetStream key-value bucket, one key per organisation,
    so a service starting up reads the current tree of every organisation at once."""

    schema_name: ClassVar[str] = "DirectoryTree"
    org_id: str = _org()
    units: list[UnitV1] = Field(description="Every unit of the organisation")
    main_safety_rep: str | None = Field(
        default=None, description="The main safety representative (person id)", examples=["p-hvo"]
    )


class DeadLetterV1(Contract):
    """A message that could not be processed, kept with the reason (never silently dropped)."""

    schema_name: ClassVar[str] = "DeadLetter"
    service: str = Field(description="The service that gave up on it", examples=["notify"])
    reason: str = Field(
        description="Why: the error's kind and ids, never personal data",
        examples=["PermanentError: organisation demo has no directory"],
    )
    original_subject: str = Field(
        description="Where it was published", examples=["kriselogg.demo.incident.IncidentReported"]
    )
    original_msg_id: str | None = Field(
        default=None, description="Its Nats-Msg-Id", examples=[f"{INCIDENT}:1"]
    )
    stream_seq: int | None = Field(
        default=None, description="Its place in the stream", examples=[42]
    )
    body: str = Field(description="The message as it was (UTF-8)", examples=['{"seq": 1}'])


class AnchorQueryV1(Contract):
    """Asks the anchor keeper for the latest head it saw of one incident (request-reply)."""

    schema_name: ClassVar[str] = "AnchorQuery"
    org_id: str = _org()
    incident_id: str = _incident()


class AnchorV1(Contract):
    """The latest head (seq, hash) of an incident as seen on the bus, kept outside its store."""

    schema_name: ClassVar[str] = "Anchor"
    org_id: str = _org()
    incident_id: str = _incident()
    found: bool = Field(description="False when no head of the incident was seen", examples=[True])
    seq: int = Field(
        default=0, description="The latest head's seq (0 when not found)", examples=[12]
    )
    hash: str = Field(
        default="", description="The latest head's hash (empty when not found)", examples=[HASH]
    )
    anchored_at: str | None = Field(default=None, description="When it was seen", examples=[AT])
