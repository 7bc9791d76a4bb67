"""What people receive, and on which channel each attempt goes (no network)."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from dataclasses import replace
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from services.notify.bus import Channels, Dispatcher
from services.notify.domain import check_ack
from services.notify.store import Alert, Contact, NotifyStore
from shared.clock import SYSTEM_CLOCK
from shared.settings import Settings

SUMMARY = {
    "title": "Truet med kniv i resepsjonen, kuttet i hånda",
    "description": "Brukeren var ruset og sa han skulle komme tilbake",
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
    assert subject == (
        "Varsel: Trusselsituasjoner: Trusler mot ansatte, Servicetorget, onsdag 1. juli kl. 10.30"
        " – bekreft at du har sett det"
    )
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
        "kriselogg: Trusselsituasjoner: Trusler mot ansatte, Servicetorget, onsdag 1. juli kl. "
        "10.30. Du varsles som nærmeste leder. Trykk for å bekrefte: "
        "https://krise.example/api/v1/alerts/"
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
    assert subject == (
        "Påminnelse: Send elektronisk skademelding (yrkesskade) til Nav – frist snarest mulig"
        " (Trusselsituasjoner: Trusler mot ansatte, Servicetorget)"
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


# --- what a tired reader gets: every kind of message, e-mail as text and HTML -------------

URL = re.compile(r"https?://\S+")
# Everything that must never be in a message, from the summary: the reporter's words and facts.
DETAILS = ("kniv", "hånda", "ruset", "2026-07-02", "injury", "sick_leave")
# The raw ids of the example: the alert, incident, person, duty, category and role.
IDS = ("a-1", "i-1", "p-ln", "aml-4-6", "trusler-personlig", "nearest_leader", "deputy")
# What the HTML part is made of: no images, scripts, styles or anything fetched from elsewhere.
TAGS = {"html", "head", "meta", "title", "body", "div", "p", "table", "tr", "th", "td", "a"}


def escalated() -> Alert:
    return replace(
        alert(), role="deputy", person_name="Dag Dahl", body={"escalated_from": "nearest_leader"}
    )


MESSAGES: dict[str, Callable[[], Alert]] = {
    "alert": alert,
    "safety_rep": lambda: replace(alert(), role="safety_rep", person_name="Vera Verneombud"),
    "escalated": escalated,
    "reminder": lambda: replace(alert("reminder"), deadline_id="aml-4-6"),
    "undated": lambda: replace(alert("reminder-undated"), kind="reminder", deadline_id="aml-4-6"),
}


class Html(HTMLParser):
    """The tags, the links (with their styles) and the words a reader sees in an HTML part."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.links: list[dict[str, str | None]] = []
        self.words: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "a":
            self.links.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        self.words.append(data)


async def emailed(c: Channels, a: Alert, monkeypatch: pytest.MonkeyPatch) -> EmailMessage:
    """The e-mail `send` hands to the SMTP server, as the receiving side parses it."""
    sent: list[EmailMessage] = []

    async def accept(message: EmailMessage, **_: Any) -> None:
        sent.append(message)

    monkeypatch.setattr(aiosmtplib, "send", accept)
    await c.send(a, Contact("email", "lise@x.example"))
    [message] = sent
    parsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(message: EmailMessage) -> tuple[str, str]:
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None, "both a text and an HTML part"
    return str(plain.get_content()), str(html.get_content())


@pytest.mark.parametrize("kind", MESSAGES)
async def test_the_email_has_a_text_and_an_html_part_with_the_same_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    c = channels(tmp_path, smtp_host="smtp.example")
    message = await emailed(c, MESSAGES[kind](), monkeypatch)
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    page = Html(html)
    # The same links, in the same order, as real links (the parser unescapes &amp;).
    assert [link["href"] for link in page.links] == URL.findall(text)
    assert page.links and all(
        str(link["href"]).startswith("https://krise.example/") for link in page.links
    )
    # The first link is the big button: the acknowledgement for an alert.
    assert "display:block" in str(page.links[0]["style"])
    if kind != "reminder" and kind != "undated":
        assert "/ack?" in str(page.links[0]["href"])
    assert '<html lang="nb">' in html and 'name="viewport"' in html
    assert page.tags <= TAGS, page.tags - TAGS  # nothing fetched from elsewhere, no <style>
    # The words of the HTML are those of the text part: one source, they cannot drift apart.
    shown = " ".join(" ".join(page.words).split())
    for line in text.splitlines():
        if line and not URL.match(line):
            for words in line.rstrip(":").split(": "):
                assert words in shown, words


async def test_the_html_part_escapes_every_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile = replace(
        alert(),
        person_name='Ola "<b>" Normann',
        summary={
            **SUMMARY,
            "unit_name": "<script>alert(1)</script>",
            "place": '<img src="https://evil.example/x.png">',
        },
    )
    c = channels(tmp_path, smtp_host="smtp.example")
    subject_text, html = parts(await emailed(c, hostile, monkeypatch))
    page = Html(html)
    assert page.tags <= TAGS, page.tags - TAGS
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" in "".join(page.words)  # shown as text, not run
    assert "<script>alert(1)</script>" in subject_text  # the text part needs no escaping


