"""Acknowledging an alert by SMS reply: the code in the alert SMS, one form for phone numbers,
the gateways' callback bodies, which alert a reply is for, and the Norwegian answers. Pure: no I/O,
time passed in (the endpoint is in api.py, the outbound reply in bus.Channels.sms_reply).

The code is derived from the alert id with a key of its own (`link_key(secret, "sms-code")`), so
nothing new is stored, a resend after a crash carries the same code, and one alert's code tells
nothing about another's. Four digits are guessable one time in 10 000; a guess also has to come
from the alerted number, and only counts among the few alerts that number has open.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

CODE_PURPOSE = "sms-code"
SIGNATURE_HEADER = "X-Kriselogg-Signature"

Outcome = Literal["acknowledged", "already_acknowledged", "wrong_code", "unknown_number"]

# (sender, text, message id) of each callback format accepted, as each gateway documents it.
# Only fields read in the gateway's own documentation are here (docs/sms.md cites where); a
# gateway with another format is mapped by the relay that signs the callback.
CALLBACK_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("from", "text", "id"),  # kriselogg's own JSON
    ("From", "Body", "MessageSid"),  # Twilio, form-encoded
    ("number", "msg", "id"),  # Sveve: "Push av mottatte meldinger"
    ("from", "message", "id"),  # 46elks, form-encoded
)


def sms_code(key: bytes, alert_id: str) -> str:
    """The alert's four-digit code; `key` is `link_key(secret, CODE_PURPOSE)`."""
    digest = hmac.new(key, alert_id.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10_000:04d}"


def reply_codes(text: str) -> list[str]:
    """Every standalone group of four digits in a reply, in order.

    A tired person writes "OK 4821", "ok4821", "Ok, 4821 er på vei" or just "4821"; any of them
    counts, and a number that happens to be in the text (a time, "kl 2130") simply does not match.
    """
    return re.findall(r"(?<![0-9])([0-9]{4})(?![0-9])", text)


def phone_number(raw: str) -> str | None:
    """One form (E.164, "+4790000002") for a number written any way, or None if it is none.

    "+47 900 00 002", "004790000002", "90000002" and "4790000002" (an MSISDN as gateways send
    it) are one number. Eight digits without a country code are Norwegian, as the directory and
    Norwegian gateways write them; 9 to 15 digits without "+" are an MSISDN that already starts
    with its country code. A small rule set, not a numbering plan: the `phonenumbers` library
    is not a dependency, and the numbers compared are only the directory's and the gateway's.
    """
    s = re.sub(r"[\s().\-/]", "", raw)
    if s.startswith("00"):
        s = "+" + s[2:]
    if s.startswith("+"):
        digits = s[1:]
        return s if re.fullmatch(r"[1-9][0-9]{7,14}", digits) else None
    if not re.fullmatch(r"[0-9]+", s):
        return None
    if len(s) == 8:
        return "+47" + s
    if 9 <= len(s) <= 15 and s[0] != "0":
        return "+" + s
    return None


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """`X-Kriselogg-Signature: sha256=<hex>`, HMAC-SHA256 of the raw body; constant-time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256=") :].strip().lower())


def sign(secret: bytes, body: bytes) -> str:
    """The header value for `body` (for relays written in Python, and the tests)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class InboundSms:
    sender: str
    text: str
    message_id: str | None


def inbound_sms(body: bytes, content_type: str) -> InboundSms | None:
    """The sender, text and gateway id of a callback, JSON or form-encoded; None if the body
    is in none of the formats of CALLBACK_FIELDS."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    data: Any
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
    else:
        data = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    if not isinstance(data, dict):
        return None
    for sender_key, text_key, id_key in CALLBACK_FIELDS:
        sender, message = data.get(sender_key), data.get(text_key)
        # Some gateways send the number as a JSON number.
        if isinstance(sender, (str, int)) and isinstance(message, str):
            found = data.get(id_key)
            return InboundSms(
                str(sender), message, str(found) if isinstance(found, (str, int)) else None
            )
    return None


def match_reply(
    alerts: Sequence[Mapping[str, Any]], text: str, key: bytes
) -> tuple[Outcome, Mapping[str, Any] | None]:
    """Which of the number's alerts (newest first) a reply is for, and what it does.

    An open alert whose code is in the text is acknowledged; a matching alert acknowledged
    already is answered as such (gateways retry callbacks, people tap "send" twice); otherwise
    the code is wrong, or the number was not alerted at all.
    """
    if not alerts:
        return "unknown_number", None
    codes = set(reply_codes(text))
    matching = [a for a in alerts if sms_code(key, str(a["id"])) in codes]
    for alert in matching:
        if not alert["acknowledged_at"]:
            return "acknowledged", alert
    if matching:
        return "already_acknowledged", matching[0]
    return "wrong_code", None


def _when(moment: datetime, now: datetime, zone: ZoneInfo) -> str:
    t, today = moment.astimezone(zone), now.astimezone(zone)
    return f"kl. {t:%H.%M}" if t.date() == today.date() else f"{t:%d.%m.} kl. {t:%H.%M}"


def reply_text(
    outcome: Outcome,
    acknowledged_at: datetime | None,
    now: datetime,
    zone: ZoneInfo,
    incident_link: str | None,
    window: timedelta,
) -> str:
    """The answer SMS, short and in plain Norwegian; never the incident's details."""
    if outcome == "acknowledged" and acknowledged_at is not None:
        text = f"Takk, varselet er bekreftet {_when(acknowledged_at, now, zone)} og står i loggen."
        return f"{text} Åpne hendelsen: {incident_link}" if incident_link else text
    if outcome == "already_acknowledged" and acknowledged_at is not None:
        return (
            f"Varselet var allerede bekreftet {_when(acknowledged_at, now, zone)}. "
            "Svaret ditt endret ingenting."
        )
    if outcome == "wrong_code":
        return (
            "Koden stemmer ikke med noe åpent varsel til dette nummeret, og ingenting er "
            "bekreftet. Trykk på lenken i varselet, eller ring lederen din."
        )
    since = "det siste døgnet" if window.days <= 1 else f"de siste {window.days} dagene"
    return (
        f"Dette nummeret har ikke fått noe varsel fra kriselogg {since}, så ingenting er "
        "bekreftet. Ring lederen din om det haster."
    )


def reply_reference(message_id: str | None, body: bytes) -> str:
    """The same reference for a retried callback, so the gateway can see the resend; short
    enough for the gateways' reference fields (Sveve: 36 characters)."""
    seed = message_id.encode() if message_id else body
    return "svar-" + hashlib.sha256(seed).hexdigest()[:24]


@dataclass(frozen=True)
class SmsReplies:
    """What the inbound endpoint needs from the app. `secret` None: not configured."""

    secret: bytes | None
    code_key: bytes
    send: Callable[[str, str, str], Awaitable[None]]  # to, text, reference
    incident_link: Callable[[str], str]
    window: timedelta
    timezone: str
