"""The incident log's side of the bus: the outbox relay out, alert and document facts in."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from uuid import UUID

import nats.errors
from eventsourcing.persistence import IntegrityError, Tracking
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from services.incidents.domain import AnchorUnavailable
from services.incidents.store import RELAY_TRACKER, IncidentLog, Unreadable
from shared import bus
from shared.schemas import (
    AlertFactV1,
    AnchorQueryV1,
    AnchorV1,
    DeadlineFactV1,
    DocumentFactV1,
    IncidentEventV1,
)
from shared.settings import Settings
from shared.subjects import Subjects

log = logging.getLogger(__name__)
FACTS_DURABLE = "incidents-alert-facts"
DEADLINES_DURABLE = "incidents-deadline-facts"
DOCUMENTS_DURABLE = "incidents-document-facts"
PUBLISH_TIMEOUT_SECONDS = 5.0
POSITION_EVERY_SECONDS = 0.1


def facts_tracker(names: Subjects, durable: str = FACTS_DURABLE) -> str:
    return f"jetstream:{names.stream}:{durable}"


NOTIFY_ACTOR = {"id": "system:notify", "name": "Varsling i kriselogg"}
DOCUMENTS_ACTOR = {"id": "system:documents", "name": "Dokumenttjenesten i kriselogg"}


Outgoing = tuple[str, bytes, dict[str, str]]  # subject, body, headers
DeadLetter = tuple[str, str, str]  # message id, event type, reason


class Relay:
    """Transactional outbox: every stored event reaches JetStream, in order, at least once.

    It reads the application's notification log from the last acknowledged position, publishes
    each event with `Nats-Msg-Id = <incident_id>:<seq>` (the stream drops resends inside its
    duplicate window) and stores the new position only after the stream's ack. It wakes on each
    commit, not on a timer, because the alert budget leaves no room for polling.

    A batch is published pipelined: every message is written to the one connection in order
    (so the stream stores them in order), then the acks are awaited together. If any ack fails,
    the position stays where it was and the whole batch is sent again; the stream drops what it
    already has by its message id. This keeps the event loop, which also serves HTTP, from
    waiting one round trip per event.
    """

    def __init__(
        self, store: IncidentLog, broker: NatsBroker, names: Subjects, batch: int = 200
    ) -> None:
        self.store = store
        self.names = names
        self.broker = broker
        self.batch = batch
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.published = 0

    def wake(self) -> None:
        """Thread-safe: called from the request threads after each commit."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        failures = 0
        while True:
            bus.raise_if_cancelled()
            try:
                await self.drain()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                log.warning(
                    "relay: bus unavailable (%s), retrying in %.1fs", type(exc).__name__, delay
                )
                await asyncio.sleep(delay)
                continue
            # The timeout is a safety net for events committed by another replica of this service.
            await bus.wait_for_wake(self._wake, 1.0)

    def _step(
        self, acked: int | None, position: int
    ) -> tuple[list[Outgoing], list[DeadLetter], int]:
        """In a worker thread: store the acked position, then read and encode the next batch.

        One thread hop per batch; the decoding, validation and JSON encoding stay off the loop.
        A stored event that can no longer be read is dead-lettered with the reason rather than
        retried for ever, which would stop every later event of every incident reaching the bus.
        """
        if acked is not None:
            self.store.set_position(RELAY_TRACKER, acked)
        notifications = self.store.notifications_after(position, self.batch)
        outgoing: list[Outgoing] = []
        unreadable: list[DeadLetter] = []
        for notification, exported in zip(
            notifications, self.store.exported_batch(notifications), strict=True
        ):
            position = notification.id
            if isinstance(exported, Unreadable):
                seq, incident = notification.originator_version, notification.originator_id
                kind = notification.topic.rpartition(".")[2]
                log.error("relay: event %d of incident %s: %s", seq, incident, exported.reason)
                unreadable.append((f"{incident}:{seq}", kind, exported.reason))
                continue
            if exported is None:
                continue
            message = IncidentEventV1.model_validate(exported)
            outgoing.append(
                (
                    self.names.subject(message.org_id, "incident", message.type),
                    message.model_dump_json().encode(),
                    bus.headers_for(message, message.msg_id(), message.org_id),
                )
            )
        return outgoing, unreadable, position

    async def drain(self) -> None:
        js = self.broker.config.connection_state.stream
        position = await asyncio.to_thread(self.store.position, RELAY_TRACKER)
        acked: int | None = None  # published and acked, but not yet stored as the position
        stored_at = time.monotonic()
        while True:
            bus.raise_if_cancelled()
            self._wake.clear()
            # Under load the position is stored at most every POSITION_EVERY_SECONDS, not per
            # batch: each store is a commit that queues with the writers. After a crash the
            # events since are published again and the stream drops them by message id.
            due = acked is not None and time.monotonic() - stored_at >= POSITION_EVERY_SECONDS
            outgoing, unreadable, last = await asyncio.to_thread(
                self._step, acked if due else None, position
            )
            for msg_id, kind, reason in unreadable:
                await bus.dead_letter(
                    self.broker,
                    self.names,
                    service="incidents",
                    kind="unreadable",
                    reason=reason,
                    original_subject=f"{self.names.root}.*.incident.{kind}",
                    body=b"",
                    msg_id=msg_id,
                    stream_seq=None,
                )
            if due:
                acked, stored_at = None, time.monotonic()
            if last == position:
                if acked is not None:  # idle: store it now
                    await asyncio.to_thread(self.store.set_position, RELAY_TRACKER, acked)
                return
            pending = [
                await js.publish_async(subject, body, headers=headers, stream=self.names.stream)
                for subject, body, headers in outgoing
            ]
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                await asyncio.gather(*pending)
            self.published += len(pending)
            acked = position = last


