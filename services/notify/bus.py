"""Notify at its edges: reports in from the bus, alerts out on e-mail/SMS/webhook, facts back.

The consumers only *record* what must happen (in one transaction, idempotently); the dispatcher
does it: delivers due alerts with retries and fall-over between channels, escalates unanswered
leader alerts, plans reminders before deadlines and publishes the facts from the outbox. All of
its timers are rows in the store, so a restart resumes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib
import httpx
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from services.notify.domain import (
    Directory,
    Person,
    Resolver,
    Responder,
    duties,
    link_key,
    reminder_at,
    sign_ack,
    sms,
)
from services.notify.domain import receipt as receipts
from services.notify.domain.messages import Link, Message
from services.notify.store import (
    LEADER_ROLES,
    SAFETY_ROLES,
    Alert,
    Contact,
    Escalation,
    NewAlert,
    NewDeadline,
    NotifyStore,
    OutboxFact,
    alert_fact,
)
from shared import bus
from shared.clock import Clock
from shared.labels import SEVERITY_TITLES
from shared.law import Kind, categories, category_kind, safety_rep_may_know
from shared.schemas import Actor, AlertFactV1, DeadlineFactV1, IncidentEventV1
from shared.settings import Settings

log = logging.getLogger(__name__)
REPORTS_DURABLE = "notify-incident-reported"
DEADLINE_MET_DURABLE = "notify-deadline-met"
FACTS_DURABLE = "notify-facts-recorded"
CLOSED_DURABLE = "notify-incident-closed"
# Ids derive from what they are about, so a redelivered report finds its own alerts.
ALERT_NAMESPACE = uuid.UUID("5b0f7a52-3c1e-4c2a-9a57-0b6f1f1f6c11")

# The role as it reads inside a sentence of the e-mail ("... som nærmeste leder").
ROLE_TITLES = {
    "nearest_leader": "nærmeste leder",
    "deputy": "stedfortreder for leder",
    "leader": "leder på nivået over",
    "safety_rep": "verneombud",
    "main_safety_rep": "hovedverneombud",
    "hr": "HR",
}
WEEKDAYS = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")
MONTHS = (
    "januar", "februar", "mars", "april", "mai", "juni", "juli", "august", "september",
    "oktober", "november", "desember",
)  # fmt: skip


def alert_id(incident_id: str, role: str, person_id: str) -> str:
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{incident_id}:{role}:{person_id}"))


def reminder_id(incident_id: str, deadline_id: str) -> str:
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{incident_id}:reminder:{deadline_id}"))


def attempt_ref(alert: Alert) -> str:
    """The delivery attempt about to be made: the alert and its attempt number. Delivery is at
    least once (a crash between sending and recording sends again), and a resend carries the
    reference of the attempt it repeats, as Message-ID, SMS reference and Idempotency-Key."""
    return f"{alert.id}.{alert.attempts + 1}"


def contacts_of(person: Person, available: frozenset[str]) -> list[Contact]:
    """The person's contact points in their order, on the channels this installation has.

    With none left (e.g. `kriselogg up` without SMTP) the alert goes to the `log` channel: it is
    recorded, shown in the portal and in /api/v1/alerts, and its facts reach the incident log.
    """
    address = {"email": person.email, "sms": person.mobile, "webhook": person.webhook}
    found = [Contact(c, address.get(c) or "") for c in person.contact_order() if c in available]
    return found or [Contact("log", "")]


def chain_entry(r: Responder, available: frozenset[str]) -> dict[str, Any]:
    return {
        "person_id": r.person.id,
        "name": r.person.name,
        "role": r.role,
        "unit_id": r.unit_id,
        "contacts": [[c.channel, c.address] for c in contacts_of(r.person, available)],
    }


def _local(moment: datetime | str, zone: ZoneInfo) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    try:
        return moment.astimezone(zone)
    except OverflowError:  # the very edge of the calendar (year 9999): say it as it came
        return moment


def local_time(moment: datetime | str, zone: ZoneInfo) -> str:
    """'onsdag 25. november 2026 kl. 19.00', as a Norwegian reader expects a time."""
    t = _local(moment, zone)
    return f"{WEEKDAYS[t.weekday()]} {t.day}. {MONTHS[t.month - 1]} {t.year} kl. {t:%H.%M}"


def short_time(moment: datetime | str, zone: ZoneInfo) -> str:
    """'onsdag 25. november kl. 19.00': the time in a subject or an SMS, where space is short
    and the year is this one (or, for a deadline, plain from the weekday)."""
    t = _local(moment, zone)
    return f"{WEEKDAYS[t.weekday()]} {t.day}. {MONTHS[t.month - 1]} kl. {t:%H.%M}"


# --- channels ----------------------------------------------------------------------------


class DeliveryError(Exception):
    """This attempt failed; the dispatcher retries or falls over to the next channel."""


class Channels:
    """E-mail over SMTP, a signed JSON webhook and an SMS gateway over HTTP."""

    def __init__(self, settings: Settings, secret: str, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.zone = ZoneInfo(settings.timezone)
        self.ack_key = link_key(secret, "ack")
        # The code in the alert SMS that a reply "OK <code>" acknowledges (domain.sms).
        self.sms_code_key = link_key(secret, sms.CODE_PURPOSE)
        self.webhook_key = (
            settings.webhook_secret.encode()
            if settings.webhook_secret
            else link_key(secret, "webhook")
        )
        self._http = httpx.AsyncClient(timeout=settings.delivery_timeout_seconds)
        self.available = frozenset(
            ["webhook"]
            + (["email"] if settings.smtp_host else [])
            + (["sms"] if settings.sms_url else [])
        )

    async def close(self) -> None:
        await self._http.aclose()

    def ack_link(self, alert: str) -> str:
        expires = int(self.clock.time()) + self.settings.ack_link_days * 86400
        sig = sign_ack(self.ack_key, alert, expires)
        return f"{self.settings.public_url}/api/v1/alerts/{alert}/ack?expires={expires}&sig={sig}"

    def incident_link(self, incident_id: str) -> str:
        """The incident's page in the portal (a login first, then straight back to it)."""
        return f"{self.settings.public_url}/hendelser/{incident_id}"

    def receipt_link(self, incident_id: str) -> str:
        """The reporter's live receipt in the portal (a login first, then straight back)."""
        return f"{self.incident_link(incident_id)}/kvittering"

    @staticmethod
    def category(summary: dict[str, Any]) -> str:
        """The category's title. An unknown category keeps its id as title: a raw id tells a
        reader nothing, so it reads as a plain "Hendelse" instead."""
        title = summary.get("category_title")
        return str(title) if title and title != summary.get("category") else "Hendelse"

    @staticmethod
    def unit(summary: dict[str, Any]) -> str | None:
        """The unit's name, or None where only its id is known (same reason as `category`)."""
        name = summary.get("unit_name")
        return str(name) if name and name != summary.get("unit_id") else None

    @classmethod
    def what(cls, summary: dict[str, Any]) -> str:
        """The incident in a message: its category and unit, never the reporter's own words
        (a title can name an illness or an injury) and never the facts."""
        unit = cls.unit(summary)
        return f"{cls.category(summary)}, {unit}" if unit else cls.category(summary)

    def compose(self, alert: Alert) -> tuple[str, str]:
        """Subject and plain text (the e-mail's text part, the webhook's `text`)."""
        message = self.message(alert)
        return message.subject, message.text()

    def message(self, alert: Alert) -> Message:
        """The message for one alert, reminder or receipt, in Norwegian, for a reader woken at
        night: what it is and their part, which kind of incident, where and when, and what to
        do. What happened is read in kriselogg after logging in. Every channel and
        docs/messages.md (scripts/messages_doc.py) render this one value."""
        if alert.kind == "reminder":
            return self._reminder_message(alert)
        s = alert.summary
        if alert.kind == receipts.RECEIPT_KIND:
            return receipts.message(
                alert.person_name,
                local_time(s["reported_at"], self.zone),
                alert.body.get("alerts", []),
                self.receipt_link(alert.incident_id),
                lambda at: local_time(at.replace("Z", "+00:00"), self.zone),
            )
        role = ROLE_TITLES.get(alert.role, "mottaker")
        minutes = max(1, round(self.settings.escalation_seconds / 60))
        about = f"{self.what(s)}, {short_time(s['occurred_at'], self.zone)}"
        # An escalated alert says why it reached this reader, who may not expect to be asked.
        before = alert.body.get("escalated_from")
        if before:
            subject = f"Varsel (ikke bekreftet): {about} – bekreft at du har sett det"
            lead = (
                f"Varselet om en hendelse er ikke bekreftet av "
                f"{ROLE_TITLES.get(before, 'den som ble varslet først')} innen {minutes} "
                f"minutter, så det går videre til deg som {role}."
            )
        else:
            subject = f"Varsel: {about} – bekreft at du har sett det"
            lead = f"Det er meldt en hendelse som du skal følge opp som {role}."
        unit = self.unit(s)
        place = str(s.get("place") or "ikke oppgitt")
        facts = [("Hva", self.category(s))]
        severity = SEVERITY_TITLES.get(str(s.get("severity") or ""))
        if severity:
            facts.append(("Alvorlighet", severity.lower()))
        facts += [
            ("Hvor", f"{place} ({unit})" if unit else place),
            ("Når", local_time(s["occurred_at"], self.zone)),
            ("Meldt av", f"{s['reported_by']}, {local_time(s['reported_at'], self.zone)}"),
        ]
        notes = ["Hva som skjedde, leser du i kriselogg etter innlogging."]
        # Who is told next without an answer (the main safety rep is the last of their track).
        following = {
            **dict.fromkeys(LEADER_ROLES, "neste leder"),
            "safety_rep": "hovedverneombudet",
        }
        if alert.role in following:
            notes.append(
                f"Bekrefter du ikke innen {minutes} minutter, varsles {following[alert.role]}."
            )
        notes.append("Er noen i fare nå, ring 112 (politi) eller 113 (ambulanse).")
        return Message(
            subject=subject,
            greeting=f"Hei {alert.person_name},",
            lead=lead,
            facts=tuple(facts),
            # The acknowledgement first: it is what stops the escalation.
            links=(
                Link("Bekreft at du har sett varselet", self.ack_link(alert.id)),
                Link("Åpne hendelsen i kriselogg", self.incident_link(alert.incident_id)),
            ),
            notes=tuple(notes),
        )

    def _due(self, body: dict[str, Any]) -> tuple[str, str]:
        """A duty's deadline, in full and short; an undated one by its label ("snarest mulig"):
        no date is invented for it."""
        if body.get("due_at"):
            return local_time(body["due_at"], self.zone), short_time(body["due_at"], self.zone)
        label = str(body.get("due_label") or "ingen fast frist")
        return label, label

    def _reminder_message(self, alert: Alert) -> Message:
        s, b = alert.summary, alert.body
        due, due_short = self._due(b)
        basis = b.get("legal_ref") or "virksomhetens rutine"
        role = ROLE_TITLES.get(alert.role, "ansvarlig")
        return Message(
            # The duty's title is already what to do ("Send ...", "Lag ..."); the incident last,
            # since a phone cuts a long subject off at the end.
            subject=f"Påminnelse: {b['title']} – frist {due_short} ({self.what(s)})",
            greeting=f"Hei {alert.person_name},",
            lead=(
                f"Dette er en påminnelse om en oppgave du har ansvaret for som {role} etter en "
                "hendelse."
            ),
            facts=(
                ("Oppgave", f"{b['title']} ({basis})"),
                ("Frist", due),
                ("Hendelse", self.what(s)),
                ("Skjedde", local_time(s["occurred_at"], self.zone)),
            ),
            links=(
                Link(
                    "Åpne hendelsen og marker oppgaven som utført",
                    self.incident_link(alert.incident_id),
                ),
            ),
            notes=(
                "Er oppgaven gjort allerede, marker den som utført i hendelsen, så står det "
                "i loggen.",
            ),
        )

    def sms_text(self, alert: Alert, subject: str) -> str:
        """One SMS a tired person understands: what kind of incident, where, when, their part,
        and the one link that acknowledges (what happened is read in kriselogg)."""
        s = alert.summary
        if alert.kind == "reminder":
            _, due = self._due(alert.body)
            return (
                f"kriselogg: Påminnelse: {alert.body['title']}, frist {due}. Gjelder "
                f"{self.what(s)}. Åpne og marker som utført: "
                f"{self.incident_link(alert.incident_id)}"
            )
        when = short_time(s["occurred_at"], self.zone)
        role = ROLE_TITLES.get(alert.role, "mottaker")
        before = alert.body.get("escalated_from")
        # Why an escalated alert reaches this reader, in the same words as its e-mail.
        why = f"Ikke bekreftet av {ROLE_TITLES.get(before, 'den første')}: " if before else ""
        text = (
            f"kriselogg: {why}{self.what(s)}, {when}. Du varsles som {role}. "
            f"Trykk for å bekrefte: {self.ack_link(alert.id)}"
        )
        if self.settings.sms_inbound_secret:
            # Only where replies are taken (POST /api/v1/sms/inbound); a code nobody reads
            # would tell the person something false.
            text += f" eller svar OK {sms.sms_code(self.sms_code_key, alert.id)}"
        return text

    async def send(self, alert: Alert, contact: Contact) -> None:
        # Composed once per attempt: the text and HTML parts carry the very same links.
        message = self.message(alert)
        subject, text = message.subject, message.text()
        try:
            if contact.channel == "email":
                await self._email(alert, contact.address, subject, text, message.html())
            elif contact.channel == "webhook":
                await self._webhook(alert, contact.address, subject, text)
            elif contact.channel == "sms":
                await self._sms(alert, contact.address, subject)
            elif contact.channel == "log":
                # No configured channel reaches the person: the alert stays recorded and
                # visible in /api/v1/alerts and the portal (the default of `kriselogg up`).
                log.info("alert %s recorded on the log channel", alert.id)
            else:
                raise DeliveryError(f"unknown channel {contact.channel}")
        except DeliveryError:
            raise
        except (OSError, TimeoutError, aiosmtplib.SMTPException, httpx.HTTPError) as exc:
            raise DeliveryError(f"{contact.channel}: {type(exc).__name__}: {exc}") from exc

    async def _email(self, alert: Alert, to: str, subject: str, text: str, html: str) -> None:
        if not self.settings.smtp_host:
            raise DeliveryError("email: no SMTP server configured (KRISELOGG_SMTP_HOST)")
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = to
        message["Subject"] = subject
        # The same id on a resend after a crash lets mail systems see it as one message.
        # One id per attempt: a resend after a crash (the attempt was made, not recorded) has
        # the same one, so mail systems and readers can tell it is the same message again.
        message["Message-ID"] = f"<{attempt_ref(alert)}@kriselogg>"
        message["X-Kriselogg-Alert"] = alert.id
        message.set_content(text)
        # Text first, HTML as the alternative a mail app prefers: a client that shows no HTML
        # (or a reader who turned it off) gets the same words and links.
        message.add_alternative(html, subtype="html")
        await aiosmtplib.send(
            message,
            hostname=self.settings.smtp_host,
            port=self.settings.smtp_port,
            username=self.settings.smtp_user,
            password=self.settings.smtp_password,
            start_tls=self.settings.smtp_starttls,
            timeout=self.settings.delivery_timeout_seconds,
        )

    def webhook_payload(self, alert: Alert, subject: str, text: str) -> dict[str, Any]:
        """The webhook's JSON: the message's subject and text for an on-call system to show,
        and its parts by name for one that builds its own (docs/messages.md has an example)."""
        return {
            "type": alert.kind,
            "alert_id": alert.id,
            "incident_id": alert.incident_id,
            "org_id": alert.org_id,
            "role": alert.role,
            "recipient": {"id": alert.person_id, "name": alert.person_name},
            "subject": subject,
            "text": text,
            "incident": {
                k: alert.summary.get(k)
                for k in (
                    "category",
                    "category_title",
                    "severity",
                    "place",
                    "unit_id",
                    "unit_name",
                    "occurred_at",
                    "reported_at",
                    "reported_by",
                )
            },
            "links": {
                "incident": self.incident_link(alert.incident_id),
                "acknowledge": self.ack_link(alert.id),
            },
        }

    async def _webhook(self, alert: Alert, url: str, subject: str, text: str) -> None:
        body = json.dumps(self.webhook_payload(alert, subject, text), ensure_ascii=False).encode()
        signature = hmac.new(self.webhook_key, body, hashlib.sha256).hexdigest()
        response = await self._http.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Kriselogg-Signature": f"sha256={signature}",
                "X-Kriselogg-Alert": alert.id,
                # Per attempt, the same on a resend after a crash: receivers can drop repeats.
                "Idempotency-Key": attempt_ref(alert),
            },
        )
        if response.status_code >= 300:
            raise DeliveryError(f"webhook: HTTP {response.status_code}")

    async def _sms(self, alert: Alert, to: str, subject: str) -> None:
        if not self.settings.sms_url:
            raise DeliveryError("sms: no gateway configured (KRISELOGG_SMS_URL)")
        text = self.sms_text(alert, subject)
        auth = (
            httpx.BasicAuth(self.settings.sms_user, self.settings.sms_password or "")
            if self.settings.sms_user
            else httpx.USE_CLIENT_DEFAULT
        )
        response = await self._http.post(
            self.settings.sms_url,
            json={"to": to, "text": text, "reference": attempt_ref(alert)},
            auth=auth,
        )
        if response.status_code >= 300:
            raise DeliveryError(f"sms: HTTP {response.status_code}")

    async def sms_reply(self, to: str, text: str, reference: str) -> None:
        """The answer to an SMS reply, out through the gateway that sends the alerts, in the
        same JSON. Raises DeliveryError; the reply itself has already done its work."""
        if not self.settings.sms_url:
            raise DeliveryError("sms: no gateway configured (KRISELOGG_SMS_URL)")
        try:
            response = await self._http.post(
                self.settings.sms_url,
                json={"to": to, "text": text, "reference": reference},
                auth=(
                    httpx.BasicAuth(self.settings.sms_user, self.settings.sms_password or "")
                    if self.settings.sms_user
                    else httpx.USE_CLIENT_DEFAULT
                ),
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"sms: {type(exc).__name__}") from exc
        if response.status_code >= 300:
            raise DeliveryError(f"sms: HTTP {response.status_code}")


