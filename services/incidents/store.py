"""Persistence of incident logs: the `eventsourcing` application on SQLite or PostgreSQL."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import logging
import os
import random
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.cryptography import AESCipher
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Notification, ProcessRecorder, Tracking
from psycopg.conninfo import conninfo_to_dict

from services.incidents.domain import Incident
from services.incidents.settings import IncidentSettings
from shared.canonical import GENESIS_HASH, ChainReport, canonical_json, verify_chain
from shared.clock import SYSTEM_CLOCK, Clock
from shared.merkle import Tree, leaf_hash
from shared.note import Checkpoint, Signer, Verifier, sign_note
from shared.policy import IncidentFacts
from shared.sqlite import SqliteStore

RELAY_TRACKER = "relay:jetstream"
# Optimistic concurrency: a stale cached aggregate loses the race for version N+1 and reloads.
MAX_CONFLICT_RETRIES = 20


log = logging.getLogger(__name__)


class StoreClosed(Exception):
    """The store is shutting down; the caller retries later (a bus message is redelivered)."""


class _Gate:
    """Counts calls inside the store, so that close() waits for them.

    Store calls run in worker threads (`asyncio.to_thread`); cancelling the task that awaits one
    does not stop the thread. Closing the database under a running statement crashes SQLite, so
    close() lets the calls in flight finish and turns new ones away.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._active = 0
        self._closed = False

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        with self._changed:
            if self._closed:
                raise StoreClosed("the incident store is shutting down")
            self._active += 1
        try:
            yield
        finally:
            with self._changed:
                self._active -= 1
                self._changed.notify_all()

    def close(self, timeout: float) -> bool:
        with self._changed:
            self._closed = True
            return self._changed.wait_for(lambda: self._active == 0, timeout)


class FairLock:
    """A reentrant lock handed to its waiters in the order they came.

    `threading.RLock` lets a thread that just released it take it again before the ones
    already waiting: with eight leaders writing to one incident, some requests waited for
    dozens of others (p99 of logging 70-100 ms). Here the releasing thread hands the lock
    directly to the longest waiter.
    """

    def __init__(self) -> None:
        self._guard = threading.Condition(threading.Lock())  # notified when a waiter queues
        self._owner: int | None = None
        self._depth = 0
        self._waiters: deque[tuple[int, threading.Lock]] = deque()

    def __enter__(self) -> None:
        me = threading.get_ident()
        with self._guard:
            if self._owner == me:
                self._depth += 1
                return
            if self._owner is None:
                self._owner, self._depth = me, 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append((me, turn))
            self._guard.notify_all()
        turn.acquire()  # released by the owner before us, who made us the owner

    def wait_for_waiters(self, count: int, timeout: float) -> bool:
        """Block until `count` threads wait for the lock (for tests and diagnostics)."""
        with self._guard:
            return self._guard.wait_for(lambda: len(self._waiters) >= count, timeout)

    def __exit__(self, *_: object) -> None:
        with self._guard:
            self._depth -= 1
            if self._depth:
                return
            if self._waiters:
                self._owner, turn = self._waiters.popleft()
                self._depth = 1
                turn.release()
            else:
                self._owner = None


P = ParamSpec("P")
T = TypeVar("T")


