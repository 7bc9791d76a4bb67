"""Notify's timers are rows: they survive a restart, and each consequence is recorded once."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.notify.store import (
    Contact,
    Escalation,
    NewAlert,
    NewDeadline,
    NotifyStore,
    OutboxFact,
    alert_fact,
)
from shared.clock import ManualClock

# Every store here runs on a clock frozen at T0: the timers are compared with it, not today.
T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
CHAIN = [
    {"person_id": "p-ln", "name": "Lise Nord", "role": "nearest_leader", "unit_id": "u-nord",
     "contacts": [["email", "lise@x.example"]]},
    {"person_id": "p-ln2", "name": "Lars Nestleder", "role": "deputy", "unit_id": "u-nord",
     "contacts": [["email", "lars@x.example"]]},
]  # fmt: skip


def leader_alert(entry: dict[str, Any], escalate_at: datetime | None) -> NewAlert:
    return NewAlert(
        id=f"a-{entry['person_id']}",
        org_id="demo",
        incident_id="i-1",
        role=entry["role"],
        person_id=entry["person_id"],
        person_name=entry["name"],
        contacts=[Contact(c, a) for c, a in entry["contacts"]],
        escalate_at=escalate_at,
    )


def plan(store: NotifyStore, remind_at: datetime = T0 + timedelta(days=1)) -> bool:
    deadline = NewDeadline(
        deadline_id="oppfolging-en-uke", kind="routine", title="Oppfølgingssamtale etter en uke",
        legal_ref=None, due_at=T0 + timedelta(days=7), due_label="etter en uke",
        responsible_role="nearest_leader", person_id="p-ln", person_name="Lise Nord",
        contacts=[Contact("email", "lise@x.example")], remind_at=remind_at,
    )  # fmt: skip
    return store.plan_report(
        "demo", "i-1", {"title": "Slått"}, {"leader": CHAIN},
        [leader_alert(CHAIN[0], T0 + WINDOW)],
        [(deadline, OutboxFact("i-1:deadline:oppfolging-en-uke", "demo", "s.deadline", "{}"))],
    )  # fmt: skip


def escalate(store: NotifyStore, at: datetime) -> list[Escalation]:
    def facts(e: Escalation) -> list[OutboxFact]:
        return [alert_fact("AlertEscalated", e.from_alert, "s.alert", T0, reason="test")]

    return store.escalate_due(at, WINDOW, lambda _, entry, esc: leader_alert(entry, esc), facts)


def test_a_redelivered_report_plans_nothing_new(tmp_path: Path) -> None:
    store = NotifyStore(tmp_path / "n.sqlite", ManualClock(T0))
    assert plan(store) is True
    assert plan(store) is False
    assert store.alert_count() == 1
    assert [f.fact_id for f in store.unpublished()] == ["i-1:deadline:oppfolging-en-uke"]


def test_escalation_timer_survives_a_restart_and_fires_once(tmp_path: Path) -> None:
    store = NotifyStore(tmp_path / "n.sqlite", ManualClock(T0))
    plan(store)
    assert escalate(store, T0 + WINDOW - timedelta(seconds=1)) == []
    store.close()

    reopened = NotifyStore(tmp_path / "n.sqlite", ManualClock(T0))  # as after a crash
    assert reopened.next_due() is not None
    done = escalate(reopened, T0 + WINDOW)
    assert [(e.from_alert["person_id"], e.to_alert and e.to_alert.person_id) for e in done] == [
        ("p-ln", "p-ln2")
    ]
    assert escalate(reopened, T0 + WINDOW) == []  # fired once
    # The deputy's own window runs from the escalation; at its end the chain is exhausted.
    last = escalate(reopened, T0 + 2 * WINDOW)
    assert [(e.from_alert["person_id"], e.to_alert) for e in last] == [("p-ln2", None)]
    alerts = {a["person_id"]: a for a in reopened.alerts("demo", "i-1")}
    # Never delivered here: both are still being tried, and both are marked escalated.
    assert {p: a["status"] for p, a in alerts.items()} == {"p-ln": "pending", "p-ln2": "pending"}
    assert all(a["escalated_at"] for a in alerts.values())
    kinds = [json.loads(f.body).get("type") for f in reopened.unpublished()]
    assert kinds.count("AlertEscalated") == 2


def test_a_leaders_acknowledgement_stops_the_escalation(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store = NotifyStore(tmp_path / "n.sqlite", clock)
    plan(store)
    clock.advance(timedelta(minutes=3))

    def fact(row: dict[str, Any], at: datetime) -> OutboxFact:
        return alert_fact("AlertAcknowledged", row, "s.alert", at, via="kriselogg")

    acked = store.acknowledge("demo", "a-p-ln", "kriselogg", fact)
    assert acked is not None and acked["status"] == "acknowledged"
    assert store.acknowledge("other", "a-p-ln", "kriselogg", fact) is None  # another org
    assert escalate(store, T0 + 2 * WINDOW) == []


def test_reminders_are_planned_once_and_a_met_deadline_is_not_reminded(tmp_path: Path) -> None:
    store = NotifyStore(tmp_path / "n.sqlite", ManualClock(T0))
    plan(store, remind_at=T0 + timedelta(days=6))

    def reminder(row: dict[str, Any]) -> NewAlert:
        return NewAlert(
            id="r-1", org_id=row["org_id"], incident_id=row["incident_id"], kind="reminder",
            role=row["responsible_role"], person_id=row["person_id"],
            person_name=row["person_name"], contacts=[], escalate_at=None,
            deadline_id=row["deadline_id"],
        )  # fmt: skip

    assert store.remind_due(T0 + timedelta(days=5), reminder) == 0
    assert store.remind_due(T0 + timedelta(days=6), reminder) == 1
    assert store.remind_due(T0 + timedelta(days=6, hours=1), reminder) == 0
    store.deadline_met("demo", "i-1", "oppfolging-en-uke", T0 + timedelta(days=6, hours=2))
    reminders = [a for a in store.alerts("demo", "i-1") if a["kind"] == "reminder"]
    assert [r["status"] for r in reminders] == ["cancelled"]  # met before it was delivered
    assert store.deadlines("demo", "i-1")[0]["met_at"] is not None


def test_a_closed_incident_stops_every_timer(tmp_path: Path) -> None:
    store = NotifyStore(tmp_path / "n.sqlite", ManualClock(T0))
    plan(store)
    store.incident_closed("demo", "i-1")
    assert escalate(store, T0 + 2 * WINDOW) == []
    assert all(a["status"] == "cancelled" for a in store.alerts("demo", "i-1"))


def test_a_close_that_arrives_before_its_report_means_the_report_alerts_nobody(
    tmp_path: Path,
) -> None:
    """Close and report come on two consumers; the close can win. Nobody is alerted or
    reminded of an incident already closed."""
    store = NotifyStore(tmp_path / "n.sqlite", ManualClock(T0))
    store.incident_closed("demo", "i-1")
    assert plan(store) is False
    assert store.alerts("demo", "i-1") == []
    assert store.deadlines("demo", "i-1") == []
    assert store.remind_due(T0 + timedelta(days=30), lambda row: None) == 0  # type: ignore[arg-type,return-value]


def test_deliveries_in_flight_when_the_process_died_are_taken_again(tmp_path: Path) -> None:
    store = NotifyStore(tmp_path / "n.sqlite", ManualClock(T0))
    plan(store)
    claimed = store.claim_due(datetime.now(UTC), timedelta(minutes=5))
    assert [a.id for a in claimed] == ["a-p-ln"]
    assert store.claim_due(datetime.now(UTC), timedelta(minutes=5)) == []  # held by the claim
    store.close()
    reopened = NotifyStore(tmp_path / "n.sqlite", ManualClock(T0))
    assert reopened.release_claims() == 1
    assert [a.id for a in reopened.claim_due(datetime.now(UTC), timedelta(minutes=5))] == ["a-p-ln"]


SAFETY: list[dict[str, Any]] = [
    {"person_id": "p-vo", "name": "Vera Verneombud", "role": "safety_rep", "unit_id": "u-nord",
     "contacts": [["email", "vera@x.example"]]},
    {"person_id": "p-hvo", "name": "Hege Hovedverneombud", "role": "main_safety_rep",
     "unit_id": None, "contacts": [["email", "hege@x.example"]]},
]  # fmt: skip


def test_each_track_escalates_until_someone_in_it_acknowledges(tmp_path: Path) -> None:
    """The leader's answer does not answer for the safety rep, nor the other way round."""
    clock = ManualClock(T0)
    store = NotifyStore(tmp_path / "n.sqlite", clock)
    store.plan_report(
        "demo", "i-1", {}, {"leader": CHAIN, "safety": SAFETY},
        [leader_alert(CHAIN[0], T0 + WINDOW), leader_alert(SAFETY[0], T0 + WINDOW)], [],
    )  # fmt: skip

    def fact(row: dict[str, Any], at: datetime) -> OutboxFact:
        return alert_fact("AlertAcknowledged", row, "s.alert", at, via="lenke")

    clock.advance(timedelta(minutes=1))
    store.acknowledge("demo", "a-p-ln", "lenke", fact)
    done = escalate(store, T0 + WINDOW)
    # Only the safety rep's track goes on, to the main safety rep.
    assert [(e.from_alert["person_id"], e.to_alert and e.to_alert.person_id) for e in done] == [
        ("p-vo", "p-hvo")
    ]
    clock.advance(WINDOW)
    store.acknowledge("demo", "a-p-hvo", "sms", fact)
    assert escalate(store, T0 + 3 * WINDOW) == []
    alerts = {a["person_id"]: a for a in store.alerts("demo", "i-1")}
    assert {p: a["status"] for p, a in alerts.items()} == {
        "p-ln": "acknowledged", "p-vo": "cancelled", "p-hvo": "acknowledged",
    }  # fmt: skip
    assert alerts["p-vo"]["escalated_at"] is not None


def test_a_store_from_before_tracks_keeps_escalating_its_leaders(tmp_path: Path) -> None:
    """An incident planned by the previous version (its chain on the incident row, alerts with
    no track) is escalated on after the upgrade."""
    path = tmp_path / "n.sqlite"
    store = NotifyStore(path, ManualClock(T0))
    with store._tx() as tx:
        store._insert_alert(tx, leader_alert(CHAIN[0], T0 + WINDOW))
    store.close()
    db = sqlite3.connect(path, isolation_level=None)  # make it what the previous version left
    db.execute("ALTER TABLE alerts DROP COLUMN track")
    db.execute("DROP TABLE tracks")
    db.execute(
        "INSERT INTO incidents VALUES ('demo', 'i-1', '{}', ?, 1, 'open', ?)",
        (json.dumps(CHAIN), T0.isoformat()),
    )
    db.execute("PRAGMA user_version = 0")
    db.close()
    done = escalate(NotifyStore(path, ManualClock(T0)), T0 + WINDOW)
    assert [e.to_alert and e.to_alert.person_id for e in done] == ["p-ln2"]