# --- facts -------------------------------------------------------------------------------


class Dispatcher:
    """Delivers, escalates and reminds; the only writer of timers' consequences."""

    def __init__(
        self, store: NotifyStore, broker: NatsBroker, settings: Settings, channels: Channels
    ) -> None:
        self.store = store
        self.clock = store.clock
        self.broker = broker
        self.settings = settings
        self.names = settings.subjects
        self.channels = channels
        self.window = timedelta(seconds=settings.escalation_seconds)
        # A claimed delivery not finished in this time is taken again (the process died).
        self.hold = timedelta(seconds=settings.delivery_timeout_seconds * 3 + 5)
        self._wake = asyncio.Event()
        self.delivered = 0
        self._receipts: set[asyncio.Task[None]] = set()

    def _receipt_done(self, task: asyncio.Task[None]) -> None:
        self._receipts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("receipt delivery: %s", type(task.exception()).__name__)
        self.wake()  # its fact-free outcome is recorded; let the loop look again

    def subject(self, org_id: str, event: str, source: str = "alert") -> str:
        return self.names.subject(org_id, source, event)  # type: ignore[arg-type]

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        await asyncio.to_thread(self.store.release_claims)
        failures = 0
        while True:
            bus.raise_if_cancelled()
            try:
                await self.tick()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning("dispatcher: %s, retrying", type(exc).__name__)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                continue
            due = await asyncio.to_thread(self.store.next_due)
            wait = 5.0 if due is None else (due - self.clock.now()).total_seconds()
            if wait > 0:
                await bus.wait_for_wake(self._wake, min(wait, 5.0))

    async def tick(self) -> None:
        at = self.clock.now()
        await asyncio.to_thread(
            self.store.escalate_due, at, self.window, self._next_alert, self._escalation_facts
        )
        await asyncio.to_thread(self.store.remind_due, at, self._reminder)
        await asyncio.to_thread(self.store.release_receipts, at)
        due = await asyncio.to_thread(self.store.claim_due, at, self.hold)
        # Receipts go out beside the loop, not in its batch: an alert due a moment later must
        # never wait for a receipt's SMTP conversation (measured: p99 72 ms -> 190 ms when it
        # did). A receipt in flight is claimed ('sending'), so it is not taken twice; a crash
        # releases it on restart like any claim.
        for receipt in [a for a in due if a.kind == receipts.RECEIPT_KIND]:
            task = asyncio.create_task(self.attempt(receipt))
            self._receipts.add(task)
            task.add_done_callback(self._receipt_done)
        due = [a for a in due if a.kind != receipts.RECEIPT_KIND]
        if due:
            await asyncio.gather(*(self.attempt(a) for a in due))
            # A receipt whose alerts were just attempted is due now: the loop comes straight
            # back for it (next_due), after the alerts, never before them.
            await asyncio.to_thread(self.store.release_receipts, self.clock.now())
        await self.flush()

    def _next_alert(
        self, row: dict[str, Any], entry: dict[str, Any], escalate_at: datetime
    ) -> NewAlert:
        return NewAlert(
            id=alert_id(row["incident_id"], entry["role"], entry["person_id"]),
            org_id=row["org_id"],
            incident_id=row["incident_id"],
            role=entry["role"],
            person_id=entry["person_id"],
            person_name=entry["name"],
            contacts=[Contact(c, a) for c, a in entry["contacts"]],
            escalate_at=escalate_at,
            # The message says whose silence brought it here (a deputy may also be the first
            # alerted, when the nearest leader is away: the role alone cannot tell).
            body={"escalated_from": row["role"]},
        )

    def _escalation_facts(self, e: Escalation) -> list[OutboxFact]:
        others = "verneombud" if e.from_alert["role"] in SAFETY_ROLES else "ledere"
        reason = (
            f"Ingen bekreftelse innen {round(self.window.total_seconds() / 60)} minutter"
            if e.to_alert
            else f"Ingen bekreftelse, og ingen flere {others} å varsle"
        )
        return [
            alert_fact(
                "AlertEscalated",
                e.from_alert,
                self.subject(e.from_alert["org_id"], "AlertEscalated"),
                self.clock.now(),
                reason=reason,
            )
        ]

    def _reminder(self, row: dict[str, Any]) -> NewAlert:
        return NewAlert(
            id=reminder_id(row["incident_id"], row["deadline_id"]),
            org_id=row["org_id"],
            incident_id=row["incident_id"],
            kind="reminder",
            role=row["responsible_role"],
            person_id=row["person_id"],
            person_name=row["person_name"],
            contacts=[Contact(c, a) for c, a in json.loads(row["contacts"])],
            escalate_at=None,
            deadline_id=row["deadline_id"],
            body={
                "title": row["title"],
                "legal_ref": row["legal_ref"],
                "due_at": row["due_at"].replace("Z", "+00:00") if row["due_at"] else None,
                "due_label": row["due_label"],
            },
        )

    def _channel_for(self, alert: Alert) -> tuple[Contact, float]:
        """The contact for this attempt, and how long to wait before the next if it fails."""
        backoff = self.settings.delivery_backoff_seconds
        per_channel = len(backoff) + 1
        contacts = alert.contacts or (Contact("log", ""),)
        lap, within = divmod(alert.attempts, per_channel)
        contact = contacts[lap % len(contacts)]
        if within < len(backoff):
            return contact, backoff[within]
        # This channel is used up: fall over to the next one at once, but pause before
        # starting the whole round again.
        wraps = (lap + 1) % len(contacts) == 0
        return contact, (backoff[-1] if backoff else 0.0) if wraps else 0.0

    async def attempt(self, alert: Alert) -> None:
        if alert.kind == receipts.RECEIPT_KIND:
            # The receipt tells the alerts as they stand when it is sent.
            rows = await asyncio.to_thread(self.store.alerts, alert.org_id, alert.incident_id)
            alert = replace(alert, body={**alert.body, "alerts": receipts.entries(rows)})
        contact, wait = self._channel_for(alert)
        started = self.clock.now()
        error: str | None = None
        try:
            await asyncio.wait_for(
                self.channels.send(alert, contact), self.settings.delivery_timeout_seconds * 2
            )
        except (DeliveryError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
        except Exception as exc:
            # A message that cannot even be built (bad data that got past validation, a bug)
            # fails this alert's attempt, recorded and shown; it must never stop the tick and
            # with it every other alert.
            error = f"message could not be built: {type(exc).__name__}"
        fact = None
        if error is None and alert.kind == "alert":
            fact = alert_fact(
                "RecipientAlerted",
                alert.__dict__,
                self.subject(alert.org_id, "RecipientAlerted"),
                self.clock.now(),
                channel=contact.channel,
            )
        retry = self.clock.now() + timedelta(seconds=wait) if error else None
        await asyncio.to_thread(
            self.store.attempt_done, alert, contact.channel, started, error, retry, fact
        )
        if error is None:
            self.delivered += 1
            log.info("alert %s delivered on %s", alert.id, contact.channel)
        else:
            # Ids and error kinds only: never names or addresses in the log.
            log.warning("alert %s: attempt %d failed", alert.id, alert.attempts + 1)

    async def flush(self) -> None:
        """Publish every recorded fact not yet acknowledged by the stream, oldest first."""
        while facts := await asyncio.to_thread(self.store.unpublished):
            for fact in facts:
                contract = DeadlineFactV1 if ".deadline." in fact.subject else AlertFactV1
                message = contract.model_validate_json(fact.body)
                await bus.publish(
                    self.broker,
                    fact.subject,
                    message,
                    msg_id=fact.fact_id,
                    org_id=fact.org_id,
                    stream=self.names.stream,
                )
                await asyncio.to_thread(self.store.mark_published, fact.fact_id)


# --- consuming reports -------------------------------------------------------------------


def _summary(event: IncidentEventV1, directory: Directory) -> dict[str, Any]:
    """What notify keeps of a report: what the alert texts say, and what later facts need.

    The texts use the category, the unit, the place and the times only: never the title or
    description a reporter typed, nor the facts, which can hold health details. The title and
    description are not even kept here: notify has no use for them.
    """
    data = event.data
    category = str(data.get("category", ""))
    known = categories().get(category)
    units = {u.id: u.name for u in directory.units}
    return {
        "category": category,
        "category_title": known.title if known else category,
        "kind": category_kind(category),
        "severity": data.get("severity", ""),
        "place": data.get("place"),
        "unit_id": data.get("unit_id"),
        "unit_name": units.get(str(data.get("unit_id")), data.get("unit_id")),
        "affected": [str(p) for p in data.get("affected", [])],
        "facts": dict(data.get("facts") or {}),
        "occurred_at": datetime.fromisoformat(event.occurred_at or event.recorded_at).isoformat(),
        "reported_at": datetime.fromisoformat(event.recorded_at).isoformat(),
        "reported_by": event.actor.name,
        # For the reporter's receipt (who may read it, and whom to e-mail it to); summaries
        # kept before it lack it, and their receipts are for overseers only.
        "reporter_id": event.actor.id,
    }


def plan_duties(
    org_id: str,
    incident_id: str,
    summary: dict[str, Any],
    learnt_at: datetime,
    directory: Directory,
    settings: Settings,
    dispatcher: Dispatcher,
) -> dict[str, Any]:
    """Who is told and what is due, from the incident's summary and its facts so far.

    Used for the report and again for each later facts entry; the store keeps only what is new
    (alert and deadline ids derive from what they are about), so a duty starts once, when the
    employer learnt the fact that starts it.
    """
    resolver = Resolver(directory)
    facts: dict[str, Any] = summary["facts"]
    kind: Kind = summary["kind"]
    # Absence is judged on the day of the report (in the organisation's zone), not on the
    # day this message happens to be processed.
    report_day = datetime.fromisoformat(summary["reported_at"]).astimezone(
        ZoneInfo(settings.timezone)
    )
    resolution = resolver.resolve(
        str(summary.get("unit_id") or ""), report_day.date(), summary["affected"]
    )
    available = dispatcher.channels.available
    at = dispatcher.clock.now()
    # Two escalation tracks, each escalated until someone in it acknowledges: the leaders
    # (nearest leader -> deputies -> the leader above), and the safety reps (the unit's -> the
    # main safety rep), who are told at once, like the leader, of work-environment events
    # (aml § 6-2), and of a personal one only with the affected person's consent.
    leaders = resolution.leaders
    safety: list[Responder] = []
    if safety_rep_may_know(facts, kind):
        for r in (resolution.safety_rep, resolution.main_safety_rep):
            if r is not None and all(r.person.id != o.person.id for o in (*safety, *leaders[:1])):
                safety.append(r)
    first: list[tuple[Responder, datetime | None]] = [
        (track[0], at + dispatcher.window) for track in (leaders, safety) if track
    ]
    # HR where the organisation asks for it (e.g. of personal crises), never escalated.
    hr = resolution.hr[0] if resolution.hr else None
    if (
        hr is not None
        and kind in directory.org.alert_hr_for
        and all(r.person.id != hr.person.id for r, _ in first)
    ):
        first.append((hr, None))
    alerts = [
        NewAlert(
            id=alert_id(incident_id, r.role, r.person.id),
            org_id=org_id,
            incident_id=incident_id,
            role=r.role,
            person_id=r.person.id,
            person_name=r.person.name,
            contacts=contacts_of(r.person, available),
            escalate_at=esc,
        )
        for r, esc in first
    ]
    responsible: dict[str, Responder | None] = {
        "nearest_leader": resolution.leaders[0] if resolution.leaders else None,
        "safety_rep": resolution.safety_rep,
        "main_safety_rep": resolution.main_safety_rep,
        "hr": resolution.hr[0] if resolution.hr else None,
    }
    # Alerts first: the duties are computed apart, so that a duty that cannot be computed
    # (bad data, a bug) is dead-lettered with its reason while the alerts still go out.
    deadlines: list[tuple[NewDeadline, OutboxFact]] = []
    duties_error: str | None = None
    try:
        for duty in duties(
            occurred_at=datetime.fromisoformat(summary["occurred_at"]),
            learnt_at=learnt_at,
            facts=facts,
            kind=kind,
            routine=directory.routine,
            timezone=settings.timezone,
            amu_meetings=directory.org.amu_meetings,
            responsible=directory.org.duty_responsible,
        ):
            who = responsible.get(duty.responsible) or responsible["nearest_leader"]
            remind = duty.remind_at or (reminder_at(at, duty.due_at) if duty.due_at else None)
            deadline = NewDeadline(
                deadline_id=duty.id,
                kind=duty.kind,
                title=duty.title,
                legal_ref=duty.legal_ref,
                due_at=duty.due_at,
                due_label=duty.due_label,
                responsible_role=duty.responsible,
                person_id=who.person.id if who else None,
                person_name=who.person.name if who else None,
                contacts=contacts_of(who.person, available) if who else [],
                remind_at=remind,
            )
            fact = DeadlineFactV1(
                fact_id=f"{incident_id}:deadline:{duty.id}",
                deadline_id=duty.id,
                incident_id=incident_id,
                org_id=org_id,
                at=at,
                kind=duty.kind,
                title=duty.title,
                legal_ref=duty.legal_ref,
                due_at=duty.due_at,
                due_label=duty.due_label,
                responsible=Actor(
                    id=who.person.id if who else "", name=who.person.name if who else "ingen"
                ),
                responsible_role=duty.responsible,
            )
            deadlines.append(
                (
                    deadline,
                    OutboxFact(
                        fact.fact_id,
                        org_id,
                        dispatcher.subject(org_id, "DeadlineSet", "deadline"),
                        fact.model_dump_json(),
                    ),
                )
            )
    except Exception as exc:  # whatever it is, it must not stop the alerts
        deadlines = []
        duties_error = f"duties could not be computed: {type(exc).__name__}: {exc}"
    return {
        "tracks": {
            "leader": [chain_entry(r, available) for r in leaders],
            "safety": [chain_entry(r, available) for r in safety],
        },
        "alerts": alerts,
        "deadlines": deadlines,
        "duties_error": duties_error,
    }


def facts_so_far(summary: dict[str, Any]) -> dict[str, Any]:
    """The report's facts with every later entry over them, in the log's order, whatever order
    the entries reached notify in (a redelivery can overtake)."""
    facts = dict(summary["facts"])
    for _, entry in sorted(summary.get("facts_entries", {}).items(), key=lambda e: int(e[0])):
        facts.update(entry)
    return facts


def plan_report(
    event: IncidentEventV1,
    directory: Directory,
    settings: Settings,
    dispatcher: Dispatcher,
) -> dict[str, Any]:
    """Everything one report sets in motion, as rows and facts (pure apart from the clock)."""
    summary = _summary(event, directory)
    plan = plan_duties(
        event.org_id,
        event.incident_id,
        summary,
        datetime.fromisoformat(event.recorded_at),
        directory,
        settings,
        dispatcher,
    )
    return {
        "org_id": event.org_id,
        "incident_id": event.incident_id,
        "summary": summary,
        **plan,
        "receipt": plan_receipt(event, plan["alerts"], directory, dispatcher.channels.available),
    }


def plan_receipt(
    event: IncidentEventV1,
    alerts: list[NewAlert],
    directory: Directory,
    available: frozenset[str],
) -> NewAlert | None:
    """The reporter's receipt e-mail, where the directory knows their address and e-mail is
    set up, unless they were alerted themselves (their alert already tells them). E-mail only:
    a receipt is not worth an SMS in the night, nor a webhook to an on-call system."""
    reporter = next((p for p in directory.people if p.id == event.actor.id), None)
    if reporter is None or not reporter.email or "email" not in available:
        return None
    if any(a.person_id == reporter.id for a in alerts):
        return None
    return NewAlert(
        id=receipts.receipt_id(event.incident_id, reporter.id),
        org_id=event.org_id,
        incident_id=event.incident_id,
        kind=receipts.RECEIPT_KIND,
        role="reporter",
        person_id=reporter.id,
        person_name=reporter.name,
        contacts=[Contact("email", reporter.email)],
        escalate_at=None,
    )


Handler = Callable[[bytes, dict[str, str]], Awaitable[None]]


def register(
    broker: NatsBroker, store: NotifyStore, dispatcher: Dispatcher, settings: Settings
) -> None:
    async def on_reported(body: bytes, _: dict[str, str]) -> None:
        event = IncidentEventV1.model_validate_json(body)
        if event.type != "IncidentReported":
            raise bus.PermanentError(f"expected IncidentReported, got {event.type}")
        directory = await asyncio.to_thread(store.directory, event.org_id)
        if directory is None:
            raise bus.PermanentError(f"organisation {event.org_id} has no directory")
        plan = plan_report(event, directory, settings, dispatcher)
        if not plan["alerts"]:
            raise bus.PermanentError(
                f"nobody to alert for unit {event.data.get('unit_id')} in {event.org_id}"
            )
        # Recorded before the ack: if we die now, the redelivered report finds it planned, and
        # the dispatcher delivers what was planned: one alert per recipient, each delivered at
        # least once (a crash between sending and recording resends it with the same
        # Message-ID / SMS reference, see attempt_ref).
        await asyncio.to_thread(store.plan_report, **plan)
        dispatcher.wake()
        if duties_error := plan["duties_error"]:
            # The alerts are recorded and go out; the report is kept with the reason.
            raise bus.PermanentError(duties_error)

    async def on_facts(body: bytes, _: dict[str, str]) -> None:
        event = IncidentEventV1.model_validate_json(body)
        summary = await asyncio.to_thread(store.summary, event.org_id, event.incident_id)
        if summary is None:
            # The report comes first on the stream; until notify has planned it, try again.
            raise bus.TransientError(f"facts for unplanned incident {event.incident_id}")
        if "reported_at" not in summary:
            return  # closed before notify saw its report: nobody is to be told anything
        directory = await asyncio.to_thread(store.directory, event.org_id)
        if directory is None:
            raise bus.PermanentError(f"organisation {event.org_id} has no directory")
        entries = {
            **summary.get("facts_entries", {}),
            str(event.seq): event.data.get("facts") or {},
        }
        summary = {**summary, "facts_entries": entries}
        plan = plan_duties(
            event.org_id,
            event.incident_id,
            {**summary, "facts": facts_so_far(summary)},
            datetime.fromisoformat(event.recorded_at),
            directory,
            settings,
            dispatcher,
        )
        await asyncio.to_thread(
            store.plan_facts,
            event.org_id,
            event.incident_id,
            summary,
            # Only the safety reps can be newly due (consent given later); the leaders' chain
            # was settled by the report and is escalated from there.
            [a for a in plan["alerts"] if a.role in SAFETY_ROLES],
            plan["deadlines"],
            event.seq,
            {"safety": plan["tracks"]["safety"]},
        )
        dispatcher.wake()
        if plan["duties_error"]:
            raise bus.PermanentError(plan["duties_error"])

    async def on_deadline_met(body: bytes, _: dict[str, str]) -> None:
        event = IncidentEventV1.model_validate_json(body)
        await asyncio.to_thread(
            store.deadline_met,
            event.org_id,
            event.incident_id,
            str(event.data.get("deadline_id")),
            datetime.fromisoformat(event.recorded_at),
        )

    async def on_closed(body: bytes, _: dict[str, str]) -> None:
        event = IncidentEventV1.model_validate_json(body)
        await asyncio.to_thread(store.incident_closed, event.org_id, event.incident_id)

    subjects = settings.subjects
    for durable, event_name, handler in (
        (REPORTS_DURABLE, "IncidentReported", on_reported),
        (FACTS_DURABLE, "FactsRecorded", on_facts),
        (DEADLINE_MET_DURABLE, "DeadlineMet", on_deadline_met),
        (CLOSED_DURABLE, "IncidentClosed", on_closed),
    ):
        _subscribe(broker, settings, durable, subjects.all_orgs("incident", event_name), handler)


def _subscribe(
    broker: NatsBroker, settings: Settings, durable: str, subject: str, handler: Handler
) -> None:
    @bus.durable_pull(
        broker,
        durable=durable,
        filter_subject=subject,
        settings=settings,
        # Each handler is idempotent and incidents are independent: no need to wait in line.
        max_ack_pending=100,
        ack_wait=10.0,
    )
    async def consume(msg: NatsMessage) -> None:
        await bus.process(msg, broker, settings, "notify", handler)
