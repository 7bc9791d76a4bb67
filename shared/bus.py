"""JetStream plumbing every service uses: the broker, the streams, publishing a contract.

Subscribers are declared by each service through FastStream; this module only makes sure they are
all built the same way (durable pull consumers, explicit ack, bounded redelivery; see
docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats.js.errors
from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.nats import ConsumerConfig, JStream, NatsBroker, PullSub
from faststream.nats.message import NatsMessage
from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import ValidationError

from shared.policy import OrgTree, tree_of
from shared.schemas import (
    HEADER_MSG_ID,
    HEADER_ORG,
    HEADER_SCHEMA,
    Contract,
    DeadLetterV1,
    DirectoryTreeV1,
)
from shared.settings import Settings
from shared.subjects import Subjects

log = logging.getLogger(__name__)


def raise_if_cancelled() -> None:
    """Stop a background loop whose cancellation was swallowed.

    On Python 3.11, `asyncio.wait_for` (used inside nats-py's request path) returns the result
    instead of raising when a cancel races with it; the loop then runs on and shutdown waits for
    it forever. The cancel request stays counted on the task, so a loop checks it each turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait_for_wake(event: asyncio.Event, seconds: float) -> None:
    """Wait for `event` or `seconds`, then clear it; cancellable on every Python we support."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    event.clear()


# Redelivery delays for a message whose handler failed: quick retries first, then slower, so a
# short outage of a dependency (the SMTP server, the incidents store) heals without a dead letter.
REDELIVERY_BACKOFF_SECONDS = [1, 2, 5, 10, 30, 60, 120, 300]


def make_broker(settings: Settings, name: str) -> NatsBroker:
    if not settings.nats_url:
        raise RuntimeError("KRISELOGG_NATS_URL is not set and no embedded server was started")
    broker = NatsBroker(
        settings.nats_url,
        name=f"kriselogg-{name}",
        # Never give up reconnecting: a service outliving a NATS restart must resume by itself.
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        # Per-message INFO logs cost latency and would say nothing useful.
        log_level=logging.DEBUG,
        # Its default logger writes colour codes at INFO past our logging setup, e.g. a line per
        # subscriber task at every shutdown ("callback for Task-N is being executed"). Ours is
        # under "faststream", which stays at WARNING (creating a broker sets it back to INFO).
        logger=logging.getLogger(f"faststream.{name}"),
        graceful_timeout=10.0,
    )
    logging.getLogger("faststream").setLevel(logging.WARNING)
    return broker


def stream_configs(settings: Settings) -> list[api.StreamConfig]:
    names = settings.subjects
    return [
        api.StreamConfig(
            name=names.stream,
            subjects=[f"{names.root}.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            num_replicas=settings.jetstream_replicas,
            duplicate_window=float(settings.jetstream_duplicate_window_seconds),
        ),
        api.StreamConfig(
            name=names.dead_letter_stream,
            subjects=[f"{names.dead_letter_root}.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            num_replicas=settings.jetstream_replicas,
        ),
    ]


async def ensure_streams(broker: NatsBroker, settings: Settings) -> None:
    """Create or update the streams; every service calls this, so start order does not matter."""
    js = broker.config.connection_state.stream
    for config in stream_configs(settings):
        try:
            await js.add_stream(config=config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config=config)


def durable_pull(
    broker: NatsBroker,
    *,
    durable: str,
    filter_subject: str,
    settings: Settings,
    max_ack_pending: int = 1,
    ack_wait: float = 5.0,
) -> Callable[[Callable[..., Awaitable[None]]], Any]:
    """A durable, explicit-ack pull subscriber with bounded redelivery.

    max_ack_pending=1 keeps messages in stream order, which the exactly-once trackers rely on;
    an idempotent consumer that does not need order takes more, so that one message whose ack
    was lost (a NATS crash) does not hold up the others for `ack_wait`. max_workers stays 1
    (ag2ai/faststream#2563). Backoff and dead-lettering happen in `process`.
    """
    subscriber: Callable[[Callable[..., Awaitable[None]]], Any] = broker.subscriber(
        filter_subject,
        stream=JStream(name=settings.subjects.stream, declare=False),
        durable=durable,
        pull_sub=PullSub(batch_size=1, timeout=5.0),
        config=ConsumerConfig(
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            # One more than we retry ourselves, so the server never gives up before we dead-letter.
            max_deliver=settings.max_deliver + 1,
            ack_wait=ack_wait,
            max_ack_pending=max_ack_pending,
            deliver_policy=api.DeliverPolicy.ALL,
        ),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_workers=1,
    )
    return subscriber


class PermanentError(Exception):
    """The message can never be processed (bad shape, unknown reference): dead-letter it now."""


class TransientError(Exception):
    """Not yet (e.g. a message that depends on one not processed so far): redelivered after a
    delay, and dead-lettered once `max_deliver` attempts failed, like any other failure."""


Handler = Callable[[bytes, dict[str, str]], Awaitable[None]]


async def process(
    msg: NatsMessage, broker: NatsBroker, settings: Settings, service: str, handler: Handler
) -> None:
    """Run a handler on a JetStream message with the project's delivery rules.

    Success acks. A permanent failure is dead-lettered with its reason and acked. A transient one
    is redelivered after a growing delay, and dead-lettered once `max_deliver` attempts failed.
    """
    raw = msg.raw_message
    headers = dict(raw.headers or {})
    msg_id = headers.get(HEADER_MSG_ID)
    meta = raw.metadata
    stream_seq = meta.sequence.stream if meta.sequence else None
    try:
        await handler(raw.data, headers)
    except (PermanentError, ValidationError, ValueError) as exc:
        await dead_letter(
            broker,
            settings.subjects,
            service=service,
            kind="invalid",
            reason=f"{type(exc).__name__}: {exc}",
            original_subject=raw.subject,
            body=raw.data,
            msg_id=msg_id,
            stream_seq=stream_seq,
        )
    except Exception as exc:
        delivered = meta.num_delivered or 1
        if delivered >= settings.max_deliver:
            await dead_letter(
                broker,
                settings.subjects,
                service=service,
                kind="exhausted",
                reason=f"gave up after {delivered} attempts: {type(exc).__name__}: {exc}",
                original_subject=raw.subject,
                body=raw.data,
                msg_id=msg_id,
                stream_seq=stream_seq,
            )
            return
        delay = REDELIVERY_BACKOFF_SECONDS[min(delivered, len(REDELIVERY_BACKOFF_SECONDS)) - 1]
        log.warning(
            "%s: retrying message %s in %ss (%s)", service, msg_id, delay, type(exc).__name__
        )
        raise NackMessage(delay=delay) from exc


def headers_for(message: Contract, msg_id: str, org_id: str) -> dict[str, str]:
    return {
        HEADER_MSG_ID: msg_id,
        HEADER_ORG: org_id,
        HEADER_SCHEMA: message.schema_header(),
        "content-type": "application/json",
    }


async def publish(
    broker: NatsBroker,
    subject: str,
    message: Contract,
    *,
    msg_id: str,
    org_id: str,
    stream: str,
) -> api.PubAck:
    """Publish to JetStream and wait for the stream's ack (raises if it is not stored)."""
    ack = await broker.publish(
        message.model_dump_json().encode(),
        subject,
        headers=headers_for(message, msg_id, org_id),
        stream=stream,
        timeout=5.0,
    )
    return ack


async def dead_letter(
    broker: NatsBroker,
    names: Subjects,
    *,
    service: str,
    kind: str,
    reason: str,
    original_subject: str,
    body: bytes,
    msg_id: str | None,
    stream_seq: int | None,
) -> None:
    letter = DeadLetterV1(
        service=service,
        reason=reason,
        original_subject=original_subject,
        original_msg_id=msg_id,
        stream_seq=stream_seq,
        body=body.decode("utf-8", errors="replace"),
    )
    await broker.publish(
        letter.model_dump_json().encode(),
        names.dead_letter(service, kind),
        headers={
            HEADER_MSG_ID: f"dlq:{service}:{msg_id or stream_seq}",
            HEADER_SCHEMA: letter.schema_header(),
        },
        stream=names.dead_letter_stream,
        timeout=5.0,
    )
    # The log gets the kind, not the reason: a reason can quote the message (a validation
    # error shows the input), and the message is personal data. The letter itself keeps it.
    log.error("dead-lettered %s message %s (%s)", service, msg_id or stream_seq, kind)


# --- the directory tree, shared through a key-value bucket ---------------------------------


async def directory_bucket(broker: NatsBroker, settings: Settings) -> KeyValue:
    """The bucket of organisation trees (one key per organisation, latest value only)."""
    js: JetStreamContext = broker.config.connection_state.stream
    name = f"{settings.bus_namespace}-directory"
    try:
        return await js.key_value(name)
    except nats.js.errors.BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(
            bucket=name, history=1, replicas=settings.jetstream_replicas
        )
    except nats.js.errors.BadRequestError:
        return await js.key_value(name)  # another service created it meanwhile


async def share_directory(broker: NatsBroker, settings: Settings, tree: DirectoryTreeV1) -> None:
    kv = await directory_bucket(broker, settings)
    await kv.put(tree.org_id, tree.model_dump_json().encode())


class DirectoryWatch:
    """Every organisation's current tree, kept up to date from the bucket (for access rules)."""

    def __init__(self) -> None:
        self.trees: dict[str, OrgTree] = {}
        self.ready = asyncio.Event()
        self._changed = asyncio.Condition()

    def tree(self, org_id: str) -> OrgTree:
        return self.trees.get(org_id, OrgTree())

    async def wait_for(self, org_id: str, seconds: float = 20) -> None:
        """Until the organisation's tree has arrived (startup, tests)."""
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(lambda: org_id in self.trees)

    async def run(self, broker: NatsBroker, settings: Settings) -> None:
        failures = 0
        while True:
            raise_if_cancelled()
            try:
                kv = await directory_bucket(broker, settings)
                watcher = await kv.watchall()
                failures = 0
                async for entry in watcher:
                    raise_if_cancelled()
                    if entry is None:  # the current values have all been delivered
                        self.ready.set()
                    elif entry.operation in ("DEL", "PURGE") or not entry.value:
                        self.trees.pop(entry.key, None)
                    else:
                        contract = DirectoryTreeV1.model_validate_json(entry.value)
                        self.trees[entry.key] = tree_of(contract)
                    async with self._changed:
                        self._changed.notify_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning("directory watch: %s, retrying", type(exc).__name__)
                await asyncio.sleep(min(0.2 * 2**failures, 5.0))
