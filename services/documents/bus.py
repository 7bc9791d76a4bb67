"""The documents service on the bus: anchors of every incident head, the final log form of every
closed incident, and the DocumentIssued facts it publishes back to the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from services.documents.store import AnchorStore, Archive, ConverterMissing, LogForms
from shared import bus
from shared.auth import issue_token
from shared.schemas import Actor, AnchorQueryV1, AnchorV1, DocumentFactV1, IncidentEventV1
from shared.settings import Settings

log = logging.getLogger(__name__)
ANCHORS_DURABLE = "documents-anchors"
FINAL_DURABLE = "documents-final"
SYSTEM = Actor(id="system:documents", name="Dokumenttjenesten i kriselogg")


async def publish_fact(broker: NatsBroker, settings: Settings, fact: DocumentFactV1) -> None:
    """Publish and wait for the stream's ack: a document is only issued once it is on record."""
    await bus.publish(
        broker,
        settings.subjects.subject(fact.org_id, "document", fact.type),
        fact,
        msg_id=fact.fact_id,
        org_id=fact.org_id,
        stream=settings.subjects.stream,
    )


def register(
    broker: NatsBroker,
    anchors: AnchorStore,
    archive: Archive,
    forms: Callable[[], LogForms | None],
    settings: Settings,
    key: str,
) -> None:
    names = settings.subjects

    async def on_event(body: bytes, _: dict[str, str]) -> None:
        event = IncidentEventV1.model_validate_json(body)
        await asyncio.to_thread(anchors.anchor, event.org_id, event.incident_id, event.seq,
                                event.hash)  # fmt: skip

    @bus.durable_pull(
        broker,
        durable=ANCHORS_DURABLE,
        filter_subject=names.all_orgs("incident"),
        settings=settings,
        # The anchor keeps the highest seq whatever the order, so no need to wait in line.
        max_ack_pending=100,
    )
    async def on_incident_event(msg: NatsMessage) -> None:
        await bus.process(msg, broker, settings, "documents", on_event)

    async def on_closed(body: bytes, _: dict[str, str]) -> None:
        event = IncidentEventV1.model_validate_json(body)
        issuer = forms()
        if issuer is None:
            raise RuntimeError("documents is not connected to incidents")  # retried later
        # The chain up to the closing must be anchored first, or a verify could still race it.
        await asyncio.to_thread(anchors.wait_for, event.org_id, event.incident_id, event.seq, 10)
        token = issue_token(key, org_id=event.org_id, person_id=SYSTEM.id, name=SYSTEM.name,
                            roles=["auditor"], clock=anchors.clock)  # fmt: skip
        for fmt in ("docx", "pdf"):
            filename = f"loggskjema-endelig-{event.seq}.{fmt}"
            if await asyncio.to_thread(archive.has, event.org_id, event.incident_id, filename):
                continue  # a redelivered closing: this one is archived already
            try:
                issued = await issuer.issue(
                    org_id=event.org_id, incident_id=event.incident_id, token=token, fmt=fmt,
                    as_of=None, as_of_seq=event.seq, issued_by=SYSTEM, purpose="final",
                    fact_id=f"{event.incident_id}:document:final:{event.seq}:{fmt}",
                )  # fmt: skip
            except ConverterMissing:
                log.warning("no LibreOffice: final log of %s archived as Word only", event.seq)
                continue
            await asyncio.to_thread(
                archive.put, event.org_id, event.incident_id, filename, issued.content
            )

    @bus.durable_pull(
        broker,
        durable=FINAL_DURABLE,
        filter_subject=names.all_orgs("incident", "IncidentClosed"),
        settings=settings,
        max_ack_pending=4,
        # Rendering and converting a long log can take a while; do not redeliver meanwhile.
        ack_wait=120.0,
    )
    async def on_incident_closed(msg: NatsMessage) -> None:
        await bus.process(msg, broker, settings, "documents", on_closed)

    @broker.subscriber(names.all_orgs_request("AnchorQuery"), queue=ANCHORS_DURABLE)
    async def on_anchor_query(query: AnchorQueryV1) -> AnchorV1:
        latest = await asyncio.to_thread(anchors.latest, query.org_id, query.incident_id)
        if latest is None:
            return AnchorV1(org_id=query.org_id, incident_id=query.incident_id, found=False)
        seq, hash_, at = latest
        return AnchorV1(org_id=query.org_id, incident_id=query.incident_id, found=True, seq=seq,
                        hash=hash_, anchored_at=at)  # fmt: skip
