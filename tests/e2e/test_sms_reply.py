"""Acknowledge an alert by SMS reply, over real HTTP and NATS: the alert SMS reaches a fake SMS
gateway, the code is read from its real text, the gateway's signed callback "OK <code>" from
the alerted number acknowledges the alert (in /api/v1/alerts and the incident's log), and the
answer goes out through the same gateway. A wrong code, another person's code, a number that was
not alerted and a retried callback change nothing; an unsigned callback is refused."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from services.cli import demo_directory
from services.notify.domain.sms import sign
from tests.support import HttpSink, Stack, running_stack

SECRET = "inbound-secret-for-the-test"
LEADER = "+47 900 00 001"  # as the directory writes it
SAFETY_REP = "+47 900 00 002"


async def inbound(
    stack: Stack, body: dict[str, Any], form: bool = False, secret: str = SECRET
) -> tuple[int, dict[str, Any]]:
    """POST the gateway's callback as a gateway would: raw bytes, signed."""
    raw = (urlencode(body) if form else json.dumps(body)).encode()
    response = await stack.client.post(
        "/api/v1/sms/inbound",
        content=raw,
        headers={
            "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
            "X-Kriselogg-Signature": sign(secret.encode(), raw),
        },
    )
    return response.status_code, response.json()


def sent(gateway: HttpSink) -> list[dict[str, Any]]:
    return [json.loads(body) for _, _, body in gateway.requests]


def code_in(text: str) -> str:
    found = re.search(r"svar OK ([0-9]{4})$", text)
    assert found, text
    return found.group(1)