@pytest.mark.parametrize("kind", MESSAGES)
async def test_no_part_of_any_message_says_what_happened_or_the_facts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    c = channels(tmp_path, smtp_host="smtp.example")
    a = MESSAGES[kind]()
    message = await emailed(c, a, monkeypatch)
    text, html = parts(message)
    webhook = str(c.webhook_payload(a, *c.compose(a)))
    everything = " ".join([str(message["Subject"]), text, html, c.sms_text(a, ""), webhook])
    for detail in DETAILS:
        assert detail not in everything.lower(), detail


@pytest.mark.parametrize("kind", MESSAGES)
def test_no_raw_ids_outside_the_links(tmp_path: Path, kind: str) -> None:
    c = channels(tmp_path)
    a = MESSAGES[kind]()
    m = c.message(a)
    visible = " ".join([m.subject, m.text(), "".join(Html(m.html()).words), c.sms_text(a, "")])
    visible = URL.sub("", visible)
    for raw in IDS:
        assert raw not in visible, raw


def test_an_unknown_unit_or_category_reads_as_words_not_ids(tmp_path: Path) -> None:
    c = channels(tmp_path)
    unknown = replace(
        alert(),
        summary={
            **SUMMARY,
            "category": "ny-kategori",
            "category_title": "ny-kategori",
            "unit_id": "u-nord",
            "unit_name": "u-nord",
        },
    )
    m = c.message(unknown)
    visible = URL.sub("", m.subject + m.text() + c.sms_text(unknown, ""))
    assert "u-nord" not in visible and "ny-kategori" not in visible
    assert m.subject.startswith("Varsel: Hendelse, onsdag 1. juli kl. 10.30 – bekreft")
    assert "Hvor: Rådhuset\n" in m.text()


@pytest.mark.parametrize("kind", ["alert", "safety_rep", "escalated"])
def test_an_alerts_subject_and_sms_say_category_unit_time_and_what_to_do(
    tmp_path: Path, kind: str
) -> None:
    c = channels(tmp_path)
    a = MESSAGES[kind]()
    subject, sms = c.message(a).subject, c.sms_text(a, "")
    for said in (subject, sms):
        assert "Trusselsituasjoner: Trusler mot ansatte" in said
        assert "Servicetorget" in said
        assert "onsdag 1. juli kl. 10.30" in said  # Oslo time, with the weekday
    assert subject.endswith(" – bekreft at du har sett det")
    assert "Trykk for å bekrefte: https://krise.example/api/v1/alerts/a-1/ack?" in sms


@pytest.mark.parametrize("kind", ["reminder", "undated"])
def test_a_reminders_subject_and_sms_say_the_duty_its_deadline_and_the_incident(
    tmp_path: Path, kind: str
) -> None:
    c = channels(tmp_path)
    a = MESSAGES[kind]()
    subject, sms = c.message(a).subject, c.sms_text(a, "")
    due = "torsdag 30. juli kl. 16.00" if kind == "reminder" else "snarest mulig"
    for said in (subject, sms):
        assert str(a.body["title"]) in said  # the duty's title is what to do
        assert f"frist {due}" in said
        assert "Trusselsituasjoner: Trusler mot ansatte, Servicetorget" in said
    assert "Åpne og marker som utført: https://krise.example/hendelser/i-1" in sms


def test_an_escalated_alert_says_whose_silence_brought_it_there(tmp_path: Path) -> None:
    c = channels(tmp_path, escalation_seconds=900)
    m = c.message(escalated())
    assert m.subject.startswith("Varsel (ikke bekreftet): Trusselsituasjoner")
    assert (
        "Varselet om en hendelse er ikke bekreftet av nærmeste leder innen 15 minutter, så det "
        "går videre til deg som stedfortreder for leder." in m.text()
    )
    assert "Hei Dag Dahl," in m.text()
    assert "varsles neste leder" in m.text()  # and it goes on from here
    sms = c.sms_text(escalated(), "")
    assert sms.startswith("kriselogg: Ikke bekreftet av nærmeste leder: Trusselsituasjoner")
    assert "Du varsles som stedfortreder for leder." in sms
    # A deputy alerted first (the nearest leader away) is not told of an escalation.
    first = c.message(replace(alert(), role="deputy"))
    assert first.subject.startswith("Varsel: ") and "ikke bekreftet av" not in first.text()


def test_the_dispatcher_marks_an_escalated_alert_with_whom_it_came_from(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    d = Dispatcher(NotifyStore(tmp_path / "n.sqlite"), None, settings, channels(tmp_path))  # type: ignore[arg-type]
    row = {"org_id": "demo", "incident_id": "i-1", "role": "nearest_leader"}
    entry = {"person_id": "p-dep", "name": "Dag Dahl", "role": "deputy", "contacts": []}
    nxt = d._next_alert(row, entry, SYSTEM_CLOCK.now())
    assert nxt.role == "deputy" and nxt.body == {"escalated_from": "nearest_leader"}
