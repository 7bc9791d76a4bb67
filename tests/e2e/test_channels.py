"""Webhook and SMS channels over real HTTP, and fall-over from a dead e-mail server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

from services.cli import demo_directory
from shared.infra import free_port
from tests.support import HttpSink, running_stack

SECRET = "webhook-secret-for-the-test"


async def test_dead_email_falls_over_to_webhook_and_sms_reaches_the_safety_rep(
    nats_url: str, tmp_path: Path
) -> None:
    hooks, sms = HttpSink(), HttpSink()
    directory = demo_directory()
    for person in directory["people"]:
        if person["id"] == "p-ln":  # e-mail first, then her webhook
            person.update(channels=["email", "webhook"], webhook=f"{hooks.url}/varsel")
        if person["id"] == "p-vo":  # SMS only
            person.update(channels=["sms"], mobile="+4790000002")
    try:
        async with running_stack(
            nats_url,
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=free_port(),  # nothing listens: every e-mail attempt fails
            delivery_backoff_seconds=[0.1],
            sms_url=f"{sms.url}/send",
            sms_user="kriselogg",
            sms_password="hemmelig",
            webhook_secret=SECRET,
            escalation_seconds=600,
        ) as stack:
            put = await stack.client.put(
                "/api/v1/directory", json=directory, headers=stack.auth("admin")
            )
            assert put.status_code == 200, put.text
            incident_id = (await stack.report())["id"]
            await hooks.wait_for(1)
            await sms.wait_for(1)
            await stack.settle(incident_id)
            events = (await stack.timeline(incident_id))["events"]
            listed = (
                await stack.client.get(
                    "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
                )
            ).json()
    finally:
        hooks.stop()
        sms.stop()

    path, headers, body = hooks.requests[0]
    assert path == "/varsel"
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Kriselogg-Signature"] == f"sha256={expected}"
    payload = json.loads(body)
    assert payload["incident_id"] == incident_id and payload["role"] == "nearest_leader"
    assert payload["recipient"] == {"id": "p-ln", "name": "Lise Nord"}
    assert "/ack?" in payload["links"]["acknowledge"]

    path, headers, body = sms.requests[0]
    assert path == "/send"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"kriselogg:hemmelig").decode()
    message = json.loads(body)
    assert message["to"] == "+4790000002"
    assert "Du varsles som verneombud. Trykk for å bekrefte:" in message["text"]
    assert "/ack?" in message["text"]

    channels = {
        e["data"]["recipient"]["id"]: e["data"]["channel"]
        for e in events
        if e["type"] == "RecipientAlerted"
    }
    assert channels == {"p-ln": "webhook", "p-vo": "sms"}
    leader = next(a for a in listed if a["person_id"] == "p-ln")
    outcomes = [(a["channel"], a["outcome"]) for a in leader["attempt_log"]]
    assert outcomes == [("email", "failed"), ("email", "failed"), ("webhook", "delivered")]