async def test_a_reply_with_the_code_acknowledges_and_anything_else_changes_nothing(
    nats_url: str, tmp_path: Path
) -> None:
    gateway = HttpSink()
    directory = demo_directory()
    for person in directory["people"]:
        if person["id"] == "p-ln":
            person.update(channels=["sms"], mobile=LEADER)
        if person["id"] == "p-vo":
            person.update(channels=["sms"], mobile=SAFETY_REP)
    try:
        async with running_stack(
            nats_url,
            tmp_path,
            sms_url=f"{gateway.url}/send",
            sms_inbound_secret=SECRET,
            escalation_seconds=3600,
        ) as stack:
            put = await stack.client.put(
                "/api/v1/directory", json=directory, headers=stack.auth("admin")
            )
            assert put.status_code == 200, put.text
            incident_id = (await stack.report())["id"]
            await gateway.wait_for(2)
            await stack.settle(incident_id)  # both attempts recorded
            alert_sms = {m["to"]: m for m in sent(gateway)}
            leader_code = code_in(alert_sms[LEADER]["text"])
            rep_code = code_in(alert_sms[SAFETY_REP]["text"])
            assert "Trykk for å bekrefte: " in alert_sms[LEADER]["text"]

            # Unsigned or wrongly signed: refused, and no answer goes out.
            body = {"from": LEADER, "text": f"OK {leader_code}", "id": "mo-1"}
            unsigned = await stack.client.post("/api/v1/sms/inbound", json=body)
            assert unsigned.status_code == 401
            assert unsigned.headers["content-type"].startswith("application/problem+json")
            assert (await inbound(stack, body, secret="not-the-secret"))[0] == 401

            # A wrong code from the alerted number.
            wrong = next(c for c in ("0000", "0001", "0002") if c not in (leader_code, rep_code))
            status, answer = await inbound(
                stack, {"from": "004790000001", "text": f"OK {wrong}", "id": "mo-2"}
            )
            assert status == 200, answer
            assert (answer["outcome"], answer["alert_id"]) == ("wrong_code", None)
            await gateway.wait_for(3)
            reply = sent(gateway)[2]
            assert reply["to"] == "+4790000001" and reply["text"] == answer["reply"]
            assert "stemmer ikke" in reply["text"] and answer["reply_sent"] is True

            # The leader's code from the safety rep's phone is not the safety rep's alert.
            if leader_code != rep_code:
                status, answer = await inbound(
                    stack, {"from": SAFETY_REP, "text": f"ok {leader_code}", "id": "mo-3"}
                )
                assert answer["outcome"] == "wrong_code", answer
                await gateway.wait_for(4)

            # A number that was not alerted, with a real code.
            status, answer = await inbound(
                stack, {"from": "+47 400 00 000", "text": f"OK {leader_code}", "id": "mo-4"}
            )
            assert (status, answer["outcome"]) == (200, "unknown_number"), answer
            # The answer goes out before the gateway gets its HTTP answer: no waiting needed.
            count = len(gateway.requests)
            assert sent(gateway)[-1]["to"] == "+4740000000"
            assert "ikke fått noe varsel" in sent(gateway)[-1]["text"]

            listed = await alerts_of(stack, incident_id)
            assert all(a["acknowledged_at"] is None and a["ack_log"] == [] for a in listed)

            # The right code, Twilio's form fields, the number written as eight digits.
            twilio = {"From": "90000001", "Body": f"Ok, {leader_code}", "MessageSid": "SM5"}
            status, answer = await inbound(stack, twilio, form=True)
            assert (status, answer["outcome"]) == (200, "acknowledged"), answer
            await gateway.wait_for(count + 1)
            listed = await alerts_of(stack, incident_id)
            leader = next(a for a in listed if a["person_id"] == "p-ln")
            assert answer["alert_id"] == leader["id"] and leader["status"] == "acknowledged"
            at = datetime.fromisoformat(leader["acknowledged_at"])
            oslo = at.astimezone(ZoneInfo(stack.settings.timezone))
            assert answer["reply"].startswith(f"Takk, varselet er bekreftet kl. {oslo:%H.%M}")
            assert f"/hendelser/{incident_id}" in answer["reply"]
            assert sent(gateway)[-1] == {
                "to": "+4790000001",
                "text": answer["reply"],
                "reference": sent(gateway)[-1]["reference"],
            }
            await stack.alerts.wait_for_events(
                lambda seen: "AlertAcknowledged" in {e["type"] for e in seen[incident_id]}
            )

            # The gateway retries the same callback: the answer says so, nothing changes.
            status, again = await inbound(stack, twilio, form=True)
            assert (status, again["outcome"]) == (200, "already_acknowledged"), again
            assert again["reply"].startswith(f"Varselet var allerede bekreftet kl. {oslo:%H.%M}")
            await gateway.wait_for(count + 2)
            assert sent(gateway)[-1]["reference"] == sent(gateway)[-2]["reference"]
            after = await alerts_of(stack, incident_id)
            leader_after = next(a for a in after if a["person_id"] == "p-ln")
            assert leader_after["acknowledged_at"] == leader["acknowledged_at"]
            assert [(u["via"], u["outcome"]) for u in leader_after["ack_log"]] == [
                ("sms", "acknowledged"),
                ("sms", "already_acknowledged"),
            ]
            rep = next(a for a in after if a["person_id"] == "p-vo")
            assert rep["acknowledged_at"] is None and rep["ack_log"] == []
            events = (await stack.timeline(incident_id))["events"]
    finally:
        gateway.stop()

    acknowledged = [e for e in events if e["type"] == "AlertAcknowledged"]
    assert len(acknowledged) == 1
    assert acknowledged[0]["data"]["recipient"]["id"] == "p-ln"
    assert acknowledged[0]["data"]["via"] == "sms"


async def alerts_of(stack: Stack, incident_id: str) -> list[dict[str, Any]]:
    response = await stack.client.get(
        "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
    )
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


async def test_without_an_inbound_secret_replies_are_not_taken_and_no_code_is_promised(
    nats_url: str, tmp_path: Path
) -> None:
    gateway = HttpSink()
    directory = demo_directory()
    for person in directory["people"]:
        if person["id"] == "p-vo":
            person.update(channels=["sms"], mobile=SAFETY_REP)
    try:
        async with running_stack(nats_url, tmp_path, sms_url=f"{gateway.url}/send") as stack:
            put = await stack.client.put(
                "/api/v1/directory", json=directory, headers=stack.auth("admin")
            )
            assert put.status_code == 200, put.text
            await stack.report()
            await gateway.wait_for(1)
            status, problem = await inbound(stack, {"from": SAFETY_REP, "text": "OK 1234"})
    finally:
        gateway.stop()
    assert "svar OK" not in sent(gateway)[0]["text"]  # nobody would read the reply
    assert status == 404 and "KRISELOGG_SMS_INBOUND_SECRET" in problem["detail"]
