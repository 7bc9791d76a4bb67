"""Notify's side of the bus: reports in, alerts out, facts about them back to the log."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from services.notify.domain import Resolver, Responder
from services.notify.store import NotifyStore, OutboxFact, PlannedAlert
from shared import bus
from shared.schemas import Actor, AlertFactV1, IncidentEventV1
from shared.settings import Settings
from shared.subjects import Subjects

log = logging.getLogger(__name__)
REPORTS_DURABLE = "notify-incident-reported"
# Alert ids are derived from what they are about, so a redelivered report finds its own alerts.
ALERT_NAMESPACE = uuid.UUID("5b0f7a52-3c1e-4c2a-9a57-0b6f1f1f6c11")


def alert_id(incident_id: str, role: str, person_id: str) -> str:
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{incident_id}:{role}:{person_id}"))


def first_alerts(event: IncidentEventV1, resolver: Resolver, day: datetime) -> list[Responder]:
    """Who is alerted at once: the nearest present leader and the safety rep (aml § 2-3)."""
    resolution = resolver.resolve(
        str(event.data.get("unit_id", "")),
        day.date(),
        [str(p) for p in event.data.get("affected", [])],
    )
    chosen: list[Responder] = resolution.leaders[:1]
    if resolution.safety_rep is not None and all(
        r.person.id != resolution.safety_rep.person.id for r in chosen
    ):
        chosen.append(resolution.safety_rep)
    return chosen


class Dispatcher:
    """Delivers planned alerts and publishes the facts about them, each exactly once in effect."""

    def __init__(self, store: NotifyStore, broker: NatsBroker, names: Subjects) -> None:
        self.store = store
        self.names = names
        self.broker = broker
        self._wake = asyncio.Event()
        self.delivered = 0

    async def deliver(self, alert: PlannedAlert) -> None:
        # The `log` channel: the alert is recorded and handed over here. Ids only, never names.
        log.info(
            "alert %s for incident %s handed to channel %s",
            alert.id,
            alert.incident_id,
            alert.channel,
        )
        fact = AlertFactV1(
            fact_id=f"{alert.id}:RecipientAlerted",
            type="RecipientAlerted",
            alert_id=alert.id,
            incident_id=alert.incident_id,
            org_id=alert.org_id,
            at=datetime.now(UTC),
            recipient=Actor(id=alert.person_id, name=alert.person_name),
            role=alert.role,  # type: ignore[arg-type]
            channel=alert.channel,
        )
        outbox = OutboxFact(
            fact_id=fact.fact_id,
            org_id=alert.org_id,
            subject=self.names.subject(alert.org_id, "alert", fact.type),
            body=fact.model_dump_json(),
        )
        await asyncio.to_thread(self.store.mark_sent, alert.id, outbox)
        self.delivered += 1

    async def deliver_pending(self, alert_ids: list[str] | None = None) -> None:
        for alert in await asyncio.to_thread(self.store.pending, alert_ids):
            await self.deliver(alert)
        await self.flush()

    async def flush(self) -> None:
        """Publish every recorded fact not yet acknowledged by the stream, oldest first."""
        while facts := await asyncio.to_thread(self.store.unpublished):
            for fact in facts:
                message = AlertFactV1.model_validate_json(fact.body)
                await bus.publish(
                    self.broker,
                    fact.subject,
                    message,
                    msg_id=fact.fact_id,
                    org_id=fact.org_id,
                    stream=self.names.stream,
                )
                await asyncio.to_thread(self.store.mark_published, fact.fact_id)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Safety net after a crash or a bus outage: finish what was recorded but not done."""
        failures = 0
        while True:
            bus.raise_if_cancelled()
            try:
                await self.deliver_pending()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning("dispatcher: %s, retrying", type(exc).__name__)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                continue
            await bus.wait_for_wake(self._wake, 2.0)


def register(
    broker: NatsBroker, store: NotifyStore, dispatcher: Dispatcher, settings: Settings
) -> None:
    zone = ZoneInfo(settings.timezone)

    async def on_reported(body: bytes, _: dict[str, str]) -> None:
        event = IncidentEventV1.model_validate_json(body)
        if event.type != "IncidentReported":
            raise bus.PermanentError(f"expected IncidentReported, got {event.type}")
        directory = await asyncio.to_thread(store.directory, event.org_id)
        if directory is None:
            raise bus.PermanentError(f"organisation {event.org_id} has no directory")
        recipients = first_alerts(event, Resolver(directory), datetime.now(zone))
        if not recipients:
            raise bus.PermanentError(
                f"nobody to alert for unit {event.data.get('unit_id')} in {event.org_id}"
            )
        planned = [
            PlannedAlert(
                id=alert_id(event.incident_id, r.role, r.person.id),
                org_id=event.org_id,
                incident_id=event.incident_id,
                role=r.role,
                person_id=r.person.id,
                person_name=r.person.name,
                channel="log",
            )
            for r in recipients
        ]
        await asyncio.to_thread(store.plan, planned)
        await dispatcher.deliver_pending([p.id for p in planned])

    @bus.durable_pull(
        broker,
        durable=REPORTS_DURABLE,
        filter_subject=settings.subjects.all_orgs("incident", "IncidentReported"),
        settings=settings,
        # Alerts are idempotent by id and independent of each other: no need to wait in line.
        max_ack_pending=100,
        ack_wait=10.0,
    )
    async def on_incident_reported(msg: NatsMessage) -> None:
        await bus.process(msg, broker, settings, "notify", on_reported)
