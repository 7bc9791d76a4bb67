"""The reporter's receipt (issue 15, item 6) without a bus: who gets one, that it waits for the
first round of alerts and never the other way round, and what it may say."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.cli import demo_directory
from services.notify.bus import Channels, Dispatcher, plan_report
from services.notify.domain import Directory
from services.notify.domain import receipt as receipts
from services.notify.store import Contact, NewAlert, NotifyStore
from shared.clock import ManualClock
from shared.schemas import Actor, IncidentEventV1
from shared.settings import Settings

REPORTED = datetime(2026, 9, 8, 21, 30, tzinfo=UTC)  # Tuesday 23:30 in Oslo
TITLE = "Slått i ansiktet av bruker"
DESCRIPTION = "Brukeren har diagnose og slo meg i ansiktet"


def event(actor: Actor = Actor(id="p-ansatt", name="Ali Ansatt")) -> IncidentEventV1:
    return IncidentEventV1(
        seq=1,
        type="IncidentReported",
        incident_id="i-1",
        org_id="demo",
        recorded_at=REPORTED.isoformat(),
        occurred_at=(REPORTED - timedelta(minutes=10)).isoformat(),
        actor=actor,
        data={
            "category": "vold-fysisk",
            "title": TITLE,
            "description": DESCRIPTION,
            "unit_id": "u-nord",
            "affected": ["p-ansatt"],
            "severity": "high",
            "facts": {"injury": True},
        },
        prev_hash="0" * 64,
        hash="f" * 64,
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[NotifyStore, Dispatcher, Settings, ManualClock]:
    clock = ManualClock(REPORTED)
    settings = Settings(data_dir=tmp_path, smtp_host="127.0.0.1", public_url="https://k.example")
    store = NotifyStore(tmp_path / "n.sqlite", clock)
    dispatcher = Dispatcher(store, None, settings, Channels(settings, "k" * 43, clock))  # type: ignore[arg-type]
    store.put_directory(Directory.model_validate(demo_directory()))
    return store, dispatcher, settings, clock


def test_the_reporter_gets_a_receipt_by_e_mail_once(setup: Any) -> None:
    store, dispatcher, settings, _ = setup
    directory = store.directory("demo")
    plan = plan_report(event(), directory, settings, dispatcher)
    receipt = plan["receipt"]
    assert receipt.kind == "receipt" and receipt.person_id == "p-ansatt"
    assert list(receipt.contacts) == [Contact("email", "ali.ansatt@demo.example")]
    assert plan["summary"]["reporter_id"] == "p-ansatt"
    # Deterministic: a redelivered report plans the same receipt, and the store keeps one.
    again = plan_report(event(), directory, settings, dispatcher)
    assert again["receipt"].id == receipt.id
    assert store.plan_report(**plan) and not store.plan_report(**again)
    assert store.alert_count("receipt") == 1
    assert receipt not in plan["alerts"]


def test_no_receipt_for_someone_alerted_themselves_or_without_e_mail(
    setup: Any, tmp_path: Path
) -> None:
    store, dispatcher, settings, clock = setup
    directory = store.directory("demo")
    leader = event(Actor(id="p-ln", name="Lise Nord"))  # she is the nearest leader
    assert plan_report(leader, directory, settings, dispatcher)["receipt"] is None
    unknown = event(Actor(id="p-ukjent", name="Ukjent"))
    assert plan_report(unknown, directory, settings, dispatcher)["receipt"] is None
    no_smtp = Settings(data_dir=tmp_path)
    plain = Dispatcher(store, None, no_smtp, Channels(no_smtp, "k" * 43, clock))  # type: ignore[arg-type]
    assert plan_report(event(), directory, no_smtp, plain)["receipt"] is None


def test_the_receipt_waits_for_the_first_round_of_alerts(setup: Any) -> None:
    store, dispatcher, settings, clock = setup
    plan = plan_report(event(), store.directory("demo"), settings, dispatcher)
    store.plan_report(**plan)
    hold = timedelta(minutes=1)

    # The alerts are due at once; the receipt is not, whatever the time.
    assert store.release_receipts(clock.now()) == 0
    first = store.claim_due(clock.now(), hold)
    assert sorted(a.kind for a in first) == ["alert", "alert"]
    leader, rep = sorted(first, key=lambda a: a.role)
    store.attempt_done(leader, "email", clock.now(), None, None, None)
    assert store.release_receipts(clock.now()) == 0  # the safety rep is still being tried
    store.attempt_done(rep, "email", clock.now(), "email: refused", clock.now() + hold, None)
    # Tried, delivered or not: the receipt can now say who was reached.
    assert store.release_receipts(clock.now()) == 1
    due = store.claim_due(clock.now(), hold)
    assert [a.kind for a in due] == ["receipt"]
    assert store.release_receipts(clock.now()) == 0  # released once

    shown = receipts.entries(store.alerts("demo", "i-1"))
    assert [(e["role"], e["delivery"]) for e in shown] == [
        ("nearest_leader", "sent"),
        ("safety_rep", "failed"),
    ]
    assert shown[1]["delivery_text"] == "Ikke kommet fram ennå – prøver igjen"  # no reason
    assert "refused" not in str(shown)


def test_delivery_states_are_honest() -> None:
    def row(**over: Any) -> dict[str, Any]:
        base = {"kind": "alert", "role": "nearest_leader", "person_name": "Lise Nord",
                "status": "pending", "attempts": 0, "channel": None, "sent_at": None,
                "acknowledged_at": None, "attempt_log": []}  # fmt: skip
        return {**base, **over}

    sent = row(status="sent", attempts=1, channel="email", sent_at="t",
               attempt_log=[{"channel": "email"}])  # fmt: skip
    log = row(status="sent", attempts=1, channel="log", sent_at="t",
              attempt_log=[{"channel": "log"}])  # fmt: skip
    rows = [sent, log, row(), row(status="cancelled"), row(kind="reminder"), row(kind="receipt")]
    shown = receipts.entries(rows)
    assert [e["delivery"] for e in shown] == ["sent", "no_channel", "pending", "cancelled"]
    assert shown[1]["delivery_text"] == "Ikke sendt – ingen kanal satt opp"
    assert shown[1]["sent_at"] is None  # nothing was sent
    assert not receipts.nobody_reached(shown)
    assert receipts.nobody_reached(receipts.entries([log]))


def test_the_receipt_e_mail_says_who_and_how_and_nothing_of_what_happened(setup: Any) -> None:
    store, dispatcher, settings, clock = setup
    plan = plan_report(event(), store.directory("demo"), settings, dispatcher)
    store.plan_report(**plan)
    leader, rep = sorted(store.claim_due(clock.now(), timedelta(minutes=1)), key=lambda a: a.role)
    store.attempt_done(leader, "email", clock.now(), None, None, None)
    store.attempt_done(rep, "email", clock.now(), None, None, None)
    store.release_receipts(clock.now())
    (receipt,) = store.claim_due(clock.now(), timedelta(minutes=1))
    body = {"alerts": receipts.entries(store.alerts("demo", "i-1"))}
    # As the dispatcher sends it: with the alerts as they stand then.
    subject, text = dispatcher.channels.compose(replace(receipt, body=body))
    assert subject == "Kvittering: meldingen din er mottatt i kriselogg"
    assert "Nærmeste leder Lise Nord: Sendt på e-post" in text
    assert "Verneombud Vera Verneombud: Sendt på e-post" in text
    assert "Ingen har bekreftet varselet ennå" in text
    assert "https://k.example/hendelser/i-1/kvittering" in text
    assert "ring nærmeste leder" in text
    for secret in (TITLE, DESCRIPTION, "Vold", "vold", "@demo.example", "/ack?"):
        assert secret not in text and secret not in subject, secret


def test_a_receipt_is_never_acknowledged_nor_counted_as_an_alert(setup: Any) -> None:
    store, dispatcher, settings, _ = setup
    plan = plan_report(event(), store.directory("demo"), settings, dispatcher)
    store.plan_report(**plan)
    assert store.alert_count() == 2  # the receipt is not among them
    kinds = sorted(a["kind"] for a in store.alerts("demo", "i-1"))
    assert kinds == ["alert", "alert", "receipt"]
    assert isinstance(plan["receipt"], NewAlert) and plan["receipt"].escalate_at is None
