"""The reporter's receipt (issue 15, item 6): who was alerted, on which channel, whether anyone
acknowledged. One answer for the API, the portal's receipt page and the receipt e-mail.

A receipt says less than an alert. The reporter reads it (their mailbox may be read by others,
a shared phone may show it), so it names each alerted person by role and name, the channel(s)
tried, an honest delivery state and when they acknowledged: never contact addresses, deadlines,
facts, the title or the description, nor escalation internals (timers, the chain, errors).

The receipt e-mail is a row in notify's alerts table of kind "receipt", delivered by the
dispatcher like any message (retries, a stable id, survives a restart). It is planned with the
report but waits (no `next_attempt_at`) until every first-round alert has been attempted, so it
can say which channel reached whom; the dispatcher releases it then. Waiting on the alerts, not
the other way round, means it can never delay or block an alert. It is not an alert: it makes no
incident-log fact, never escalates, cannot be acknowledged, and the portal and API lists that
count alerts keep to kind "alert".
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from services.notify.domain import Delivery, delivery
from services.notify.domain.messages import Link, Message
from shared.labels import ROLE_TITLES

RECEIPT_KIND = "receipt"
_NAMESPACE = uuid.UUID("9d3c1c7e-2b7f-4f0e-8f0a-6a1d2c3b4e5f")

DELIVERY_TITLES: dict[str, str] = {
    "sent": "Sendt",
    "no_channel": "Ikke sendt – ingen kanal satt opp",
    "pending": "Sendes nå",
    # No technical reason: the reporter needs to know it has not arrived, not why.
    "failed": "Ikke kommet fram ennå – prøver igjen",
    "cancelled": "Ikke sendt – ikke lenger nødvendig",
}
# A channel inside a sentence ("sendt på e-post").
CHANNEL_WORDS: dict[str, str] = {"email": "e-post", "sms": "SMS", "webhook": "vaktsystem"}


def receipt_id(incident_id: str, person_id: str) -> str:
    """Derived from what it is about, so a redelivered report plans the same receipt once."""
    return str(uuid.uuid5(_NAMESPACE, f"{incident_id}:receipt:{person_id}"))


def entries(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each alert of kind "alert" (never a reminder or a receipt) as the receipt shows it, from
    rows as `NotifyStore.alerts` returns them."""
    shown: list[dict[str, Any]] = []
    for row in rows:
        if row.get("kind") != "alert":
            continue
        tried: list[str] = []
        for attempt in row.get("attempt_log") or []:
            if attempt["channel"] not in tried:
                tried.append(attempt["channel"])
        state = delivery(row)
        shown.append(
            {
                "role": row["role"],
                "name": row["person_name"],
                "channels": tried,
                "delivery": state,
                "delivery_text": DELIVERY_TITLES[state],
                "sent_at": row.get("sent_at") if state == "sent" else None,
                "acknowledged_at": row.get("acknowledged_at"),
            }
        )
    return shown


def nobody_reached(shown: Sequence[dict[str, Any]]) -> bool:
    """Every alert has been tried and none reached anyone, nor did anyone acknowledge: the
    reporter must phone."""
    return bool(shown) and not any(
        e["acknowledged_at"] or e["delivery"] in ("sent", "pending") for e in shown
    )


def summary_of(
    incident_id: str, reported_at: str | None, shown: list[dict[str, Any]], may_open: bool
) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "reported_at": reported_at,
        "alerts": shown,
        "acknowledged": any(e["acknowledged_at"] for e in shown),
        "nobody_reached": nobody_reached(shown),
        "may_open_incident": may_open,
    }


def message(
    name: str,
    reported_at: str,
    shown: Sequence[dict[str, Any]],
    link: str,
    when: Callable[[str], str],
) -> Message:
    """The receipt e-mail, in plain Norwegian. `reported_at` is already in words; `when` puts
    an instant in words. Nothing of what happened: no category, title, description or facts."""
    facts: list[tuple[str, str]] = []
    for e in shown:
        channel = " og ".join(CHANNEL_WORDS.get(c, c) for c in e["channels"] if c != "log")
        state = e["delivery"]
        if state == "sent":
            how = f"Sendt på {channel}" if channel else "Sendt"
        elif state == "failed":
            how = f"Ikke kommet fram ennå{' på ' + channel if channel else ''}, prøver igjen"
        else:
            how = DELIVERY_TITLES[state]
        if e["acknowledged_at"]:
            how += f", bekreftet {when(e['acknowledged_at'])}"
        facts.append((f"{ROLE_TITLES.get(e['role'], e['role'])} {e['name']}", how))
    notes: list[str] = []
    if any(e["acknowledged_at"] for e in shown):
        notes.append("Varselet er bekreftet: meldingen din er sett og blir fulgt opp.")
    else:
        notes.append("Ingen har bekreftet varselet ennå. Siden over viser det når noen gjør det.")
    if nobody_reached(shown):
        notes.append("Ingen er nådd på e-post eller SMS. Ring nærmeste leder nå.")
    else:
        notes.append("Får du ikke svar, ring nærmeste leder.")
    notes.append("Er noen i fare nå, ring 112 (politi) eller 113 (ambulanse).")
    return Message(
        subject="Kvittering: meldingen din er mottatt i kriselogg",
        greeting=f"Hei {name},",
        lead=(
            f"Meldingen din fra {reported_at} er mottatt. "
            + ("Disse er varslet:" if shown else "Varslene sendes nå.")
        ),
        facts=tuple(facts),
        links=(Link("Se hvem som er varslet, oppdatert fortløpende", link),),
        notes=tuple(notes),
    )


# --- the API's answer, described for the OpenAPI document ---------------------------------


class ReceiptAlert(BaseModel):
    role: str = Field(description="The role they were alerted as", examples=["nearest_leader"])
    name: str = Field(description="Their name", examples=["Lise Nord"])
    channels: list[str] = Field(
        description="The channels tried, in order: email, sms, webhook; log means no channel "
        "is set up and nobody was sent anything",
        examples=[["email"]],
    )
    delivery: Delivery = Field(
        description="sent (a mail server or SMS gateway accepted it), no_channel (only "
        "recorded in kriselogg), pending, failed (not delivered yet, being retried) or "
        "cancelled (no longer needed)",
        examples=["sent"],
    )
    delivery_text: str = Field(description="The same in Norwegian", examples=["Sendt"])
    sent_at: str | None = Field(
        description="When it was accepted; null unless sent", examples=["2026-03-02T09:15:00Z"]
    )
    acknowledged_at: str | None = Field(
        description="When they acknowledged; null until then", examples=[None]
    )


class Receipt(BaseModel):
    """What the reporter may know of the alerts their report set off."""

    incident_id: str = Field(
        description="The incident", examples=["0b6f6a52-4a3e-4c9e-9f7e-2d1c1f0e8a11"]
    )
    reported_at: str | None = Field(
        description="When it was reported", examples=["2026-03-02T09:14:58+00:00"]
    )
    alerts: list[ReceiptAlert] = Field(description="Everyone alerted, first alerted first")
    acknowledged: bool = Field(description="Whether anyone has acknowledged", examples=[False])
    nobody_reached: bool = Field(
        description="Every alert was tried and none reached anyone: phone the leader",
        examples=[False],
    )
    may_open_incident: bool = Field(
        description="Whether the caller may open the incident itself", examples=[True]
    )