async def lookup_anchor(
    broker: NatsBroker, names: Subjects, org_id: str, incident_id: str
) -> tuple[int, str] | None:
    """Ask the anchor keeper (documents) over the bus for an incident's latest anchored head."""
    query = AnchorQueryV1(org_id=org_id, incident_id=incident_id)
    try:
        reply = await broker.connection.request(
            names.request(org_id, "AnchorQuery"), query.model_dump_json().encode(), timeout=2.0
        )
    except (
        nats.errors.TimeoutError,
        nats.errors.NoRespondersError,
        nats.errors.ConnectionClosedError,
    ) as exc:
        raise AnchorUnavailable(type(exc).__name__) from exc
    anchor = AnchorV1.model_validate_json(reply.data)
    return (anchor.seq, anchor.hash) if anchor.found else None


Fact = AlertFactV1 | DeadlineFactV1 | DocumentFactV1


def fact_data(fact: Fact) -> dict[str, Any]:
    if isinstance(fact, DeadlineFactV1 | DocumentFactV1):
        return fact.model_dump(
            mode="json", exclude={"type", "incident_id", "org_id", "at"}, exclude_none=True
        )
    data: dict[str, Any] = {
        "fact_id": fact.fact_id,
        "alert_id": fact.alert_id,
        "recipient": fact.recipient.model_dump(),
        "role": fact.role,
        "channel": fact.channel,
    }
    if fact.reason:
        data["reason"] = fact.reason
    if fact.replaces_alert_id:
        data["replaces_alert_id"] = fact.replaces_alert_id
    if fact.via:
        data["via"] = fact.via
    return data


def append_fact(store: IncidentLog, fact: Fact, stream_seq: int, tracker: str) -> str:
    """Append one fact from notify to its incident exactly once; returns what happened."""
    if store.process_recorder.has_tracking_id(tracker, stream_seq):
        return "duplicate delivery"
    incident_id = UUID(fact.incident_id)
    incident = store.get(incident_id, fact.org_id)
    if incident is None:
        raise bus.PermanentError(f"incident {fact.incident_id} not found in org {fact.org_id}")
    if fact.fact_id in incident.fact_ids:
        # Already in the log (e.g. the stream was rebuilt): only move the tracker forward.
        store.set_position(tracker, stream_seq)
        return "already recorded"
    try:
        store.append(
            incident_id,
            fact.org_id,
            fact.type,
            actor=DOCUMENTS_ACTOR if isinstance(fact, DocumentFactV1) else NOTIFY_ACTOR,
            data=fact_data(fact),
            occurred_at=fact.at,
            tracking=Tracking(tracker, stream_seq),
        )
    except IntegrityError:
        return "duplicate delivery"
    return "recorded"


def register(broker: NatsBroker, store: IncidentLog, settings: Settings) -> None:
    # One consumer per kind of fact, each with its own exactly-once tracker: a deadline or a
    # document never waits behind a stuck alert fact.
    def consume(durable: str, source: str, contract: type[Fact]) -> None:
        own_tracker = facts_tracker(settings.subjects, durable)

        @bus.durable_pull(
            broker,
            durable=durable,
            filter_subject=settings.subjects.all_orgs(source),  # type: ignore[arg-type]
            settings=settings,
        )
        async def on_fact(msg: NatsMessage) -> None:
            async def handle(body: bytes, _: dict[str, str]) -> None:
                fact = contract.model_validate_json(body)
                seq = msg.raw_message.metadata.sequence.stream
                await asyncio.to_thread(append_fact, store, fact, seq, own_tracker)

            await bus.process(msg, broker, settings, "incidents", handle)

    consume(FACTS_DURABLE, "alert", AlertFactV1)
    consume(DEADLINES_DURABLE, "deadline", DeadlineFactV1)
    consume(DOCUMENTS_DURABLE, "document", DocumentFactV1)
