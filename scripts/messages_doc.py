"""Write docs/messages.md: every message notify sends, as its reader gets it.

One fixed example (example names, a fixed time, example.org links) goes through the real code:
`Channels.send` on each channel, with the SMTP server, the SMS gateway and the webhook receiver
replaced by stand-ins that keep what they were handed. So the subjects, texts, HTML parts, SMS
texts and webhook bodies here are exactly what kriselogg sends today; nothing is written by
hand. tests/notify/test_messages_doc.py fails when the document is stale.

    .venv/bin/python scripts/messages_doc.py          # rewrite it
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from unittest import mock

import aiosmtplib
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.notify.bus import Channels, Dispatcher, alert_id  # noqa: E402
from services.notify.domain import duties  # noqa: E402
from services.notify.domain import receipt as receipts  # noqa: E402
from services.notify.store import Alert, Contact, NewAlert, NotifyStore  # noqa: E402
from shared.clock import ManualClock  # noqa: E402
from shared.law import categories  # noqa: E402
from shared.settings import Settings  # noqa: E402

OUTPUT = ROOT / "docs" / "messages.md"

# The example. The time is a winter evening (19.00 in Oslo), as an alert at night would be.
PUBLIC_URL = "https://kriselogg.example.org"
NOW = datetime(2026, 11, 25, 18, 4, tzinfo=UTC)
OCCURRED = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
REPORTED = datetime(2026, 11, 25, 18, 3, tzinfo=UTC)
INCIDENT = "0b6f6a52-4a3e-4c9e-9f7e-2d1c1f0e8a11"
ORG = "eksempel"
CATEGORY = "vold-fysisk"
FACTS = {"injury": True, "serious_injury": False, "sick_leave_from": "2026-11-26"}
SUMMARY: dict[str, Any] = {
    "category": CATEGORY,
    "category_title": categories()[CATEGORY].title,
    "kind": "arbeidsmiljo",
    "severity": "high",
    "place": "Storgata 1, Tromsø",
    "unit_id": "u-nord",
    "unit_name": "Hjemmetjenesten nord",
    "affected": ["p-ansatt"],
    "facts": FACTS,
    "occurred_at": OCCURRED.isoformat(),
    "reported_at": REPORTED.isoformat(),
    "reported_by": "Ali Ansatt",
}
LEADER = ("p-ln", "Lise Nord", "lise.nord@eksempel.example.org", "+4790000001")
SAFETY_REP = ("p-vo", "Vera Verneombud", "vera.verneombud@eksempel.example.org", "+4790000002")
DEPUTY = ("p-dd", "Dag Dahl", "dag.dahl@eksempel.example.org", "+4790000003")
REPORTER = ("p-ansatt", "Ali Ansatt", "ali.ansatt@eksempel.example.org", "+4790000004")


@dataclass(frozen=True)
class Sent:
    """What one message was on each channel, as the stand-ins received it."""

    email: EmailMessage
    sms: dict[str, Any] | None
    webhook: dict[str, Any] | None
    webhook_headers: dict[str, str]


def settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        public_url=PUBLIC_URL,
        smtp_host="smtp.example.org",
        smtp_from="kriselogg@eksempel.example.org",
        sms_url="https://sms.example.org/send",
        # Example keys, so that the links' signatures, the SMS code and the webhook's
        # signature are the same on every run (the staleness test compares the text).
        sms_inbound_secret="eksempel-sms",  # noqa: S106
        webhook_secret="eksempel-webhook",  # noqa: S106
        escalation_seconds=900,
        ack_link_days=7,
        timezone="Europe/Oslo",
    )


def alert(new: NewAlert) -> Alert:
    """The alert as the dispatcher claims it for an attempt (the first)."""
    return Alert(
        id=new.id,
        org_id=new.org_id,
        incident_id=new.incident_id,
        kind=new.kind,
        role=new.role,
        person_id=new.person_id,
        person_name=new.person_name,
        contacts=tuple(new.contacts),
        attempts=0,
        status="pending",
        deadline_id=new.deadline_id,
        body=new.body,
        summary=SUMMARY,
    )


def first_alert(role: str, person: tuple[str, str, str, str]) -> Alert:
    return alert(
        NewAlert(
            id=alert_id(INCIDENT, role, person[0]),
            org_id=ORG,
            incident_id=INCIDENT,
            role=role,
            person_id=person[0],
            person_name=person[1],
            contacts=[Contact("email", person[2]), Contact("sms", person[3])],
            escalate_at=NOW + timedelta(minutes=15),
        )
    )


def examples(dispatcher: Dispatcher) -> list[tuple[str, str, Alert]]:
    """(heading, what it is, alert) for every kind of message, built by the dispatcher's own
    code where it builds them (escalation, reminders)."""
    escalated = dispatcher._next_alert(
        {"org_id": ORG, "incident_id": INCIDENT, "role": "nearest_leader"},
        {
            "person_id": DEPUTY[0],
            "name": DEPUTY[1],
            "role": "deputy",
            "contacts": [["email", DEPUTY[2]], ["sms", DEPUTY[3]]],
        },
        NOW + timedelta(minutes=30),
    )
    found = duties(
        occurred_at=OCCURRED,
        learnt_at=REPORTED,
        facts=FACTS,
        kind="arbeidsmiljo",
        routine=None,
    )
    dated = next(d for d in found if d.kind == "law" and d.due_at is not None)
    # Undated and still reminded ("snarest mulig"); a duty with no deadline at all is not.
    undated = next(d for d in found if d.due_at is None and d.remind_at is not None)

    def reminder(duty: Any) -> Alert:
        return alert(
            dispatcher._reminder(
                {
                    "org_id": ORG,
                    "incident_id": INCIDENT,
                    "deadline_id": duty.id,
                    "responsible_role": "nearest_leader",
                    "person_id": LEADER[0],
                    "person_name": LEADER[1],
                    "contacts": json.dumps([["email", LEADER[2]], ["sms", LEADER[3]]]),
                    "title": duty.title,
                    "legal_ref": duty.legal_ref,
                    "due_at": duty.due_at.isoformat() if duty.due_at else None,
                    "due_label": duty.due_label,
                }
            )
        )

    return [
        (
            "Varsel til nærmeste leder",
            "Sendes straks hendelsen er meldt. Bekrefter ingen i lederkjeden innen fristen, "
            "går varselet videre.",
            first_alert("nearest_leader", LEADER),
        ),
        (
            "Varsel til verneombudet",
            "Sendes samtidig med lederens, ved hendelser i arbeidsmiljøet (aml § 6-2) og ved "
            "personlige hendelser bare med samtykke.",
            first_alert("safety_rep", SAFETY_REP),
        ),
        (
            "Varsel sendt videre til neste leder",
            "Sendes når nærmeste leder ikke har bekreftet innen fristen (her 15 minutter).",
            alert(escalated),
        ),
        (
            "Påminnelse om en lovpålagt plikt med frist",
            f"Sendes før fristen for en plikt hendelsen utløste (her {dated.legal_ref}).",
            reminder(dated),
        ),
        (
            "Påminnelse om en plikt uten dato",
            f"Loven setter ingen dato (her {undated.legal_ref}, «{undated.due_label}»); "
            "påminnelsen sier det, og kriselogg finner ikke på noen dato.",
            reminder(undated),
        ),
        (
            "Kvittering til den som meldte",
            "Sendes på e-post til den som meldte, når varslene er forsøkt levert: hvem som er "
            "varslet, på hvilken kanal, og om noen har bekreftet. Aldri på SMS eller webhook.",
            receipt(),
        ),
    ]


def receipt() -> Alert:
    """The reporter's receipt as the dispatcher fills it in before sending: both first alerts
    delivered (the leader's by e-mail, the safety rep's by SMS), neither acknowledged yet."""
    sent_at = "2026-11-25T18:04:00.000000Z"
    rows = [
        {
            "kind": "alert",
            "role": role,
            "person_name": person[1],
            "attempt_log": [{"channel": channel}],
            "channel": channel,
            "sent_at": sent_at,
            "status": "sent",
            "attempts": 1,
            "acknowledged_at": None,
        }
        for role, person, channel in (
            ("nearest_leader", LEADER, "email"),
            ("safety_rep", SAFETY_REP, "sms"),
        )
    ]
    return alert(
        NewAlert(
            id=receipts.receipt_id(INCIDENT, REPORTER[0]),
            org_id=ORG,
            incident_id=INCIDENT,
            kind=receipts.RECEIPT_KIND,
            role="reporter",
            person_id=REPORTER[0],
            person_name=REPORTER[1],
            contacts=[Contact("email", REPORTER[2])],
            escalate_at=None,
            body={"alerts": receipts.entries(rows)},
        )
    )


@contextmanager
def stand_ins(channels: Channels) -> Iterator[list[tuple[str, Any]]]:
    """The SMTP server and the HTTP peers (SMS gateway, webhook receiver), keeping what they
    were handed: the messages leave through the real `Channels.send`."""
    received: list[tuple[str, Any]] = []

    async def smtp(message: EmailMessage, **_: Any) -> None:
        received.append(("email", message))

    def http(request: httpx.Request) -> httpx.Response:
        received.append((str(request.url), request))
        return httpx.Response(202)

    channels._http = httpx.AsyncClient(transport=httpx.MockTransport(http))
    with mock.patch.object(aiosmtplib, "send", smtp):
        yield received


async def deliver(channels: Channels, a: Alert) -> Sent:
    """`a` sent on each channel its kind goes out on: a receipt by e-mail only."""
    contacts = list(a.contacts)
    if a.kind != receipts.RECEIPT_KIND:
        contacts.append(Contact("webhook", "https://vakt.example.org/kriselogg"))
    with stand_ins(channels) as received:
        for contact in contacts:
            await channels.send(a, contact)
    await channels._http.aclose()
    got = dict(received)
    parsed = email.message_from_bytes(bytes(got["email"]), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    sms = got.get(channels.settings.sms_url or "")
    hook = got.get("https://vakt.example.org/kriselogg")
    headers = (
        {k: hook.headers[k] for k in ("Content-Type", "X-Kriselogg-Signature", "X-Kriselogg-Alert")}
        if hook is not None
        else {}
    )
    return Sent(
        parsed,
        json.loads(sms.content) if sms is not None else None,
        json.loads(hook.content) if hook is not None else None,
        headers,
    )


def fence(kind: str, text: str) -> list[str]:
    return [f"```{kind}", text.rstrip("\n"), "```", ""]


def part(message: EmailMessage, subtype: str) -> str:
    found = message.get_body((subtype,))
    assert found is not None, subtype
    return str(found.get_content())


def section(heading: str, about: str, sent: Sent) -> list[str]:
    m = sent.email
    headers = "\n".join(
        f"{name}: {m[name]}"
        for name in ("From", "To", "Subject", "Message-ID", "X-Kriselogg-Alert")
        if m[name]
    )
    sms = (
        [
            f"SMS-en (til gateway-en, med referanse `{sent.sms['reference']}`):",
            "",
            *fence("text", sent.sms["text"]),
        ]
        if sent.sms is not None
        else []
    )
    return [
        f"## {heading}",
        "",
        about,
        "",
        f"**Emne:** {m['Subject']}",
        "",
        "E-posten, hodene:",
        "",
        *fence("text", headers),
        "Tekstdelen:",
        "",
        *fence("text", part(m, "plain")),
        "HTML-delen (samme ord og lenker, bygd fra de samme delene):",
        "",
        *fence("html", part(m, "html")),
        *sms,
    ]


def intro(channels: Channels) -> list[str]:
    minutes = round(channels.settings.escalation_seconds / 60)
    return [
        "# Meldingene kriselogg sender",
        "",
        "<!-- Generated by scripts/messages_doc.py from services/notify/bus.py: do not edit. -->",
        "",
        "*In English, briefly:* every message kriselogg's notify service sends (alerts, "
        "escalations, reminders, the reporter's receipt), as its reader gets it: subject, the "
        "e-mail's text and HTML parts, the SMS and the webhook's JSON. They are made by the "
        "real code from one fixed example, so they are what is sent today. The texts are "
        "Norwegian because the readers are. Regenerate with "
        "`.venv/bin/python scripts/messages_doc.py`; a test fails while it is stale.",
        "",
        "## Skrevet for den som blir vekket",
        "",
        "Et varsel kan komme midt på natta. Derfor sier emnet og SMS-en det viktigste først: "
        "hva slags hendelse, hvilken enhet, når den skjedde og hva mottakeren skal gjøre "
        "(bekrefte, åpne, ringe). Ingen melding inneholder det den som meldte skrev, eller "
        "faktaene om hendelsen: de kan si noe om helse. Det leses i kriselogg etter "
        "innlogging. Meldingene har heller ingen interne id-er i teksten, bare i lenkene.",
        "",
        "- **E-post** har en tekstdel og en HTML-del med de samme ordene og lenkene. HTML-delen "
        "har en stor knapp for å bekrefte, ingen bilder eller eksterne stiler, og kan leses på "
        "en telefon.",
        "- **SMS** er én melding med lenken som bekrefter.",
        "- **Webhook** sender JSON til et vaktsystem, signert med HMAC-SHA256 i "
        "`X-Kriselogg-Signature`.",
        f"- **Eskalering:** bekrefter ingen innen {minutes} minutter, går varselet videre i "
        "kjeden (nærmeste leder → stedfortreder → leder på nivået over; verneombud → "
        "hovedverneombud).",
        "- **Kvittering:** den som meldte får på e-post vite hvem som er varslet, på hvilken "
        "kanal, og om noen har bekreftet; aldri hva som er meldt.",
        "",
        "## Levering: minst én gang",
        "",
        "Kriselogg leverer hver melding *minst* én gang, ikke nøyaktig én gang. Stopper "
        "tjenesten etter at en melding er sendt, men før sendingen er registrert, sendes den "
        "på nytt etter omstart. Den nye sendingen har samme `Message-ID` (e-post), samme "
        "`reference` (SMS) og samme `X-Kriselogg-Alert` (webhook) som den første, så "
        "e-postsystemet, SMS-gateway-en eller vaktsystemet kan kjenne den igjen som den samme "
        "meldingen. Mislykkes et forsøk, prøver kriselogg igjen og går over til neste kanal "
        "personen har.",
        "",
    ]


async def _render() -> str:
    with tempfile.TemporaryDirectory() as folder:
        clock = ManualClock(NOW)
        config = settings(Path(folder))
        channels = Channels(config, "eksempel-hemmelighet", clock)
        store = NotifyStore(Path(folder) / "notify.sqlite", clock)
        dispatcher = Dispatcher(store, None, config, channels)  # type: ignore[arg-type]
        lines = intro(channels)
        webhook: Sent | None = None
        for heading, about, a in examples(dispatcher):
            sent = await deliver(channels, a)
            webhook = webhook or sent
            lines += section(heading, about, sent)
        assert webhook is not None
        assert webhook.webhook is not None
        lines += [
            "## Webhook",
            "",
            "Varselet til nærmeste leder som JSON til et vaktsystem (de andre meldingene har "
            "samme form, med `type` `reminder` for en påminnelse). `subject` og `text` er de "
            "samme som i e-posten; vaktsystemet kan også bygge sin egen tekst av feltene. "
            "Signaturen er HMAC-SHA256 av hele kroppen med `KRISELOGG_WEBHOOK_SECRET`.",
            "",
            "Hodene:",
            "",
            *fence("text", "\n".join(f"{k}: {v}" for k, v in webhook.webhook_headers.items())),
            "Kroppen:",
            "",
            *fence("json", json.dumps(webhook.webhook, ensure_ascii=False, indent=2)),
        ]
        store.close()
    return "\n".join(lines).rstrip("\n") + "\n"


def render() -> str:
    return asyncio.run(_render())


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
