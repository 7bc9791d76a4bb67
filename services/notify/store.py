"""Notify's own store (SQLite in its data dir): directories, alerts and the outbox of facts."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.notify.domain import Directory

SCHEMA = """
CREATE TABLE IF NOT EXISTS directories (
  org_id TEXT PRIMARY KEY, body TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, incident_id TEXT NOT NULL, role TEXT NOT NULL,
  person_id TEXT NOT NULL, person_name TEXT NOT NULL, channel TEXT NOT NULL,
  status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
  sent_at TEXT, acknowledged_at TEXT, last_error TEXT);
CREATE INDEX IF NOT EXISTS alerts_by_incident ON alerts (org_id, incident_id);
CREATE TABLE IF NOT EXISTS outbox (
  fact_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL,
  created_at TEXT NOT NULL, published_at TEXT);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (published_at) WHERE published_at IS NULL;
"""


def now_text() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class PlannedAlert:
    id: str
    org_id: str
    incident_id: str
    role: str
    person_id: str
    person_name: str
    channel: str


@dataclass(frozen=True)
class OutboxFact:
    fact_id: str
    org_id: str
    subject: str
    body: str


class NotifyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        # One connection, guarded by a lock: writes are tiny and SQLite serialises them anyway.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        # Under the lock: a statement still running in a worker thread (its awaiting task may
        # have been cancelled) must finish first; closing under it crashes SQLite.
        with self._lock:
            self._db.close()

    def ping(self) -> bool:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()
        return True

    # --- directory --------------------------------------------------------------------------

    def put_directory(self, directory: Directory) -> None:
        body = directory.model_dump_json(by_alias=True)
        with self._tx() as db:
            db.execute(
                "INSERT INTO directories VALUES (?, ?, ?) ON CONFLICT (org_id) "
                "DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                (directory.org.id, body, now_text()),
            )

    def directory(self, org_id: str) -> Directory | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM directories WHERE org_id = ?", (org_id,)
            ).fetchone()
        return Directory.model_validate_json(row["body"]) if row else None

    # --- alerts -----------------------------------------------------------------------------

    def plan(self, alerts: list[PlannedAlert]) -> None:
        """Record alerts to send; a redelivered report plans the same ids, so nothing doubles."""
        at = now_text()
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO alerts (id, org_id, incident_id, role, person_id, "
                "person_name, channel, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                [
                    (
                        a.id,
                        a.org_id,
                        a.incident_id,
                        a.role,
                        a.person_id,
                        a.person_name,
                        a.channel,
                        at,
                    )
                    for a in alerts
                ],
            )

    def pending(self, alert_ids: list[str] | None = None) -> list[PlannedAlert]:
        query = (
            "SELECT id, org_id, incident_id, role, person_id, person_name, channel "
            "FROM alerts WHERE status = 'pending'"
        )
        params: list[str] = []
        if alert_ids is not None:
            query += f" AND id IN ({','.join('?' * len(alert_ids))})"
            params = alert_ids
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at, id", params).fetchall()
        return [PlannedAlert(**dict(r)) for r in rows]

    def mark_sent(self, alert_id: str, fact: OutboxFact) -> None:
        """The delivery and the fact that reports it are recorded together, or not at all."""
        at = now_text()
        with self._tx() as db:
            db.execute(
                "UPDATE alerts SET status = 'sent', sent_at = ?, attempts = attempts + 1 "
                "WHERE id = ?",
                (at, alert_id),
            )
            db.execute(
                "INSERT OR IGNORE INTO outbox VALUES (?, ?, ?, ?, ?, NULL)",
                (fact.fact_id, fact.org_id, fact.subject, fact.body, at),
            )

    def unpublished(self, limit: int = 100) -> list[OutboxFact]:
        with self._lock:
            rows = self._db.execute(
                "SELECT fact_id, org_id, subject, body FROM outbox WHERE published_at IS NULL "
                "ORDER BY created_at, fact_id LIMIT ?",
                (limit,),
            ).fetchall()
        return [OutboxFact(**dict(r)) for r in rows]

    def mark_published(self, fact_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET published_at = ? WHERE fact_id = ?", (now_text(), fact_id)
            )

    def alerts(self, org_id: str, incident_id: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT * FROM alerts WHERE org_id = ?"
        params = [org_id]
        if incident_id:
            query += " AND incident_id = ?"
            params.append(incident_id)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at, id", params).fetchall()
        return [dict(r) for r in rows]

    def alert_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM alerts").fetchone()[0])


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
