"""Notify's own store (SQLite in its data dir): directories, alerts, attempts, deadlines, outbox.

Everything that must survive a restart lives here, not in memory: each alert's next delivery
attempt, its escalation time, each deadline's reminder time. Every state change and the fact it
produces for the incident log are written in one transaction (the outbox), so a crash can delay
a fact but never lose or duplicate it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.notify.domain import Directory, delivery
from services.notify.domain.sms import phone_number
from shared.auth import Principal
from shared.clock import SYSTEM_CLOCK, Clock
from shared.law import category_kind
from shared.schemas import Actor, AlertFactV1
from shared.sqlite import SqliteStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS directories (
  org_id TEXT PRIMARY KEY, body TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS directory_versions (
  -- Every directory applied, the one in use (in directories too) the highest; the last
  -- KEEP_VERSIONS are kept, for a roll back.
  org_id TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
  applied_at TEXT NOT NULL,
  applied_by TEXT,                -- the admin's person id; NULL: the demo seed, or from before
  applied_by_name TEXT,           --   versions were kept
  restored_from INTEGER,          -- a roll back: the version it brought back
  PRIMARY KEY (org_id, version));
CREATE TABLE IF NOT EXISTS incidents (
  org_id TEXT NOT NULL, incident_id TEXT NOT NULL,
  summary TEXT NOT NULL,          -- what the alert texts say: title, place, time, reporter
  chain TEXT NOT NULL,            -- the leaders to alert, in escalation order (JSON)
  next_in_chain INTEGER NOT NULL, -- index in chain of the next person to escalate to
  status TEXT NOT NULL,           -- open | acknowledged | closed
  created_at TEXT NOT NULL,
  PRIMARY KEY (org_id, incident_id));
CREATE TABLE IF NOT EXISTS tracks (
  -- One escalation chain per alerted role group: the leaders (nearest leader -> deputies -> the
  -- leader above) and the safety reps (the unit's -> the main one). An acknowledgement by anyone
  -- in a track ends that track only.
  org_id TEXT NOT NULL, incident_id TEXT NOT NULL, track TEXT NOT NULL, -- leader | safety
  chain TEXT NOT NULL,            -- the people of the track, in escalation order (JSON)
  next_index INTEGER NOT NULL,    -- index in chain of the next person to escalate to
  status TEXT NOT NULL,           -- open | acknowledged
  PRIMARY KEY (org_id, incident_id, track));
CREATE TABLE IF NOT EXISTS alerts (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, incident_id TEXT NOT NULL,
  kind TEXT NOT NULL,             -- alert | reminder | receipt (services/notify/domain/receipt.py)
  role TEXT NOT NULL, person_id TEXT NOT NULL, person_name TEXT NOT NULL,
  contacts TEXT NOT NULL,         -- [[channel, address], ...] in the person's order
  channel TEXT,                   -- channel of the last attempt
  status TEXT NOT NULL,           -- pending | sending | sent | acknowledged | escalated
                                  -- | unanswered | cancelled
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT,           -- when to (re)try; NULL once delivered or stopped
  escalate_at TEXT,               -- leaders only: alert the next person if no ack by then
  deadline_id TEXT,               -- reminders: the duty they remind of
  body TEXT NOT NULL DEFAULT '{}',-- what the message says beyond the incident summary
  created_at TEXT NOT NULL, sent_at TEXT, acknowledged_at TEXT, acknowledged_by TEXT,
  escalated_at TEXT, last_error TEXT,
  track TEXT);                    -- leader | safety for alerts (TRACK_OF); NULL otherwise
CREATE INDEX IF NOT EXISTS alerts_by_incident ON alerts (org_id, incident_id);
CREATE INDEX IF NOT EXISTS alerts_due ON alerts (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS alerts_escalation ON alerts (escalate_at) WHERE escalate_at IS NOT NULL;
-- An SMS reply is matched among the alerts of the last ACK_LINK_DAYS (sms_alerts_to).
CREATE INDEX IF NOT EXISTS alerts_recent ON alerts (created_at) WHERE kind = 'alert';
-- Receipts waiting for the first round of alerts to be attempted (release_receipts).
CREATE INDEX IF NOT EXISTS alerts_receipts_waiting ON alerts (org_id, incident_id)
  WHERE kind = 'receipt' AND status = 'pending' AND next_attempt_at IS NULL;
CREATE TABLE IF NOT EXISTS attempts (
  alert_id TEXT NOT NULL, n INTEGER NOT NULL, channel TEXT NOT NULL, started_at TEXT NOT NULL,
  finished_at TEXT NOT NULL, outcome TEXT NOT NULL, error TEXT,
  PRIMARY KEY (alert_id, n));
CREATE TABLE IF NOT EXISTS ack_uses (
  -- Every acknowledgement made, first or repeated: who (the alert's person) and when, and how.
  alert_id TEXT NOT NULL, at TEXT NOT NULL, via TEXT NOT NULL,
  outcome TEXT NOT NULL);         -- acknowledged | already_acknowledged
CREATE INDEX IF NOT EXISTS ack_uses_by_alert ON ack_uses (alert_id);
CREATE TABLE IF NOT EXISTS deadlines (
  org_id TEXT NOT NULL, incident_id TEXT NOT NULL, deadline_id TEXT NOT NULL,
  kind TEXT NOT NULL, title TEXT NOT NULL, legal_ref TEXT,
  due_at TEXT,                    -- NULL where the law sets no date (snarest mulig, none)
  due_label TEXT NOT NULL, responsible_role TEXT NOT NULL,
  person_id TEXT, person_name TEXT, contacts TEXT NOT NULL,
  remind_at TEXT,                 -- NULL: nobody is reminded of it
  reminded_at TEXT, met_at TEXT,
  PRIMARY KEY (org_id, incident_id, deadline_id));
CREATE INDEX IF NOT EXISTS deadlines_reminder ON deadlines (remind_at)
  WHERE reminded_at IS NULL AND met_at IS NULL;
CREATE TABLE IF NOT EXISTS outbox (
  fact_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL,
  created_at TEXT NOT NULL, published_at TEXT);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (published_at) WHERE published_at IS NULL;
"""

