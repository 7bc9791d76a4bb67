"""What people receive, and on which channel each attempt goes (no network)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from services.notify.bus import Channels, Dispatcher
from services.notify.domain import check_ack
from services.notify.store import Alert, Contact, NotifyStore
from shared.clock import SYSTEM_CLOCK
from shared.settings import Settings

SUMMARY = {
    "title": "Truet med kniv i resepsjonen, kuttet i hånda",
    "category": "trusler-personlig",
    "category_title": "Trusselsituasjoner: Trusler mot ansatte",
    "facts": {"injury": True, "sick_leave_from": "2026-07-02"},
    "severity": "critical",
    "place": "Rådhuset",
    "unit_name": "Servicetorget",
    "occurred_at": "2026-07-01T08:30:00+00:00",
    "reported_at": "2026-07-01T08:35:00+00:00",
    "reported_by": "Ali Ansatt",
}


def alert(kind: str = "alert", attempts: int = 0, contacts: int = 2) -> Alert:
    return Alert(
        id="a-1", org_id="demo", incident_id="i-1", kind=kind, role="nearest_leader",
        person_id="p-ln", person_name="Lise Nord",
        contacts=(Contact("email", "lise@x.example"), Contact("sms", "+4790000001"))[:contacts],
        attempts=attempts, status="pending", deadline_id=None if kind == "alert" else "d",
        body={"title": "Lag oppfølgingsplan sammen med den sykmeldte", "legal_ref": "aml § 4-6",
              "due_at": "2026-07-30T14:00:00+00:00", "due_label": "innen 4 uker"}
        if kind == "reminder" else {"title": "Send elektronisk skademelding (yrkesskade) til Nav",
              "legal_ref": "ftrl § 13-14", "due_at": None, "due_label": "snarest mulig"}
        if kind == "reminder-undated" else {},
        summary=SUMMARY,
    )  # fmt: skip


def channels(tmp_path: Path, **extra: Any) -> Channels:
    settings = Settings(data_dir=tmp_path, public_url="https://krise.example", **extra)
    return Channels(settings, "a-secret-key", SYSTEM_CLOCK)


def test_an_alert_says_what_where_when_who_and_how_to_answer(tmp_path: Path) -> None:
    c = channels(tmp_path, escalation_seconds=900)
    subject, text = c.compose(alert())
    # The category and unit, never the reporter's own words or the facts (aml § 6-2 tells
    # the safety rep *that* it happened; what happened, and any injury, is read after login).
    assert subject == "Varsel fra kriselogg: Trusselsituasjoner: Trusler mot ansatte, Servicetorget"
    assert "Hva: Trusselsituasjoner: Trusler mot ansatte" in text
    assert "kniv" not in subject + text and "hånda" not in subject + text
    assert "2026-07-02" not in text and "skade" not in text.lower()
    assert "Alvorlighet: kritisk" in text
    assert "Hvor: Rådhuset (Servicetorget)" in text
    assert "Når: onsdag 1. juli 2026 kl. 10.30" in text  # summer time in Oslo
    assert "Meldt av: Ali Ansatt" in text
    assert "https://krise.example/hendelser/i-1" in text  # the portal page, not the API
    assert "innen 15 minutter, varsles neste leder" in text
    link = next(w for w in text.split() if "/ack?" in w)
    query = dict(p.split("=", 1) for p in link.split("?", 1)[1].split("&"))
    now = c.clock.time()
    assert check_ack(c.ack_key, "a-1", int(query["expires"]), query["sig"], now)
    assert not check_ack(c.ack_key, "a-2", int(query["expires"]), query["sig"], now)
    # The link is valid for ACK_LINK_DAYS (default 7), not a second longer.
    week = 7 * 86400
    assert check_ack(c.ack_key, "a-1", int(query["expires"]), query["sig"], now + week - 5)
    assert not check_ack(c.ack_key, "a-1", int(query["expires"]), query["sig"], now + week + 5)


def test_an_sms_says_what_where_when_and_the_readers_part_in_plain_norwegian(
    tmp_path: Path,
) -> None:
    c = channels(tmp_path)
    text = c.sms_text(alert(), "ignored")
    assert text.startswith(
        "kriselogg: Trusselsituasjoner: Trusler mot ansatte, Servicetorget, kl. 10.30 01.07. "
        "Du varsles som nærmeste leder. Trykk for å bekrefte: https://krise.example/api/v1/alerts/"
    )
    assert "kniv" not in text and "i-1" not in text.split("Trykk")[0]  # no details, no raw ids


def test_a_reminder_names_the_duty_its_basis_and_the_deadline(tmp_path: Path) -> None:
    subject, text = channels(tmp_path).compose(alert(kind="reminder"))
    assert subject.startswith("Påminnelse: Lag oppfølgingsplan sammen med den sykmeldte")
    assert "(aml § 4-6)" in text
    assert "Frist: torsdag 30. juli 2026 kl. 16.00" in text
    assert "kniv" not in subject + text


def test_a_reminder_of_a_duty_without_a_date_says_how_it_is_due(tmp_path: Path) -> None:
    """ftrl § 13-14: "snarest"; no date is invented for it."""
    subject, text = channels(tmp_path).compose(replace(alert("reminder-undated"), kind="reminder"))
    assert (
        subject
        == "Påminnelse: Send elektronisk skademelding (yrkesskade) til Nav – frist snarest mulig"
    )
    assert "Frist: snarest mulig" in text


def test_attempts_use_the_backoff_then_fall_over_then_start_again(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, delivery_backoff_seconds=[1.0, 5.0])
    store = NotifyStore(tmp_path / "n.sqlite")
    d = Dispatcher(store, None, settings, channels(tmp_path))  # type: ignore[arg-type]
    plan = [d._channel_for(alert(attempts=n)) for n in range(7)]
    assert [(c.channel, wait) for c, wait in plan] == [
        ("email", 1.0), ("email", 5.0), ("email", 0.0),  # e-mail used up: SMS at once
        ("sms", 1.0), ("sms", 5.0), ("sms", 5.0),  # every channel tried: pause, then again
        ("email", 1.0),
    ]  # fmt: skip
    alone = [d._channel_for(alert(attempts=n, contacts=1))[1] for n in range(4)]
    assert alone == [1.0, 5.0, 5.0, 1.0]
