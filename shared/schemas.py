"""The bus contracts: every message that crosses a service boundary (DESIGN §5).

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


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    name: str


class IncidentEventV1(Contract):
    """One stored incident event exactly as exported (DESIGN §8), relayed by incidents."""

    schema_name: ClassVar[str] = "IncidentEvent"
    seq: int
    type: str
    incident_id: str
    org_id: str
    recorded_at: str
    occurred_at: str | None = None
    actor: Actor
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def msg_id(self) -> str:
        return f"{self.incident_id}:{self.seq}"


AlertRole = Literal["nearest_leader", "deputy", "safety_rep", "main_safety_rep", "hr", "leader"]
AlertFactType = Literal["RecipientAlerted", "AlertAcknowledged", "AlertEscalated"]


class AlertFactV1(Contract):
    """A fact about an alert, published by notify and appended by incidents to the incident log."""

    schema_name: ClassVar[str] = "AlertFact"
    fact_id: str = Field(description="Globally unique; also the Nats-Msg-Id")
    type: AlertFactType
    alert_id: str
    incident_id: str
    org_id: str
    at: datetime
    recipient: Actor
    role: AlertRole
    channel: str
    reason: str | None = None
    replaces_alert_id: str | None = None


DutyKind = Literal["law", "routine"]


class DeadlineFactV1(Contract):
    """A duty with a deadline that notify computed for an incident; incidents appends DeadlineSet.

    `kind` keeps law and the organisation's own routine apart, so that neither the log nor the
    UI ever presents a local routine as a legal requirement.
    """

    schema_name: ClassVar[str] = "DeadlineFact"
    fact_id: str = Field(description="Globally unique; also the Nats-Msg-Id")
    type: Literal["DeadlineSet"] = "DeadlineSet"
    deadline_id: str
    incident_id: str
    org_id: str
    at: datetime
    kind: DutyKind
    title: str
    legal_ref: str | None = None
    due_at: datetime
    due_label: str
    responsible: Actor
    responsible_role: str


class DocumentFactV1(Contract):
    """A log form was issued (downloaded or archived); incidents appends DocumentIssued."""

    schema_name: ClassVar[str] = "DocumentFact"
    fact_id: str = Field(description="Globally unique; also the Nats-Msg-Id")
    type: Literal["DocumentIssued"] = "DocumentIssued"
    incident_id: str
    org_id: str
    at: datetime
    format: Literal["docx", "pdf"]
    as_of_seq: int
    head_hash: str
    sha256: str = Field(description="SHA-256 of the file as issued")
    size: int
    filename: str
    issued_by: Actor
    purpose: Literal["download", "final"] = "download"


class UnitV1(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    parent: str | None = None
    leader: str | None = None
    deputies: list[str] = Field(default_factory=list)
    safety_rep: str | None = None


class DirectoryTreeV1(Contract):
    """Who answers for which unit, shared by notify (owner of the directory) with the services
    that apply the access rules. Kept in a JetStream key-value bucket, one key per organisation,
    so a service starting up reads the current tree of every organisation at once."""

    schema_name: ClassVar[str] = "DirectoryTree"
    org_id: str
    units: list[UnitV1]
    main_safety_rep: str | None = None


class DeadLetterV1(Contract):
    """A message that could not be processed, kept with the reason (never silently dropped)."""

    schema_name: ClassVar[str] = "DeadLetter"
    service: str
    reason: str
    original_subject: str
    original_msg_id: str | None = None
    stream_seq: int | None = None
    body: str


class AnchorQueryV1(Contract):
    """Asks the anchor keeper for the latest head it saw of one incident (request-reply)."""

    schema_name: ClassVar[str] = "AnchorQuery"
    org_id: str
    incident_id: str


class AnchorV1(Contract):
    """The latest head (seq, hash) of an incident as seen on the bus, kept outside its store."""

    schema_name: ClassVar[str] = "Anchor"
    org_id: str
    incident_id: str
    found: bool
    seq: int = 0
    hash: str = ""
    anchored_at: str | None = None
