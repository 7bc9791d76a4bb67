"""Acknowledging by SMS reply, the pure parts: the code, one form for numbers, the gateways'
callback bodies, which alert a reply is for and the answers. The whole way is
tests/e2e/test_sms_reply.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from services.notify.domain import link_key
from services.notify.domain.sms import (
    CODE_PURPOSE,
    InboundSms,
    inbound_sms,
    match_reply,
    phone_number,
    reply_codes,
    reply_reference,
    reply_text,
    sign,
    signature_ok,
    sms_code,
)
from tests.notify.test_messages import alert as message_alert
from tests.notify.test_messages import channels

KEY = link_key("test-secret", CODE_PURPOSE)
OSLO = ZoneInfo("Europe/Oslo")


def test_the_code_is_four_digits_derived_from_the_alert_and_its_own_key() -> None:
    code = sms_code(KEY, "alert-1")
    assert len(code) == 4 and code.isdigit()
    assert sms_code(KEY, "alert-1") == code  # a resend after a crash carries the same code
    assert sms_code(link_key("another-installation", CODE_PURPOSE), "alert-1") != code
    # Spread over the range, leading zeros kept: 2000 alerts give many distinct codes.
    codes = {sms_code(KEY, f"alert-{n}") for n in range(2000)}
    assert len(codes) > 1700 and all(len(c) == 4 for c in codes)
    assert link_key("test-secret", CODE_PURPOSE) != link_key("test-secret", "ack")


@pytest.mark.parametrize(
    "written",
    ["+47 900 00 002", "+4790000002", "004790000002", "0047 900 00 002", "90000002",
     "900 00 002", "4790000002", "47 90 00 00 02", "+47 (900) 00-002",
     "+47\u00a0900\u00a000\u00a0002"],
)  # fmt: skip
def test_a_norwegian_number_written_any_way_is_one_number(written: str) -> None:
    assert phone_number(written) == "+4790000002"


def test_other_countries_keep_their_code_and_what_is_no_number_is_none() -> None:
    assert phone_number("+46 70 686 10 04") == "+46706861004"
    assert phone_number("46706861004") == "+46706861004"  # an MSISDN as a gateway sends it
    for bad in ("", "OK", "12345", "+47abc", "0123456789", "+0047900", "9000000"):
        assert phone_number(bad) is None, bad


@pytest.mark.parametrize(
    ("text", "codes"),
    [("OK 4821", ["4821"]), ("ok4821", ["4821"]), ("Ok, 4821.", ["4821"]), ("4821", ["4821"]),
     ("OK 4821 er på vei", ["4821"]), ("OK", []), ("OK 48211", []), ("ok 482", []),
     ("kl 2130 OK 0042", ["2130", "0042"])],
)  # fmt: skip
def test_the_code_is_found_in_a_reply_as_people_type_it(text: str, codes: list[str]) -> None:
    assert reply_codes(text) == codes


def test_the_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"from": "+4790000002", "text": "OK 1234"}'
    header = sign(b"s3cret", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert signature_ok(b"s3cret", body, header)
    assert signature_ok(b"s3cret", body, header.upper().replace("SHA256=", "sha256="))
    assert not signature_ok(b"s3cret", body + b" ", header)
    assert not signature_ok(b"other", body, header)
    assert not signature_ok(b"s3cret", body, None)
    assert not signature_ok(b"s3cret", body, header[len("sha256=") :])  # no scheme


def test_callbacks_are_read_in_our_format_and_the_documented_gateway_formats() -> None:
    ours = json.dumps({"from": "+47 900 00 002", "text": "OK 1234", "id": "m-1"}).encode()
    assert inbound_sms(ours, "application/json") == InboundSms("+47 900 00 002", "OK 1234", "m-1")
    twilio = urlencode({"From": "+4790000002", "Body": "OK 1234", "MessageSid": "SM1"}).encode()
    assert inbound_sms(twilio, "application/x-www-form-urlencoded") == InboundSms(
        "+4790000002", "OK 1234", "SM1"
    )
    sveve = urlencode({"number": "4790000002", "msg": "OK 1234", "shortnumber": "2229"})
    assert inbound_sms(sveve.encode(), "application/x-www-form-urlencoded") == InboundSms(
        "4790000002", "OK 1234", None
    )
    elks = urlencode({"from": "+4790000002", "message": "OK 1234", "id": "s1"}).encode()
    assert inbound_sms(elks, "") == InboundSms("+4790000002", "OK 1234", "s1")
    numeric = json.dumps({"number": 4790000002, "msg": "ok 1234"}).encode()
    assert inbound_sms(numeric, "application/json") == InboundSms("4790000002", "ok 1234", None)
    for bad in (b"", b"[]", b"{", b'{"from": "+4790000002"}', b"\xff\xfe", b'{"text": 5}'):
        assert inbound_sms(bad, "application/json") is None, bad


def alert(alert_id: str, acknowledged_at: str | None = None) -> dict[str, object]:
    return {"id": alert_id, "org_id": "demo", "acknowledged_at": acknowledged_at}


def test_a_reply_acknowledges_the_open_alert_its_code_names_and_nothing_else() -> None:
    older, newer = alert("a-old"), alert("a-new")
    outcome, found = match_reply([newer, older], f"OK {sms_code(KEY, 'a-old')}", KEY)
    assert (outcome, found) == ("acknowledged", older)
    done = alert("a-done", "2026-03-02T09:17:00.000000Z")
    assert match_reply([done], f"ok {sms_code(KEY, 'a-done')}", KEY) == (
        "already_acknowledged",
        done,
    )
    wrong = next(f"{n:04d}" for n in range(10_000) if f"{n:04d}" != sms_code(KEY, "a-new"))
    assert match_reply([newer], f"OK {wrong}", KEY) == ("wrong_code", None)
    assert match_reply([newer], "OK", KEY) == ("wrong_code", None)
    assert match_reply([], f"OK {sms_code(KEY, 'a-new')}", KEY) == ("unknown_number", None)


def test_the_answers_are_short_plain_norwegian_in_oslo_time() -> None:
    now = datetime(2026, 3, 2, 9, 20, tzinfo=UTC)  # 10.20 in Oslo
    week = timedelta(days=7)
    acked = now - timedelta(minutes=3)
    text = reply_text("acknowledged", acked, now, OSLO, "https://k.example/hendelser/i-1", week)
    assert text == (
        "Takk, varselet er bekreftet kl. 10.17 og står i loggen. "
        "Åpne hendelsen: https://k.example/hendelser/i-1"
    )
    again = reply_text("already_acknowledged", acked - timedelta(days=1), now, OSLO, None, week)
    assert again == (
        "Varselet var allerede bekreftet 01.03. kl. 10.17. Svaret ditt endret ingenting."
    )
    wrong = reply_text("wrong_code", None, now, OSLO, None, week)
    assert "stemmer ikke" in wrong and "lenken" in wrong and "ring" in wrong
    unknown = reply_text("unknown_number", None, now, OSLO, None, week)
    assert "ikke fått noe varsel" in unknown and "7 dagene" in unknown
    assert "døgnet" in reply_text("unknown_number", None, now, OSLO, None, timedelta(days=1))
    assert all(len(t) <= 160 for t in (again, wrong, unknown))  # one SMS each


def test_a_retried_callback_gets_the_same_reference_for_its_answer() -> None:
    assert reply_reference("m-1", b"a") == reply_reference("m-1", b"b")
    assert reply_reference(None, b"a") == reply_reference(None, b"a") != reply_reference(None, b"b")
    assert len(reply_reference("x" * 500, b"")) <= 36


def test_the_alert_sms_carries_the_code_only_where_replies_are_taken(tmp_path: Path) -> None:
    taking = channels(tmp_path, sms_inbound_secret="inbound")
    text = taking.sms_text(message_alert(), "ignored")
    code = sms_code(link_key("a-secret-key", CODE_PURPOSE), "a-1")
    assert text.endswith(f" eller svar OK {code}")
    assert "Trykk for å bekrefte: https://krise.example/api/v1/alerts/a-1/ack?" in text
    assert taking.sms_code_key == link_key("a-secret-key", CODE_PURPOSE)
    assert "svar OK" not in channels(tmp_path).sms_text(message_alert(), "ignored")
    reminder = taking.sms_text(message_alert("reminder"), "Påminnelse")
    assert "svar OK" not in reminder  # a reminder has nothing to acknowledge
