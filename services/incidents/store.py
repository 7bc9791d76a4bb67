"""Persistence of incident logs: the `eventsourcing` application on SQLite or PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import IntegrityError, Notification, ProcessRecorder, Tracking
from psycopg.conninfo import conninfo_to_dict

from services.incidents.domain import Incident
from services.incidents.settings import IncidentSettings
from shared.canonical import ChainReport, verify_chain

RELAY_TRACKER = "relay:jetstream"
# Optimistic concurrency: a stale cached aggregate loses the race for version N+1 and reloads.
MAX_CONFLICT_RETRIES = 20


class DamagedLog(Exception):
    """The stored events of an incident can no longer be read (decrypted, parsed)."""


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


def _broken(exported: list[dict[str, Any]], seq: int, reason: str) -> ChainReport:
    """The report for a stream that breaks at `seq`, after checking the part before it."""
    before = verify_chain(exported)
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
    status: str = "open"


class IncidentLog(Application[UUID]):
    """The incidents application. Tracking positions (relay, consumed facts) share its store."""

    name = "incidents"
    snapshotting_intervals = {Incident: 100}  # noqa: RUF012 -- the library's class attribute

    def __init__(self, settings: IncidentSettings) -> None:
        type(self).snapshotting_intervals = {Incident: settings.snapshot_interval}
        # The library reads os.environ too; pass everything explicitly so tests can run two stores.
        super().__init__(env=eventsourcing_env(settings))
        self.on_saved: Callable[[], None] = lambda: None
        self._index: dict[str, IndexEntry] = {}
        self._index_position = 0
        self._index_lock = threading.Lock()
        self._locks: dict[UUID, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def construct_recorder(self) -> ProcessRecorder:
        # A process recorder writes tracking records atomically with new events (exactly-once).
        return self.factory.process_recorder()

    @property
    def process_recorder(self) -> ProcessRecorder:
        assert isinstance(self.recorder, ProcessRecorder)
        return self.recorder

    # --- reading ----------------------------------------------------------------------------

    def get(self, incident_id: UUID, org_id: str, version: int | None = None) -> Incident | None:
        """The incident, or None when it does not exist *or belongs to another organisation*."""
        try:
            incident: Any = self.repository.get(incident_id, version=version)
        except AggregateNotFoundError:
            return None
        except Exception as exc:
            # Unreadable stored events: the log is damaged, which is not the caller's fault.
            raise DamagedLog(str(incident_id)) from exc
        assert isinstance(incident, Incident)
        return incident if incident.org_id == org_id else None

    def exported_events(
        self, incident_id: UUID, until_seq: int | None = None
    ) -> list[dict[str, Any]]:
        return [
            event.export()
            for event in self.events.get(incident_id, lte=until_seq)
            if isinstance(event, Incident.Event)
        ]

    def verify(self, incident_id: UUID) -> tuple[ChainReport, list[str]]:
        """Check the stored stream itself, event by event, never trusting the aggregate cache.

        A stored event that no longer decrypts, decompresses or parses is reported as the first
        invalid seq with the reason, like a broken hash; nothing here raises on damaged data.
        Also returns the stored `hash` of every event, for the comparison with the anchor.
        """
        exported: list[dict[str, Any]] = []
        stored_events = self.recorder.select_events(incident_id)
        hashes = [""] * len(stored_events)
        report = self._verify_stored(stored_events, exported)
        for i, event in enumerate(exported):
            hashes[i] = event["hash"]
        return report, hashes

    def _verify_stored(
        self, stored_events: Sequence[Any], exported: list[dict[str, Any]]
    ) -> ChainReport:
        for expected, stored in enumerate(stored_events, start=1):
            if stored.originator_version != expected:
                return _broken(exported, expected, f"event {expected} is missing from the store")
            try:
                event = self.mapper.to_domain_event(stored)
            except Exception as exc:
                reason = f"stored event cannot be read ({type(exc).__name__})"
                return _broken(exported, expected, reason)
            if not isinstance(event, Incident.Event):
                return _broken(exported, expected, "stored event is not an incident event")
            exported.append(event.export())
        return verify_chain(exported)

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
                    event = self.mapper.to_domain_event(notification)
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
                        )
                    elif key in self._index:
                        self._index[key].status = "closed"
                    self._index_position = notification.id

    # --- writing ----------------------------------------------------------------------------

    def report(
        self, *, org_id: str, actor: dict[str, str], data: dict[str, Any], occurred_at: datetime
    ) -> Incident:
        incident = Incident.report(
            org_id=org_id, actor=actor, data=data, occurred_at=occurred_at, now=datetime.now(UTC)
        )
        self.save(incident)
        self.on_saved()
        return incident

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
            return self._append(incident_id, org_id, kind, actor=actor, data=data,
                                occurred_at=occurred_at, tracking=tracking)  # fmt: skip

    def _incident_lock(self, incident_id: UUID) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(incident_id)
            if lock is None:
                lock = self._locks[incident_id] = threading.Lock()
            return lock

    def _append(
        self,
        incident_id: UUID,
        org_id: str,
        kind: str,
        *,
        actor: dict[str, str],
        data: dict[str, Any],
        occurred_at: datetime | None,
        tracking: Tracking | None,
    ) -> Incident | None:
        for attempt in range(MAX_CONFLICT_RETRIES):
            if attempt:
                time.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 -- jitter only
            incident = self.get(incident_id, org_id)
            if incident is None:
                return None
            incident.record(
                kind, actor=actor, data=data, occurred_at=occurred_at, now=datetime.now(UTC)
            )
            try:
                if tracking is None:
                    self.save(incident)
                else:
                    processing = ProcessingEvent[UUID](tracking=tracking)
                    processing.collect_events(incident)
                    self._record(processing)
                    self._take_snapshots(processing)
            except IntegrityError:
                if tracking is not None and self.process_recorder.has_tracking_id(
                    tracking.application_name, tracking.notification_id
                ):
                    raise
                continue
            self.on_saved()
            return incident
        raise RuntimeError(f"gave up after {MAX_CONFLICT_RETRIES} concurrent-write conflicts")

    # --- the relay's and the consumers' positions ------------------------------------------

    def notifications_after(self, position: int, limit: int) -> Sequence[Notification]:
        return self.recorder.select_notifications(position, limit, inclusive_of_start=False)

    def exported(self, notification: Notification) -> dict[str, Any] | None:
        event = self.mapper.to_domain_event(notification)
        return event.export() if isinstance(event, Incident.Event) else None

    def position(self, tracker: str) -> int:
        return self.process_recorder.max_tracking_id(tracker) or 0

    def set_position(self, tracker: str, position: int) -> None:
        # IntegrityError: another replica got there first; the position only moves forward.
        with contextlib.suppress(IntegrityError):
            self.process_recorder.insert_tracking(Tracking(tracker, position))