def _guarded(
    method: Callable[Concatenate[IncidentLog, P], T],
) -> Callable[Concatenate[IncidentLog, P], T]:
    @functools.wraps(method)
    def wrapper(self: IncidentLog, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._gate.inside():
            return method(self, *args, **kwargs)

    return wrapper


class DamagedLog(Exception):
    """The stored events of an incident can no longer be read (decrypted, parsed)."""


class IdTaken(Exception):
    """A report's client-chosen incident id is in use already."""


@dataclass(frozen=True)
class Unreadable:
    """A stored event that can no longer be decrypted, decompressed or parsed, and why."""

    reason: str


def event_key(settings: IncidentSettings) -> str:
    if settings.event_key:
        return settings.event_key
    path: Path = settings.service_dir("incidents") / "event.key"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(AESCipher.create_key(32))
    return path.read_text().strip()


def eventsourcing_env(settings: IncidentSettings) -> dict[str, str]:
    env: dict[str, str] = {
        "AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size),
        # The library deep-copies a cached aggregate on every load, which costs time in
        # proportion to the incident's length (94% of an append at 2,000 events). Writers take
        # turns per incident instead, and a failed save evicts the aggregate it changed.
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
        "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
    }
    if settings.encrypt_events:
        env["CIPHER_TOPIC"] = "eventsourcing.cryptography:AESCipher"
        env["CIPHER_KEY"] = event_key(settings)
    if settings.event_store == "postgres":
        if not settings.postgres_dsn:
            raise RuntimeError("KRISELOGG_EVENT_STORE=postgres needs KRISELOGG_POSTGRES_DSN")
        info = conninfo_to_dict(settings.postgres_dsn)
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=str(info.get("dbname") or "postgres"),
            POSTGRES_HOST=str(info.get("host") or "127.0.0.1"),
            POSTGRES_PORT=str(info.get("port") or "5432"),
            POSTGRES_USER=str(info.get("user") or "postgres"),
            POSTGRES_PASSWORD=str(info.get("password") or ""),
            POSTGRES_SCHEMA=str(os.environ.get("KRISELOGG_POSTGRES_SCHEMA", "public")),
        )
    else:
        env.update(
            PERSISTENCE_MODULE="eventsourcing.sqlite",
            SQLITE_DBNAME=str(settings.service_dir("incidents") / "events.sqlite"),
            SQLITE_LOCK_TIMEOUT="10",
        )
    return env


def _digest(stored: Any) -> bytes:
    return hashlib.sha256(stored.topic.encode() + b"\0" + bytes(stored.state)).digest()


def _broken(
    exported: list[dict[str, Any]], seq: int, reason: str, after_seq: int, after_hash: str
) -> ChainReport:
    """The report for a stream that breaks at `seq`, after checking the part before it."""
    before = verify_chain(exported, after_seq=after_seq, after_hash=after_hash)
    if not before.valid:
        return before
    return ChainReport(False, before.length, before.head_hash, seq, reason)


@dataclass
class IndexEntry:
    id: str
    org_id: str
    title: str
    category: str
    severity: str
    reported_at: str
    unit_id: str = ""
    reported_by: str = ""
    status: str = "open"