DEADLINES_INDEX = """CREATE INDEX IF NOT EXISTS deadlines_reminder ON deadlines (remind_at)
  WHERE reminded_at IS NULL AND met_at IS NULL"""


def new_deadlines_table() -> str:
    start = SCHEMA.index("CREATE TABLE IF NOT EXISTS deadlines")
    return SCHEMA[start : SCHEMA.index(";", start)]


LEADER_ROLES = ("nearest_leader", "deputy", "leader")
SAFETY_ROLES = ("safety_rep", "main_safety_rep")
# Which escalation track an alerted role is in; HR is told, never escalated.
TRACK_OF: dict[str, str] = {
    **dict.fromkeys(LEADER_ROLES, "leader"),
    **dict.fromkeys(SAFETY_ROLES, "safety"),
}
OPEN_STATUSES = ("pending", "sending")
# Older directories are removed: they hold the contact points of people who may have left, and
# a roll back is to what was in use lately.
KEEP_VERSIONS = 20


def ts(moment: datetime) -> str:
    """One fixed text form for instants, so that SQLite compares them correctly as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class OutboxFact:
    fact_id: str
    org_id: str
    subject: str
    body: str


@dataclass(frozen=True)
class Contact:
    channel: str
    address: str


@dataclass(frozen=True)
class NewAlert:
    id: str
    org_id: str
    incident_id: str
    role: str
    person_id: str
    person_name: str
    contacts: Sequence[Contact]
    escalate_at: datetime | None
    kind: str = "alert"
    deadline_id: str | None = None
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewDeadline:
    deadline_id: str
    kind: str
    title: str
    legal_ref: str | None
    due_at: datetime | None
    due_label: str
    responsible_role: str
    person_id: str | None
    person_name: str | None
    contacts: Sequence[Contact]
    remind_at: datetime | None


@dataclass(frozen=True)
class Alert:
    """An alert (or reminder) as the dispatcher needs it to make one delivery attempt."""

    id: str
    org_id: str
    incident_id: str
    kind: str
    role: str
    person_id: str
    person_name: str
    contacts: tuple[Contact, ...]
    attempts: int
    status: str
    deadline_id: str | None
    body: dict[str, Any]
    summary: dict[str, Any]


@dataclass(frozen=True)
class Escalation:
    """What the dispatcher must publish after an escalation was recorded."""

    from_alert: dict[str, Any]
    to_alert: NewAlert | None


@dataclass(frozen=True)
class DirectoryVersion:
    version: int
    applied_at: datetime
    applied_by: str | None
    applied_by_name: str | None
    restored_from: int | None
    units: int
    people: int


class DirectoryChanged(Exception):
    """The directory is no longer the version the caller saw (`base`)."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the directory is now version {current}")
        self.current = current


def _contacts(text: str) -> tuple[Contact, ...]:
    return tuple(Contact(c, a) for c, a in json.loads(text))


def _contacts_json(contacts: Sequence[Contact]) -> str:
    return json.dumps([[c.channel, c.address] for c in contacts], ensure_ascii=False)


def _ts_or_none(moment: datetime | None) -> str | None:
    return ts(moment) if moment is not None else None


