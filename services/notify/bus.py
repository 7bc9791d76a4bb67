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
)
from services.notify.store import (
    LEADER_ROLES,
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


def local_time(moment: datetime | str, zone: ZoneInfo) -> str:
    """'onsdag 25. november 2026 kl. 19.00', as a Norwegian reader expects a time."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    t = moment.astimezone(zone)
    return f"{WEEKDAYS[t.weekday()]} {t.day}. {MONTHS[t.month - 1]} {t.year} kl. {t:%H.%M}"


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

    @staticmethod
    def what(summary: dict[str, Any]) -> str:
        """The incident in a message: its category and unit, never the reporter's own words
        (a title can name an illness or an injury) and never the facts."""
        category = summary.get("category_title") or summary.get("category") or "Hendelse"
        unit = summary.get("unit_name")
        return f"{category}, {unit}" if unit else str(category)

    def compose(self, alert: Alert) -> tuple[str, str]:
        """Subject and text, in Norwegian: which kind of incident, where, when, who reported,
        links. What happened is read in kriselogg after logging in."""
        s = alert.summary
        lines = [f"Hei {alert.person_name},", ""]
        if alert.kind == "reminder":
            b = alert.body
            basis = b.get("legal_ref") or "virksomhetens rutine"
            due = local_time(b["due_at"], self.zone) if b.get("due_at") else b.get("due_label")
            subject = f"Påminnelse: {b['title']} – frist {due}"
            lines += [
                f"Dette er en påminnelse om en oppgave i hendelsen «{self.what(s)}».",
                "",
                f"Oppgave: {b['title']} ({basis})",
                f"Frist: {due}",
                "",
                "Åpne hendelsen og marker oppgaven som utført: "
                f"{self.incident_link(alert.incident_id)}",
            ]
            return subject, "\n".join(lines) + "\n"
        subject = f"Varsel fra kriselogg: {self.what(s)}"
        lines += [
            "Det er meldt en hendelse som du skal følge opp som "
            f"{ROLE_TITLES.get(alert.role, alert.role)}.",
            "",
            f"Hva: {s.get('category_title') or s.get('category')}",
            f"Alvorlighet: {SEVERITY_TITLES.get(s.get('severity', ''), '').lower()}",
            f"Hvor: {s.get('place') or 'ikke oppgitt'} ({s.get('unit_name') or ''})",
            f"Når: {local_time(s['occurred_at'], self.zone)}",
            f"Meldt av: {s['reported_by']}, {local_time(s['reported_at'], self.zone)}",
            "",
            "Hva som skjedde, leser du i kriselogg etter innlogging.",
            f"Åpne hendelsen: {self.incident_link(alert.incident_id)}",
            f"Bekreft at du har mottatt varselet: {self.ack_link(alert.id)}",
        ]
        if alert.role in LEADER_ROLES:
            minutes = max(1, round(self.settings.escalation_seconds / 60))
            lines += [
                "",
                f"Bekrefter du ikke innen {minutes} minutter, varsles neste leder.",
            ]
        return subject, "\n".join(lines) + "\n"

    def sms_text(self, alert: Alert, subject: str) -> str:
        """One SMS a tired person understands: what kind of incident, where, when, their part,
        and the one link that acknowledges (what happened is read in kriselogg)."""
        if alert.kind == "reminder":
            return f"{subject}. Åpne: {self.incident_link(alert.incident_id)}"
        s = alert.summary
        when = datetime.fromisoformat(s["occurred_at"]).astimezone(self.zone)
        role = ROLE_TITLES.get(alert.role, alert.role)
        return (
            f"kriselogg: {self.what(s)}, kl. {when:%H.%M} {when:%d.%m}. Du varsles som {role}. "
            f"Trykk for å bekrefte: {self.ack_link(alert.id)}"
        )

    async def send(self, alert: Alert, contact: Contact) -> None:
        subject, text = self.compose(alert)
        try:
            if contact.channel == "email":
                await self._email(alert, contact.address, subject, text)
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

    async def _email(self, alert: Alert, to: str, subject: str, text: str) -> None:
        if not self.settings.smtp_host:
            raise DeliveryError("email: no SMTP server configured (KRISELOGG_SMTP_HOST)")
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = to
        message["Subject"] = subject
        # The same id on a resend after a crash lets mail systems see it as one message.
        message["Message-ID"] = f"<{alert.id}.{alert.kind}@kriselogg>"
        message["X-Kriselogg-Alert"] = alert.id
        message.set_content(text)
        await aiosmtplib.send(
            message,
            hostname=self.settings.smtp_host,
            port=self.settings.smtp_port,
            username=self.settings.smtp_user,
            password=self.settings.smtp_password,
            start_tls=self.settings.smtp_starttls,
            timeout=self.settings.delivery_timeout_seconds,
        )

    async def _webhook(self, alert: Alert, url: str, subject: str, text: str) -> None:
        body = json.dumps(
            {
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
            },
            ensure_ascii=False,
        ).encode()
        signature = hmac.new(self.webhook_key, body, hashlib.sha256).hexdigest()
        response = await self._http.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Kriselogg-Signature": f"sha256={signature}",
                "X-Kriselogg-Alert": alert.id,
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
            json={"to": to, "text": text, "reference": alert.id},
            auth=auth,
        )
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
        due = await asyncio.to_thread(self.store.claim_due, at, self.hold)
        if due:
            await asyncio.gather(*(self.attempt(a) for a in due))
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
        )

    def _escalation_facts(self, e: Escalation) -> list[OutboxFact]:
        reason = (
            f"Ingen bekreftelse innen {round(self.window.total_seconds() / 60)} minutter"
            if e.to_alert
            else "Ingen bekreftelse, og ingen flere ledere å varsle"
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
        contact, wait = self._channel_for(alert)
        started = self.clock.now()
        error: str | None = None
        try:
            await asyncio.wait_for(
                self.channels.send(alert, contact), self.settings.delivery_timeout_seconds * 2
            )
        except (DeliveryError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
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
    first: list[tuple[Responder, datetime | None]] = []
    if resolution.leaders:
        first.append((resolution.leaders[0], at + dispatcher.window))
    # The safety rep is told at once, like the leader, of work-environment events (aml § 6-2),
    # and of a personal one only with the affected person's consent; never escalated.
    rep = resolution.safety_rep
    if (
        rep is not None
        and safety_rep_may_know(facts, kind)
        and all(r.person.id != rep.person.id for r, _ in first)
    ):
        first.append((rep, None))
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
    deadlines: list[tuple[NewDeadline, OutboxFact]] = []
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
    return {
        "chain": [chain_entry(r, available) for r in resolution.leaders],
        "alerts": alerts,
        "deadlines": deadlines,
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
        "first_in_chain": 1,
        **plan,
    }


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
        # the dispatcher delivers what was planned (exactly one e-mail per recipient).
        await asyncio.to_thread(store.plan_report, **plan)
        dispatcher.wake()

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
            # Only the safety rep can be newly due (consent given later); the leaders' chain
            # was settled by the report and is escalated from there.
            [a for a in plan["alerts"] if a.role == "safety_rep"],
            plan["deadlines"],
            event.seq,
        )
        dispatcher.wake()

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
