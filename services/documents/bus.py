"""The documents service on the bus: it anchors every incident head it sees, and answers for it."""

from __future__ import annotations

import asyncio

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from services.documents.store import AnchorStore
from shared import bus
from shared.schemas import AnchorQueryV1, AnchorV1, IncidentEventV1
from shared.settings import Settings

ANCHORS_DURABLE = "documents-anchors"


def register(broker: NatsBroker, anchors: AnchorStore, settings: Settings) -> None:
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

    @broker.subscriber(names.all_orgs_request("AnchorQuery"), queue=ANCHORS_DURABLE)
    async def on_anchor_query(query: AnchorQueryV1) -> AnchorV1:
        latest = await asyncio.to_thread(anchors.latest, query.org_id, query.incident_id)
        if latest is None:
            return AnchorV1(org_id=query.org_id, incident_id=query.incident_id, found=False)
        seq, hash_, at = latest
        return AnchorV1(org_id=query.org_id, incident_id=query.incident_id, found=True, seq=seq,
                        hash=hash_, anchored_at=at)  # fmt: skip