class IncidentLog(Application[UUID]):
    """The incidents application. Tracking positions (relay, consumed facts) share its store."""

    name = "incidents"
    snapshotting_intervals = {Incident: 100}  # noqa: RUF012 -- the library's class attribute

    def __init__(self, settings: IncidentSettings, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock  # gives each event its recorded_at
        type(self).snapshotting_intervals = {Incident: settings.snapshot_interval}
        # The library reads os.environ too; pass everything explicitly so tests can run two stores.
        super().__init__(env=eventsourcing_env(settings))
        self.on_saved: Callable[[], None] = lambda: None
        self._index: dict[str, IndexEntry] = {}
        self._index_position = 0
        self._index_lock = threading.Lock()
        # Weak: a lock lives while a caller holds or waits for it, so the map does not grow
        # with every incident ever touched; callers for one incident share the live one.
        self._locks: weakref.WeakValueDictionary[UUID, FairLock] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()
        self.decoded_cache_incidents = settings.aggregate_cache_size or 1
        self._exported: OrderedDict[UUID, list[dict[str, Any]]] = OrderedDict()
        self._verified: dict[UUID, list[tuple[bytes, str, bytes]]] = {}
        self._gate = _Gate()
        self._snapshot_interval = settings.snapshot_interval
        self._snapshotter = ThreadPoolExecutor(1, thread_name_prefix="incident-snapshots")

    def close(self) -> None:
        # Queued snapshots are dropped: they only speed up a cold load, and the next one comes.
        self._snapshotter.shutdown(wait=True, cancel_futures=True)
        if not self._gate.close(timeout=30):
            log.warning("incident store closed with calls still running")
        super().close()

    def construct_recorder(self) -> ProcessRecorder:
        # A process recorder writes tracking records atomically with new events (exactly-once).
        return self.factory.process_recorder()

    @property
    def process_recorder(self) -> ProcessRecorder:
        assert isinstance(self.recorder, ProcessRecorder)
        return self.recorder

    # --- reading ----------------------------------------------------------------------------

    @_guarded
    def get(
        self, incident_id: UUID, org_id: str, version: int | None = None, *, fresh: bool = True
    ) -> Incident | None:
        """The incident, or None when it does not exist *or belongs to another organisation*.

        `fresh=False` takes the cached aggregate as it is, without reading the store for events
        another replica may have added since. That is enough for what never changes after the
        report (organisation, unit, category, reporter: the access rules) and for a write, which
        fails on the version check if the cache was stale and is then retried on a fresh load.
        It saves a store read per request, and with it a turn in the connection pool's queue,
        which every reader and writer of the process shares.
        """
        try:
            # Under the incident's lock: the cached aggregate is shared, not copied (below).
            with self._incident_lock(incident_id):
                incident: Any = self._cached(incident_id) if not fresh and version is None else None
                if incident is None:
                    incident = self.repository.get(incident_id, version=version)
        except AggregateNotFoundError:
            return None
        except Exception as exc:
            # Unreadable stored events: the log is damaged, which is not the caller's fault.
            raise DamagedLog(str(incident_id)) from exc
        assert isinstance(incident, Incident)
        return incident if incident.org_id == org_id else None

    @_guarded
    def facts(self, incident_id: UUID, org_id: str) -> IncidentFacts | None:
        """What the access rules look at, or None when there is no such incident in `org_id`.

        From the cached incident, or else from the first event alone: the facts never change
        after the report, and a log damaged further on can still be verified by those allowed.
        Raises DamagedLog when the first event itself can no longer be read.
        """
        with self._incident_lock(incident_id):
            incident = self._cached(incident_id)
        if incident is not None:
            owner, data = incident.org_id, incident.state
            reported_by = (data.get("reported_by") or {}).get("id", "")
        else:
            try:
                first = next(iter(self.events.get(incident_id, lte=1)), None)
            except Exception as exc:
                raise DamagedLog(str(incident_id)) from exc
            if not isinstance(first, Incident.IncidentReported):
                return None
            owner, data, reported_by = first.org_id, first.data, first.actor.get("id", "")
        if owner != org_id:
            return None
        return IncidentFacts(
            unit_id=str(data.get("unit_id", "")),
            category=str(data.get("category", "")),
            reported_by=str(reported_by),
        )

    @_guarded
    def exported_events(
        self, incident_id: UUID, until_seq: int | None = None
    ) -> list[dict[str, Any]]:
        """The incident's events in exported form. Callers must not mutate them.

        Recorded events never change, so the decoded list is kept per incident and only the
        events recorded since are read and decrypted (a 10,000-event replay stays cheap). Verify
        does not use this: it always reads the store itself.
        """
        with self._incident_lock(incident_id):
            cached = self._exported.pop(incident_id, [])
            try:
                cached.extend(
                    event.export()
                    for event in self.events.get(incident_id, gt=len(cached) or None)
                    if isinstance(event, Incident.Event)
                )
            except Exception as exc:
                # An event that no longer decrypts or parses; verify names it and the reason.
                raise DamagedLog(str(incident_id)) from exc
            if cached:
                self._exported[incident_id] = cached  # most recently used last
                while len(self._exported) > self.decoded_cache_incidents:
                    self._exported.popitem(last=False)
        return cached[:until_seq] if until_seq is not None else list(cached)

    @_guarded
    def state_json(self, incident_id: UUID, org_id: str) -> bytes | None:
        """The current state as JSON, serialised while no writer can change it."""
        with self._incident_lock(incident_id):
            incident = self.get(incident_id, org_id)
            return None if incident is None else json.dumps(incident.state).encode()

    def verify(self, incident_id: UUID) -> tuple[ChainReport, list[str]]:
        report, hashes, _ = self.verify_with_leaves(incident_id)
        return report, hashes

    @_guarded
    def verify_with_leaves(self, incident_id: UUID) -> tuple[ChainReport, list[str], list[bytes]]:
        """Check the stored stream itself, event by event, never trusting the aggregate cache.

        A stored event that no longer decrypts, decompresses or parses is reported as the first
        invalid seq with the reason, like a broken hash; nothing here raises on damaged data.
        Also returns the stored `hash` of every event, for the comparison with the anchor, and
        each readable event's Merkle leaf (its export line hashed), for the organisation's tree.
        """
        stored_events = self.recorder.select_events(incident_id)
        # Events whose stored bytes are exactly those verified last time need no second decode
        # and hash; any changed byte (or topic) sends that event and all after it through again.
        known = self._verified.get(incident_id, [])
        digests = [_digest(stored) for stored in stored_events]
        reuse = 0
        while (
            reuse < min(len(known), len(stored_events))
            and stored_events[reuse].originator_version == reuse + 1
            and known[reuse][0] == digests[reuse]
        ):
            reuse += 1
        prefix = known[:reuse]
        exported: list[dict[str, Any]] = []
        report = self._verify_stored(
            stored_events[reuse:], exported, reuse, prefix[-1][1] if prefix else GENESIS_HASH
        )
        hashes = [h for _, h, _ in prefix] + [e["hash"] for e in exported]
        leaves = [leaf for _, _, leaf in prefix] + [leaf_hash(canonical_json(e)) for e in exported]
        if report.valid:
            self._verified[incident_id] = prefix + list(
                zip(digests[reuse:], hashes[reuse:], leaves[reuse:], strict=True)
            )
            while len(self._verified) > self.decoded_cache_incidents:
                self._verified.pop(next(iter(self._verified)))
        hashes += [""] * (len(stored_events) - len(hashes))
        return report, hashes, leaves

    def _verify_stored(
        self,
        stored_events: Sequence[Any],
        exported: list[dict[str, Any]],
        after_seq: int,
        after_hash: str,
    ) -> ChainReport:
        for expected, stored in enumerate(stored_events, start=after_seq + 1):
            if stored.originator_version != expected:
                return _broken(
                    exported, expected, f"event {expected} is missing", after_seq, after_hash
                )
            try:
                event = self.mapper.to_domain_event(stored)
                if not isinstance(event, Incident.Event):
                    reason = "stored event is not an incident event"
                    return _broken(exported, expected, reason, after_seq, after_hash)
                # Inside the try: an event that decodes but lacks a field fails here.
                exported.append(event.export())
            except Exception as exc:
                reason = f"stored event cannot be read ({type(exc).__name__})"
                return _broken(exported, expected, reason, after_seq, after_hash)
        return verify_chain(exported, after_seq=after_seq, after_hash=after_hash)

    @_guarded
    def list_incidents(self, org_id: str, status: str | None) -> list[IndexEntry]:
        self._catch_up_index()
        entries = [e for e in self._index.values() if e.org_id == org_id]
        if status:
            entries = [e for e in entries if e.status == status]
        return sorted(entries, key=lambda e: e.reported_at, reverse=True)

    def _catch_up_index(self) -> None:
        """The list is a projection of the notification log, read from where it last stopped."""
        topics = [
            f"{Incident.IncidentReported.__module__}:{Incident.IncidentReported.__qualname__}",
            f"{Incident.IncidentClosed.__module__}:{Incident.IncidentClosed.__qualname__}",
        ]
        with self._index_lock:
            while True:
                batch = self.recorder.select_notifications(
                    self._index_position, 500, topics=topics, inclusive_of_start=False
                )
                if not batch:
                    return
                for notification in batch:
                    self._index_position = notification.id
                    try:
                        event = self.mapper.to_domain_event(notification)
                    except Exception as exc:
                        # Damaged in the store: left out of the list (verify reports it), and
                        # the list of every other incident still answers.
                        log.error(
                            "incident list: stored event %d of incident %s cannot be read (%s)",
                            notification.originator_version,
                            notification.originator_id,
                            type(exc).__name__,
                        )
                        continue
                    assert isinstance(event, Incident.Event)
                    key = str(event.originator_id)
                    if isinstance(event, Incident.IncidentReported):
                        self._index[key] = IndexEntry(
                            id=key,
                            org_id=event.org_id,
                            title=str(event.data.get("title", "")),
                            category=str(event.data.get("category", "")),
                            severity=str(event.data.get("severity", "")),
                            reported_at=event.recorded_at,
                            unit_id=str(event.data.get("unit_id", "")),
                            reported_by=str(event.actor.get("id", "")),
                        )
                    elif key in self._index:
                        self._index[key].status = "closed"

    # --- writing ----------------------------------------------------------------------------

    @_guarded
    def report(
        self,
        *,
        org_id: str,
        actor: dict[str, str],
        data: dict[str, Any],
        occurred_at: datetime | None = None,
        incident_id: UUID | None = None,
    ) -> Incident:
        """Open an incident; without `occurred_at` it happened when it was reported.

        `incident_id`, the client's own: IdTaken when an incident already has it (a resend of
        the same report, or a clash), decided by the store's uniqueness, across replicas too.
        """
        now = self.clock.now()
        incident = Incident.report(
            org_id=org_id,
            actor=actor,
            data=data,
            occurred_at=occurred_at or now,
            now=now,
            incident_id=incident_id,
        )
        try:
            self.save(incident)
        except IntegrityError:
            if incident_id is None:
                raise
            raise IdTaken(str(incident_id)) from None
        self.on_saved()
        return incident

    @_guarded
    def append(
        self,
        incident_id: UUID,
        org_id: str,
        kind: str,
        *,
        actor: dict[str, str],
        data: dict[str, Any],
        occurred_at: datetime | None = None,
        tracking: Tracking | None = None,
    ) -> Incident | None:
        """Append one event, retrying on a version conflict; None if there is no such incident.

        Writers in this process take turns per incident (no wasted conflicts); writers in other
        replicas are reconciled by the library's optimistic version check and a retry.
        """
        with self._incident_lock(incident_id):
            for attempt in range(MAX_CONFLICT_RETRIES):
                if attempt:
                    time.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 -- jitter only
                # A retry follows a version conflict and the eviction: that load is fresh.
                incident = self.get(incident_id, org_id, fresh=False)
                if incident is None:
                    return None
                incident.record(
                    kind, actor=actor, data=data, occurred_at=occurred_at, now=self.clock.now()
                )
                # Application.save() without a way to pass the tracking record; same steps.
                processing = ProcessingEvent[UUID](tracking=tracking)
                processing.collect_events(incident)
                try:
                    self._record(processing)
                except IntegrityError:
                    self._evict(incident_id)
                    if tracking is not None and self.process_recorder.has_tracking_id(
                        tracking.application_name, tracking.notification_id
                    ):
                        raise
                    continue
                except BaseException:
                    # The shared cached aggregate now holds an event that was never stored.
                    self._evict(incident_id)
                    raise
                self._take_snapshots(processing)
                self.on_saved()
                return incident
        raise RuntimeError(f"gave up after {MAX_CONFLICT_RETRIES} concurrent-write conflicts")

    def _cached(self, incident_id: UUID) -> Incident | None:
        cache = self.repository.cache
        if cache is None:
            return None
        try:
            incident = cache.get(incident_id)
        except KeyError:
            return None
        assert isinstance(incident, Incident)
        return incident

    def _incident_lock(self, incident_id: UUID) -> FairLock:
        with self._locks_guard:
            lock = self._locks.get(incident_id)
            if lock is None:
                lock = self._locks[incident_id] = FairLock()
            return lock

    def _evict(self, incident_id: UUID) -> None:
        cache = self.repository.cache
        if cache is not None:
            with contextlib.suppress(KeyError):
                cache.get(incident_id, evict=True)

    # --- snapshots ---------------------------------------------------------------------------

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """Snapshot every `snapshot_interval` events, in the background.

        A snapshot replays the events since the last one and encodes the whole state; done
        inline, that cost fell on the one request that crossed the interval (it doubled the p99
        of logging). Snapshots only make a cold load fast, so one that is late or lost in a
        crash costs nothing but that: the next one comes `snapshot_interval` events later.
        """
        if self.snapshots is None:
            return
        for event in processing_event.events:
            if self._due_for_snapshot(event):
                self._snapshotter.submit(
                    self._snapshot, event.originator_id, event.originator_version
                )

    def _due_for_snapshot(self, event: DomainEventProtocol[UUID]) -> bool:
        return (
            isinstance(event, Incident.Event)
            and event.originator_version % self._snapshot_interval == 0
        )

    def _snapshot(self, incident_id: UUID, version: int) -> None:
        try:
            with self._gate.inside():
                self.take_snapshot(incident_id, version=version)
        except StoreClosed:
            return
        except Exception as exc:
            log.warning("snapshot of an incident at %d failed (%s)", version, type(exc).__name__)

    def flush_snapshots(self) -> None:
        """Wait until the snapshots due so far are stored."""
        self._snapshotter.submit(lambda: None).result()

    # --- the relay's and the consumers' positions ------------------------------------------

    @_guarded
    def notifications_after(self, position: int, limit: int) -> Sequence[Notification]:
        return self.recorder.select_notifications(position, limit, inclusive_of_start=False)

    @_guarded
    def exported(self, notification: Notification) -> dict[str, Any] | Unreadable | None:
        """The event in exported form; Unreadable if it no longer decrypts or parses."""
        try:
            event = self.mapper.to_domain_event(notification)
        except Exception as exc:
            return Unreadable(f"stored event cannot be read ({type(exc).__name__})")
        return event.export() if isinstance(event, Incident.Event) else None

    @_guarded
    def exported_batch(
        self, notifications: Sequence[Notification]
    ) -> list[dict[str, Any] | Unreadable | None]:
        return [self.exported(n) for n in notifications]

    @_guarded
    def position(self, tracker: str) -> int:
        return self.process_recorder.max_tracking_id(tracker) or 0

    @_guarded
    def set_position(self, tracker: str, position: int) -> None:
        # IntegrityError: another replica got there first; the position only moves forward.
        with contextlib.suppress(IntegrityError):
            self.process_recorder.insert_tracking(Tracking(tracker, position))


ACCESS_SCHEMA = """
CREATE TABLE IF NOT EXISTS reads (
  org_id TEXT NOT NULL, incident_id TEXT NOT NULL, person_id TEXT NOT NULL, name TEXT NOT NULL,
  action TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS reads_by_incident ON reads (org_id, incident_id, at);
"""


class AccessLog(SqliteStore):
    """Who read or exported which incident's log, and when (issue 7), for the auditors.

    Kept beside the events, not in the incident's own chain: reading must not change the log
    that is read. A plain SQLite file in the service's data dir.
    """

    def __init__(self, path: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(path, ACCESS_SCHEMA)
        self.clock = clock

    def record(self, org_id: str, incident_id: str, person_id: str, name: str, action: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO reads VALUES (?, ?, ?, ?, ?, ?)",
                (org_id, incident_id, person_id, name, action, self.clock.now().isoformat()),
            )

    def reads(self, org_id: str, incident_id: str) -> list[dict[str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT person_id, name, action, at FROM reads"
                " WHERE org_id = ? AND incident_id = ? ORDER BY at",
                (org_id, incident_id),
            ).fetchall()
        return [{"person_id": r[0], "name": r[1], "action": r[2], "at": r[3]} for r in rows]


# --- the organisation's log: a Merkle tree over every event, and signed checkpoints ------------

LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS leaves (
  org_id TEXT NOT NULL, leaf_index INTEGER NOT NULL, incident_id TEXT NOT NULL,
  seq INTEGER NOT NULL, notification_id INTEGER NOT NULL, hash BLOB NOT NULL,
  PRIMARY KEY (org_id, leaf_index));
CREATE INDEX IF NOT EXISTS leaves_by_incident ON leaves (incident_id, seq);
CREATE TABLE IF NOT EXISTS position (
  id INTEGER PRIMARY KEY CHECK (id = 1), notification_id INTEGER);
"""


class LogKeys:
    """The Ed25519 keys that sign checkpoints: files in the data dir, or one seed from the env.

    Several replicas must sign with the same key: give them KRISELOGG_LOG_SIGNING_KEY. A rotation
    adds a key (`new`), and both sign until the old one is retired; a retired key signs no more
    but stays published, so checkpoints printed on old log forms can still be checked.
    """

    def __init__(self, directory: Path, name: str, env_seed: str | None = None) -> None:
        self.directory = directory
        self.name = name
        self.env_seed = env_seed
        self._lock = threading.Lock()

    def _files(self, suffix: str) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"*{suffix}"), reverse=True)  # newest first

    def _load(self, path: Path) -> Signer:
        return Signer.from_seed(self.name, base64.b64decode(path.read_text().strip()))

    def active(self) -> list[Signer]:
        if self.env_seed:
            return [Signer.from_seed(self.name, base64.b64decode(self.env_seed))]
        with self._lock:
            files = self._files(".key")
            if not files:
                return [self._write(Signer.generate(self.name))]
            return [self._load(p) for p in files]

    def verifiers(self) -> list[Verifier]:
        keys = {s.verifier.line(): s.verifier for s in self.active()}
        if not self.env_seed:
            for path in self._files(".retired"):
                verifier = self._load(path).verifier
                keys.setdefault(verifier.line(), verifier)
        return list(keys.values())

    def new(self) -> Signer:
        with self._lock:
            return self._write(Signer.generate(self.name))

    def retire(self, key_id_hex: str) -> None:
        with self._lock:
            files = self._files(".key")
            chosen = [p for p in files if p.stem.endswith(f"-{key_id_hex}")]
            if not chosen:
                raise KeyError(key_id_hex)
            if len(files) == 1:
                raise ValueError("the last active key cannot be retired: make a new one first")
            chosen[0].rename(chosen[0].with_suffix(".retired"))

    def _write(self, signer: Signer) -> Signer:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = self.directory / f"{stamp}-{signer.verifier.id.hex()}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(signer.seed()).decode())
        return signer


@dataclass(frozen=True)
class Leaf:
    seq: int
    leaf_index: int
    hash: bytes


class TreeHalted(Exception):
    """An event could not be read while the tree took it in; the log is damaged there."""


class OrgLogs(SqliteStore):
    """One Merkle tree per organisation over every event of its incidents (RFC 9162).

    The leaves follow the store's notification log: its ids are the one order every replica
    and the PostgreSQL store agree on, so the trees are a deterministic projection of it and any
    replica rebuilds the same roots. A leaf is the SHA-256 of 0x00 and the event's export line
    (its canonical JSON). The leaves are kept in their own file: whoever rewrites an event in
    the event store must rewrite them too, and then the roots no longer match the checkpoints
    the witnesses hold.
    """

    def __init__(self, path: Path, store: IncidentLog, keys: LogKeys, origin_prefix: str) -> None:
        super().__init__(path, LOG_SCHEMA)
        self.store = store
        self.keys = keys
        self.origin_prefix = origin_prefix
        self._trees: dict[str, Tree] = {}
        self._by_incident: dict[str, list[Leaf]] = {}
        self._orgs: dict[str, str] = {}  # incident → organisation, as the tree filed it
        self._catch_up_lock = threading.Lock()
        self._signed: dict[str, tuple[float, int, str]] = {}
        self.halted: str | None = None
        with self._lock:
            row = self._db.execute("SELECT notification_id FROM position").fetchone()
            self._position = int(row[0]) if row and row[0] is not None else 0
            rows = self._db.execute(
                "SELECT org_id, leaf_index, incident_id, seq, hash FROM leaves "
                "ORDER BY org_id, leaf_index"
            ).fetchall()
        for org_id, index, incident_id, seq, leaf in rows:
            tree = self._trees.setdefault(org_id, Tree())
            if tree.append(bytes(leaf)) != index:
                raise RuntimeError("the log's leaves are not contiguous: the file is damaged")
            self._by_incident.setdefault(incident_id, []).append(Leaf(seq, index, bytes(leaf)))
            self._orgs[incident_id] = org_id

    def origin(self, org_id: str) -> str:
        return f"{self.origin_prefix}/{org_id}"

    def catch_up(self) -> None:
        """Take in every event stored since the last call, in notification order."""
        with self._catch_up_lock:
            self.halted = None
            while True:
                batch = self.store.notifications_after(self._position, 500)
                if not batch:
                    return
                rows: list[tuple[str, int, str, int, int, bytes]] = []
                sizes = {org: tree.size for org, tree in self._trees.items()}
                for notification, exported in zip(
                    batch, self.store.exported_batch(batch), strict=True
                ):
                    if exported is None:
                        continue  # not an incident event (none are stored today)
                    if isinstance(exported, Unreadable):
                        # The order is fixed: skipping would give every later event another
                        # place. Stop here; verify and /readyz say the log is damaged.
                        self.halted = (
                            f"event {notification.originator_version} of an incident cannot be "
                            f"read ({exported.reason})"
                        )
                        log.error("organisation log halted: %s", self.halted)
                        break
                    org_id = str(exported["org_id"])
                    index = sizes.get(org_id, 0)
                    sizes[org_id] = index + 1
                    rows.append((org_id, index, str(exported["incident_id"]),
                                 int(exported["seq"]), notification.id,
                                 leaf_hash(canonical_json(exported))))  # fmt: skip
                # Halted: up to the last event taken in; else the whole batch (non-events too).
                last = (rows[-1][4] if rows else self._position) if self.halted else batch[-1].id
                with self._tx() as db:
                    db.executemany("INSERT INTO leaves VALUES (?, ?, ?, ?, ?, ?)", rows)
                    db.execute(
                        "INSERT INTO position VALUES (1, ?) ON CONFLICT (id) DO UPDATE "
                        "SET notification_id = excluded.notification_id",
                        (last,),
                    )
                for org_id, index, incident_id, seq, _, leaf in rows:
                    self._trees.setdefault(org_id, Tree()).append(leaf)
                    self._by_incident.setdefault(incident_id, []).append(Leaf(seq, index, leaf))
                    self._orgs[incident_id] = org_id
                self._position = last
                if self.halted:
                    return

    def tree(self, org_id: str) -> Tree:
        """The organisation's tree, caught up. Callers must not append to it."""
        self.catch_up()
        return self._trees.get(org_id) or Tree()

    def leaves(self, incident_id: str) -> list[Leaf]:
        self.catch_up()
        return list(self._by_incident.get(incident_id, []))

    def org_of(self, incident_id: str) -> str | None:
        """The organisation the tree filed the incident under, even if its events are gone."""
        self.catch_up()
        return self._orgs.get(incident_id)

    def incidents(self, org_id: str) -> list[str]:
        """Every incident the organisation's tree holds events of."""
        self.catch_up()
        return [i for i, org in self._orgs.items() if org == org_id]

    def checkpoint(self, org_id: str) -> tuple[int, str]:
        """The organisation's current tree size and its signed checkpoint (cached ≤ 1 s)."""
        with self._catch_up_lock:
            cached = self._signed.get(org_id)
            if cached is not None and time.monotonic() - cached[0] < 1.0:
                return cached[1], cached[2]
        tree = self.tree(org_id)
        with self._catch_up_lock:
            size = tree.size
            text = Checkpoint(self.origin(org_id), size, tree.root(size)).text()
            note = sign_note(text, *self.keys.active())
            self._signed[org_id] = (time.monotonic(), size, note)
        return size, note