class NotifyStore(SqliteStore):
    def __init__(self, path: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(path, SCHEMA, rows_as_dicts=True)
        self.clock = clock
        self._migrate()
        # The directory writes a number any way ("+47 900 00 002"); SQL compares one form.
        self._db.create_function(
            "phone_number",
            1,
            lambda raw: phone_number(raw) if isinstance(raw, str) else None,
            deterministic=True,
        )

    def _migrate(self) -> None:
        """Stores made before duties could be undated had due_at and remind_at NOT NULL; SQLite
        cannot relax a column, so the table is rebuilt once, rows kept. Stores made before
        escalation ran per track kept the leaders' chain on the incident: it becomes the
        leader track, once."""
        with self._tx() as db:
            if db.execute("PRAGMA user_version").fetchone()[0] < 1:
                if "track" not in {r["name"] for r in db.execute("PRAGMA table_info(alerts)")}:
                    db.execute("ALTER TABLE alerts ADD COLUMN track TEXT")
                for role, track in TRACK_OF.items():
                    db.execute(
                        "UPDATE alerts SET track = ? WHERE kind = 'alert' AND role = ?",
                        (track, role),
                    )
                db.execute(
                    "INSERT OR IGNORE INTO tracks SELECT org_id, incident_id, 'leader', chain,"
                    " next_in_chain, CASE status WHEN 'open' THEN 'open' ELSE 'acknowledged' END"
                    " FROM incidents WHERE chain != '[]'"
                )
                db.execute("PRAGMA user_version = 1")
            if db.execute("PRAGMA user_version").fetchone()[0] < 2:
                # The directory in use from before versions were kept becomes version 1.
                db.execute(
                    "INSERT OR IGNORE INTO directory_versions (org_id, version, body, applied_at)"
                    " SELECT org_id, 1, body, updated_at FROM directories"
                )
                db.execute("PRAGMA user_version = 2")
            strict = {r["name"] for r in db.execute("PRAGMA table_info(deadlines)") if r["notnull"]}
            if not strict & {"due_at", "remind_at"}:
                return
            db.execute("ALTER TABLE deadlines RENAME TO deadlines_before_undated")
            db.execute(new_deadlines_table())
            db.execute("INSERT INTO deadlines SELECT * FROM deadlines_before_undated")
            db.execute("DROP TABLE deadlines_before_undated")
            db.execute(DEADLINES_INDEX)

    # --- directory ------------------------------------------------------------------------

    def put_directory(
        self,
        directory: Directory,
        *,
        by: Principal | None = None,
        base: int | None = None,
        restored_from: int | None = None,
    ) -> int:
        """Apply `directory` as a new version, kept with who applied it; its number. `base`: the
        version the caller saw, else DirectoryChanged. The very directory in use again (the demo
        seed at every start) is no new version."""
        # Replacing the directory touches only these tables: alerts in flight keep the people and
        # contact points they were planned with, and their escalation chain.
        org_id, body = directory.org.id, directory.model_dump_json(by_alias=True)
        now = self.clock.now()
        with self._tx() as db:
            current = self._version(db, org_id)
            if base is not None and base != current:
                raise DirectoryChanged(current)
            row = db.execute("SELECT body FROM directories WHERE org_id = ?", (org_id,)).fetchone()
            if row is not None and row["body"] == body and current:
                return current
            db.execute(
                "INSERT INTO directories VALUES (?, ?, ?) ON CONFLICT (org_id) DO UPDATE "
                "SET body = excluded.body, updated_at = excluded.updated_at",
                (org_id, body, ts(now)),
            )
            version = current + 1
            db.execute(
                "INSERT INTO directory_versions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    org_id,
                    version,
                    body,
                    ts(now),
                    by.person_id if by else None,
                    by.name if by else None,
                    restored_from,
                ),
            )
            db.execute(
                "DELETE FROM directory_versions WHERE org_id = ? AND version <= ?",
                (org_id, version - KEEP_VERSIONS),
            )
        return version

    @staticmethod
    def _version(db: sqlite3.Connection, org_id: str) -> int:
        row = db.execute(
            "SELECT MAX(version) AS v FROM directory_versions WHERE org_id = ?", (org_id,)
        ).fetchone()
        return int(row["v"] or 0)

    def directory_version(self, org_id: str) -> int:
        """The version in use; 0 while there is no directory."""
        with self._lock:
            return self._version(self._db, org_id)

    def directory_in_use(self, org_id: str) -> tuple[int, Directory | None]:
        """The version in use and its directory, read together (0, None: none yet)."""
        with self._lock:
            version = self._version(self._db, org_id)
            row = self._db.execute(
                "SELECT body FROM directories WHERE org_id = ?", (org_id,)
            ).fetchone()
        return version, Directory.model_validate_json(row["body"]) if row else None

    def directory_versions(self, org_id: str) -> list[DirectoryVersion]:
        """The versions kept, the one in use first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT version, applied_at, applied_by, applied_by_name, restored_from,"
                " json_array_length(body, '$.units') AS units,"
                " json_array_length(body, '$.people') AS people"
                " FROM directory_versions WHERE org_id = ? ORDER BY version DESC",
                (org_id,),
            ).fetchall()
        return [
            DirectoryVersion(
                version=r["version"],
                applied_at=parse_ts(r["applied_at"]),
                applied_by=r["applied_by"],
                applied_by_name=r["applied_by_name"],
                restored_from=r["restored_from"],
                units=r["units"] or 0,
                people=r["people"] or 0,
            )
            for r in rows
        ]

    def directory_at(self, org_id: str, version: int) -> Directory | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM directory_versions WHERE org_id = ? AND version = ?",
                (org_id, version),
            ).fetchone()
        return Directory.model_validate_json(row["body"]) if row else None

    def directories(self) -> list[Directory]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM directories ORDER BY org_id").fetchall()
        return [Directory.model_validate_json(r["body"]) for r in rows]

    def directory(self, org_id: str) -> Directory | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM directories WHERE org_id = ?", (org_id,)
            ).fetchone()
        return Directory.model_validate_json(row["body"]) if row else None

    # --- planning a report ----------------------------------------------------------------

    def plan_report(
        self,
        org_id: str,
        incident_id: str,
        summary: dict[str, Any],
        tracks: Mapping[str, list[dict[str, Any]]],
        alerts: Sequence[NewAlert],
        deadlines: Sequence[tuple[NewDeadline, OutboxFact]],
        receipt: NewAlert | None = None,
        duties_error: str | None = None,
    ) -> bool:
        """Record everything a report sets in motion, once: a redelivered report changes nothing.

        `duties_error` says why no duties could be computed (the alerts go out regardless); it
        is kept in the summary, beside the dead letter the report becomes.

        `receipt` (the reporter's, services/notify/domain/receipt.py) is recorded waiting: the
        dispatcher releases it once the first alerts were attempted (release_receipts).

        `tracks` are the escalation chains by track; the first person of each is among
        `alerts`. Returns False when the report had already been planned.
        """
        with self._tx() as db:
            created = db.execute(
                "INSERT OR IGNORE INTO incidents VALUES (?, ?, ?, '[]', 0, 'open', ?)",
                (
                    org_id,
                    incident_id,
                    json.dumps(
                        {**summary, "duties_error": duties_error} if duties_error else summary,
                        ensure_ascii=False,
                    ),
                    ts(self.clock.now()),
                ),
            ).rowcount
            if not created:
                return False
            self._insert_tracks(db, org_id, incident_id, tracks)
            for alert in alerts:
                self._insert_alert(db, alert)
            if receipt is not None:
                self._insert_alert(db, receipt)
                db.execute(
                    "UPDATE alerts SET next_attempt_at = NULL WHERE id = ? AND attempts = 0",
                    (receipt.id,),
                )
            self._insert_deadlines(db, org_id, incident_id, deadlines)
        return True

    def _insert_tracks(
        self,
        db: sqlite3.Connection,
        org_id: str,
        incident_id: str,
        tracks: Mapping[str, list[dict[str, Any]]],
    ) -> None:
        """Each track once, its first person alerted already: a track set keeps its place."""
        for track, chain in tracks.items():
            if chain:
                db.execute(
                    "INSERT OR IGNORE INTO tracks VALUES (?, ?, ?, ?, 1, 'open')",
                    (org_id, incident_id, track, json.dumps(chain, ensure_ascii=False)),
                )

    def _insert_deadlines(
        self,
        db: sqlite3.Connection,
        org_id: str,
        incident_id: str,
        deadlines: Sequence[tuple[NewDeadline, OutboxFact]],
    ) -> None:
        """Each duty once: one already set keeps its deadline, and its fact is not repeated."""
        for d, fact in deadlines:
            inserted = db.execute(
                "INSERT OR IGNORE INTO deadlines VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (
                    org_id, incident_id, d.deadline_id, d.kind, d.title, d.legal_ref,
                    _ts_or_none(d.due_at), d.due_label, d.responsible_role, d.person_id,
                    d.person_name, _contacts_json(d.contacts), _ts_or_none(d.remind_at),
                ),
            ).rowcount  # fmt: skip
            if inserted:
                self._insert_facts(db, [fact])

    def summary(self, org_id: str, incident_id: str) -> dict[str, Any] | None:
        """What notify kept of a planned report (None before it was planned)."""
        with self._lock:
            row = self._db.execute(
                "SELECT summary FROM incidents WHERE org_id = ? AND incident_id = ?",
                (org_id, incident_id),
            ).fetchone()
        if row is None:
            return None
        summary: dict[str, Any] = json.loads(row["summary"])
        # Reports planned before facts could come later kept less: fill in what they lacked.
        summary.setdefault("facts", {})
        summary.setdefault("affected", [])
        summary.setdefault("kind", category_kind(str(summary.get("category", ""))))
        return summary

    def plan_facts(
        self,
        org_id: str,
        incident_id: str,
        summary: dict[str, Any],
        alerts: Sequence[NewAlert],
        deadlines: Sequence[tuple[NewDeadline, OutboxFact]],
        seq: int,
        tracks: Mapping[str, list[dict[str, Any]]] | None = None,
    ) -> bool:
        """Record a later facts entry (`summary` holds it under `facts_entries`, by its seq),
        and the alerts and duties it newly starts. Each entry is applied once: a redelivered one
        changes nothing. Returns False when it had been applied already."""
        with self._tx() as db:
            row = db.execute(
                "SELECT summary FROM incidents WHERE org_id = ? AND incident_id = ?",
                (org_id, incident_id),
            ).fetchone()
            if row is None or str(seq) in json.loads(row["summary"]).get("facts_entries", {}):
                return False
            db.execute(
                "UPDATE incidents SET summary = ? WHERE org_id = ? AND incident_id = ?",
                (json.dumps(summary, ensure_ascii=False), org_id, incident_id),
            )
            self._insert_tracks(db, org_id, incident_id, tracks or {})
            for alert in alerts:
                self._insert_alert(db, alert)
            self._insert_deadlines(db, org_id, incident_id, deadlines)
        return True

    def _insert_alert(self, db: sqlite3.Connection, a: NewAlert) -> None:
        at = self.clock.now()
        db.execute(
            "INSERT OR IGNORE INTO alerts (id, org_id, incident_id, kind, role, person_id,"
            " person_name, contacts, status, attempts, next_attempt_at, escalate_at, deadline_id,"
            " body, created_at, track)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?, ?)",
            (
                a.id, a.org_id, a.incident_id, a.kind, a.role, a.person_id, a.person_name,
                _contacts_json(a.contacts), ts(at),
                ts(a.escalate_at) if a.escalate_at else None, a.deadline_id,
                json.dumps(a.body, ensure_ascii=False), ts(at),
                TRACK_OF.get(a.role) if a.kind == "alert" else None,
            ),
        )  # fmt: skip

    def _insert_facts(self, db: sqlite3.Connection, facts: Sequence[OutboxFact]) -> None:
        for fact in facts:
            db.execute(
                "INSERT OR IGNORE INTO outbox VALUES (?, ?, ?, ?, ?, NULL)",
                (fact.fact_id, fact.org_id, fact.subject, fact.body, ts(self.clock.now())),
            )

    # --- delivery -------------------------------------------------------------------------

    def release_receipts(self, at: datetime) -> int:
        """Make due each waiting receipt whose incident has no alert left untried (each was
        attempted, delivered or not, or acknowledged or cancelled before): the receipt can then
        say which channel reached whom. Only receipts wait here; no alert ever waits on one."""
        with self._tx() as db:
            return db.execute(
                "UPDATE alerts SET next_attempt_at = ? WHERE kind = 'receipt'"
                " AND status = 'pending' AND next_attempt_at IS NULL AND NOT EXISTS ("
                " SELECT 1 FROM alerts a WHERE a.org_id = alerts.org_id"
                " AND a.incident_id = alerts.incident_id AND a.kind = 'alert'"
                " AND a.attempts = 0 AND a.status IN ('pending', 'sending'))",
                (ts(at),),
            ).rowcount

    def release_claims(self) -> int:
        """After a restart: deliveries that were in flight when the process died are retried."""
        with self._tx() as db:
            return db.execute(
                "UPDATE alerts SET status = 'pending', next_attempt_at = ?"
                " WHERE status = 'sending'",
                (ts(self.clock.now()),),
            ).rowcount

    def claim_due(self, at: datetime, hold: timedelta, limit: int = 50) -> list[Alert]:
        """Take the deliveries that are due; a claim not finished within `hold` is taken again."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT a.*, i.summary FROM alerts a JOIN incidents i"
                " ON i.org_id = a.org_id AND i.incident_id = a.incident_id"
                " WHERE a.next_attempt_at IS NOT NULL AND a.next_attempt_at <= ?"
                " AND a.status IN ('pending', 'sending') ORDER BY a.next_attempt_at LIMIT ?",
                (ts(at), limit),
            ).fetchall()
            for row in rows:
                db.execute(
                    "UPDATE alerts SET status = 'sending', next_attempt_at = ? WHERE id = ?",
                    (ts(at + hold), row["id"]),
                )
        return [
            Alert(
                id=r["id"],
                org_id=r["org_id"],
                incident_id=r["incident_id"],
                kind=r["kind"],
                role=r["role"],
                person_id=r["person_id"],
                person_name=r["person_name"],
                contacts=_contacts(r["contacts"]),
                attempts=r["attempts"],
                status=r["status"],
                deadline_id=r["deadline_id"],
                body=json.loads(r["body"]),
                summary=json.loads(r["summary"]),
            )
            for r in rows
        ]

    def attempt_done(
        self,
        alert: Alert,
        channel: str,
        started_at: datetime,
        error: str | None,
        retry_at: datetime | None,
        fact: OutboxFact | None,
    ) -> None:
        """Record one attempt and its outcome; a delivered alert's fact goes to the outbox."""
        at = self.clock.now()
        with self._tx() as db:
            n = alert.attempts + 1
            db.execute(
                "INSERT OR REPLACE INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.id, n, channel, ts(started_at), ts(at),
                    # The log channel reaches nobody: recorded, never "delivered".
                    "failed" if error else ("not_sent" if channel == "log" else "delivered"),
                    error,
                ),
            )  # fmt: skip
            if error is None:
                # An alert escalated or cancelled meanwhile keeps that status; it was delivered.
                db.execute(
                    "UPDATE alerts SET attempts = ?, channel = ?, sent_at = ?, last_error = NULL,"
                    " next_attempt_at = NULL,"
                    " status = CASE WHEN status = 'sending' THEN 'sent' ELSE status END"
                    " WHERE id = ?",
                    (n, channel, ts(at), alert.id),
                )
                if fact is not None:
                    self._insert_facts(db, [fact])
            else:
                db.execute(
                    "UPDATE alerts SET attempts = ?, channel = ?, last_error = ?,"
                    " next_attempt_at = CASE WHEN status = 'sending' THEN ? ELSE NULL END,"
                    " status = CASE WHEN status = 'sending' THEN 'pending' ELSE status END"
                    " WHERE id = ?",
                    (n, channel, error, ts(retry_at) if retry_at else None, alert.id),
                )

    # --- escalation -----------------------------------------------------------------------

    def escalate_due(
        self,
        at: datetime,
        window: timedelta,
        next_alert: Callable[[dict[str, Any], dict[str, Any], datetime], NewAlert],
        facts_for: Callable[[Escalation], list[OutboxFact]],
    ) -> list[Escalation]:
        """Escalate every alert whose window passed without an acknowledgement in its track.

        `next_alert(alert_row, chain_entry, escalate_at)` builds the next person's alert and
        `facts_for(escalation)` the facts to publish; both are pure, passed in by the dispatcher.
        The time is read inside the transaction: an acknowledgement committed before it stops
        the escalation, one committed after it is recorded later than it, so the log can never
        show an escalation after an acknowledgement.
        """
        done: list[Escalation] = []
        with self._tx() as db:
            at = max(at, self.clock.now())
            rows = db.execute(
                "SELECT a.*, i.status AS incident_status, i.summary, t.track, t.chain,"
                " t.next_index, t.status AS track_status"
                " FROM alerts a JOIN incidents i"
                " ON i.org_id = a.org_id AND i.incident_id = a.incident_id"
                " LEFT JOIN tracks t ON t.org_id = a.org_id AND t.incident_id = a.incident_id"
                " AND t.track = a.track"
                " WHERE a.escalate_at IS NOT NULL AND a.escalate_at <= ? ORDER BY a.escalate_at",
                (ts(at),),
            ).fetchall()
            for row in rows:
                if (
                    row["incident_status"] == "closed"
                    or row["track"] is None
                    or row["track_status"] != "open"
                    or row["acknowledged_at"] is not None
                ):
                    db.execute("UPDATE alerts SET escalate_at = NULL WHERE id = ?", (row["id"],))
                    continue
                # Read again: an earlier row of this loop may have moved the same track on.
                track = db.execute(
                    "SELECT chain, next_index FROM tracks"
                    " WHERE org_id = ? AND incident_id = ? AND track = ?",
                    (row["org_id"], row["incident_id"], row["track"]),
                ).fetchone()
                chain = json.loads(track["chain"])
                index = track["next_index"]
                to_alert: NewAlert | None = None
                if index < len(chain):
                    to_alert = next_alert(dict(row), chain[index], at + window)
                    self._insert_alert(db, to_alert)
                    db.execute(
                        "UPDATE tracks SET next_index = ?"
                        " WHERE org_id = ? AND incident_id = ? AND track = ?",
                        (index + 1, row["org_id"], row["incident_id"], row["track"]),
                    )
                status = "escalated" if to_alert else "unanswered"
                # An alert not yet delivered keeps being tried: escalating adds a person, it
                # does not take the first one off the case.
                db.execute(
                    "UPDATE alerts SET escalate_at = NULL, escalated_at = ?, status = CASE"
                    " WHEN status IN ('pending', 'sending') THEN status ELSE ? END WHERE id = ?",
                    (ts(at), status, row["id"]),
                )
                escalation = Escalation(from_alert=dict(row), to_alert=to_alert)
                self._insert_facts(db, facts_for(escalation))
                done.append(escalation)
        return done

    # --- acknowledgement ------------------------------------------------------------------

    def alert(self, org_id: str, alert_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM alerts WHERE org_id = ? AND id = ?", (org_id, alert_id)
            ).fetchone()
        return dict(row) if row else None

    def alert_by_id(self, alert_id: str) -> dict[str, Any] | None:
        """For signed links only: the signature, not a token, says who may use it."""
        with self._lock:
            row = self._db.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return dict(row) if row else None

    def sms_alerts_to(self, number: str, since: datetime, limit: int = 50) -> list[dict[str, Any]]:
        """The alerts created since `since` that were sent (an attempt made) by SMS to `number`
        (E.164, as services.notify.domain.sms.phone_number gives it), newest first.

        In every organisation: an SMS reply says only which number it came from. For SMS replies
        only, where the code in the text says which of these alerts is meant.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, org_id, incident_id, person_id, acknowledged_at FROM alerts a"
                " WHERE kind = 'alert' AND created_at >= ?"
                " AND EXISTS (SELECT 1 FROM json_each(a.contacts) c"
                "  WHERE json_extract(c.value, '$[0]') = 'sms'"
                "  AND phone_number(json_extract(c.value, '$[1]')) = ?)"
                " AND EXISTS (SELECT 1 FROM attempts t WHERE t.alert_id = a.id"
                "  AND t.channel = 'sms')"
                " ORDER BY created_at DESC, id LIMIT ?",
                (ts(since), number, limit),
            ).fetchall()
        return [dict(r) for r in rows]

    def acknowledge(
        self,
        org_id: str,
        alert_id: str,
        via: str,
        fact_for: Callable[[dict[str, Any], datetime], OutboxFact],
    ) -> dict[str, Any] | None:
        """Record the acknowledgement once; it ends the escalation of the person's track (the
        leaders, or the safety reps), not the other's.

        Every use is kept (a second tap on the link, a repeated SMS reply), so the alert shows
        who acknowledged when and how, and that a later use changed nothing. The time is read
        inside the transaction (see escalate_due). `fact_for(alert_row, at)` builds the fact.
        Returns the alert as it is now, or None if it does not exist in the organisation.
        """
        with self._tx() as db:
            at = self.clock.now()
            row = db.execute(
                "SELECT * FROM alerts WHERE org_id = ? AND id = ?", (org_id, alert_id)
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "INSERT INTO ack_uses VALUES (?, ?, ?, ?)",
                (
                    alert_id, ts(at), via,
                    "acknowledged" if row["acknowledged_at"] is None else "already_acknowledged",
                ),
            )  # fmt: skip
            if row["acknowledged_at"] is None:
                db.execute(
                    "UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ?,"
                    " status = 'acknowledged', escalate_at = NULL, next_attempt_at = NULL"
                    " WHERE id = ?",
                    (ts(at), row["person_id"], alert_id),
                )
                track = row["track"]
                if track is not None:
                    # Someone in the track has answered: nobody else in it is alerted.
                    db.execute(
                        "UPDATE tracks SET status = 'acknowledged'"
                        " WHERE org_id = ? AND incident_id = ? AND track = ?",
                        (org_id, row["incident_id"], track),
                    )
                    db.execute(
                        "UPDATE alerts SET escalate_at = NULL, next_attempt_at = NULL,"
                        " status = CASE WHEN status IN ('pending', 'sending') THEN 'cancelled'"
                        " ELSE status END"
                        " WHERE org_id = ? AND incident_id = ? AND kind = 'alert'"
                        " AND track = ? AND id != ?",
                        (org_id, row["incident_id"], track, alert_id),
                    )
                if track == "leader":
                    db.execute(
                        "UPDATE incidents SET status = 'acknowledged'"
                        " WHERE org_id = ? AND incident_id = ? AND status = 'open'",
                        (org_id, row["incident_id"]),
                    )
                self._insert_facts(db, [fact_for(dict(row), at)])
            updated = db.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return dict(updated)

    # --- deadlines and the end of an incident --------------------------------------------

    def remind_due(self, at: datetime, reminder: Callable[[dict[str, Any]], NewAlert]) -> int:
        """Plan a reminder for each duty whose reminder time came; `reminder(row)` builds it."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT d.*, i.status AS incident_status FROM deadlines d JOIN incidents i"
                " ON i.org_id = d.org_id AND i.incident_id = d.incident_id"
                " WHERE d.reminded_at IS NULL AND d.met_at IS NULL AND d.remind_at <= ?",
                (ts(at),),
            ).fetchall()
            planned = 0
            for row in rows:
                if row["incident_status"] != "closed" and row["person_id"]:
                    self._insert_alert(db, reminder(dict(row)))
                    planned += 1
                db.execute(
                    "UPDATE deadlines SET reminded_at = ?"
                    " WHERE org_id = ? AND incident_id = ? AND deadline_id = ?",
                    (ts(at), row["org_id"], row["incident_id"], row["deadline_id"]),
                )
        return planned

    def deadline_met(self, org_id: str, incident_id: str, deadline_id: str, at: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE deadlines SET met_at = ?"
                " WHERE org_id = ? AND incident_id = ? AND deadline_id = ? AND met_at IS NULL",
                (ts(at), org_id, incident_id, deadline_id),
            )
            db.execute(
                "UPDATE alerts SET status = 'cancelled', next_attempt_at = NULL"
                " WHERE org_id = ? AND incident_id = ? AND deadline_id = ?"
                " AND status IN ('pending', 'sending')",
                (org_id, incident_id, deadline_id),
            )

    def incident_closed(self, org_id: str, incident_id: str) -> None:
        """A closed incident needs no more alerts, escalations or reminders.

        The close can reach notify before its report (two consumers, a redelivery): then the
        incident is recorded as closed already, so the late report plans nothing.
        """
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO incidents VALUES (?, ?, '{}', '[]', 0, 'closed', ?)",
                (org_id, incident_id, ts(self.clock.now())),
            )
            db.execute(
                "UPDATE incidents SET status = 'closed' WHERE org_id = ? AND incident_id = ?",
                (org_id, incident_id),
            )
            db.execute(
                "UPDATE alerts SET escalate_at = NULL, next_attempt_at = NULL,"
                " status = CASE WHEN status IN ('pending', 'sending') THEN 'cancelled'"
                " ELSE status END WHERE org_id = ? AND incident_id = ?",
                (org_id, incident_id),
            )

    def next_due(self) -> datetime | None:
        """The earliest moment anything is due: a delivery, an escalation or a reminder."""
        with self._lock:
            row = self._db.execute(
                "SELECT min(t) FROM ("
                " SELECT min(next_attempt_at) AS t FROM alerts WHERE next_attempt_at IS NOT NULL"
                " UNION ALL SELECT min(escalate_at) FROM alerts WHERE escalate_at IS NOT NULL"
                " UNION ALL SELECT min(remind_at) FROM deadlines"
                " WHERE reminded_at IS NULL AND met_at IS NULL)"
            ).fetchone()
        return parse_ts(row[0]) if row and row[0] else None

    # --- outbox ---------------------------------------------------------------------------

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
                "UPDATE outbox SET published_at = ? WHERE fact_id = ?",
                (ts(self.clock.now()), fact_id),
            )

    # --- reading, for the API -------------------------------------------------------------

    def alerts(self, org_id: str, incident_id: str | None = None) -> list[dict[str, Any]]:
        query = (
            "SELECT id, incident_id, kind, role, person_id, person_name, channel, status,"
            " attempts, created_at, sent_at, acknowledged_at, escalate_at, escalated_at,"
            " deadline_id, last_error FROM alerts WHERE org_id = ?"
        )
        params = [org_id]
        if incident_id:
            query += " AND incident_id = ?"
            params.append(incident_id)
        with self._lock:
            rows = [dict(r) for r in self._db.execute(query + " ORDER BY created_at, id", params)]
            for row in rows:
                row["attempt_log"] = [
                    dict(a)
                    for a in self._db.execute(
                        "SELECT n, channel, started_at, finished_at, outcome, error"
                        " FROM attempts WHERE alert_id = ? ORDER BY n",
                        (row["id"],),
                    )
                ]
                row["delivery"] = delivery(row)
                row["ack_log"] = [
                    dict(a)
                    for a in self._db.execute(
                        "SELECT at, via, outcome FROM ack_uses WHERE alert_id = ? ORDER BY rowid",
                        (row["id"],),
                    )
                ]
        return rows

    def alert_count(self, kind: str = "alert") -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM alerts WHERE kind = ?", (kind,)).fetchone()
        return int(row[0])

    def deadlines(self, org_id: str, incident_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(r)
                for r in self._db.execute(
                    "SELECT deadline_id, kind, title, legal_ref, due_at, due_label,"
                    " responsible_role, person_id, person_name, remind_at, reminded_at, met_at"
                    " FROM deadlines WHERE org_id = ? AND incident_id = ?"
                    " ORDER BY due_at IS NULL, due_at",
                    (org_id, incident_id),
                )
            ]


def alert_fact(
    kind: str,
    alert: Mapping[str, Any],
    subject: str,
    at: datetime,
    channel: str = "",
    **extra: Any,
) -> OutboxFact:
    fact = AlertFactV1(
        fact_id=f"{alert['id']}:{kind}",
        type=kind,  # type: ignore[arg-type]
        alert_id=alert["id"],
        incident_id=alert["incident_id"],
        org_id=alert["org_id"],
        at=at,
        recipient=Actor(id=alert["person_id"], name=alert["person_name"]),
        role=alert["role"],
        channel=channel or alert.get("channel") or "",
        **extra,
    )
    return OutboxFact(fact.fact_id, fact.org_id, subject, fact.model_dump_json())
