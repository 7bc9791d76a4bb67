"""Nothing silent: a report nobody can be alerted for is dead-lettered with its reason."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import nats

from shared import bus
from shared.schemas import Actor, IncidentEventV1
from tests.support import REPORT, MailSink, Stack, running_stack


async def test_report_in_an_org_without_directory_is_dead_lettered(stack: Stack) -> None:
    names = stack.settings.subjects
    assert stack.settings.nats_url is not None
    nc = await nats.connect(stack.settings.nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            names.dead_letter("notify", "invalid"), stream=names.dead_letter_stream
        )
        other = {"Authorization": f"Bearer {stack.tokens['other_org']}"}
        created = await stack.client.post("/api/v1/incidents", json=REPORT, headers=other)
        assert created.status_code == 201  # accepted: the report itself is never refused
        msg = await asyncio.wait_for(sub.next_msg(timeout=20), 25)
        letter = json.loads(msg.data)
        assert letter["service"] == "notify"
        assert "organisation other has no directory" in letter["reason"]
        assert letter["original_msg_id"] == f"{created.json()['id']}:1"
        # The original message travels with the reason, so it can be replayed once fixed.
        assert json.loads(letter["body"])["incident_id"] == created.json()["id"]
    finally:
        await nc.close()


async def test_a_duty_that_cannot_be_computed_never_keeps_the_alert_back(
    nats_url: str, tmp_path: Path, mail: MailSink
) -> None:
    """A report from a producer that let year 9999 through (incidents now refuses it with 422):
    the duties cannot be computed, the leader is e-mailed anyway, and the report is
    dead-lettered with the reason."""
    async with running_stack(
        nats_url, tmp_path, smtp_host="127.0.0.1", smtp_port=mail.port
    ) as stack:
        names = stack.settings.subjects
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            sub = await js.subscribe(
                names.dead_letter("notify", "invalid"), stream=names.dead_letter_stream
            )
            incident_id = str(uuid.uuid4())
            event = IncidentEventV1(
                seq=1,
                type="IncidentReported",
                incident_id=incident_id,
                org_id="demo",
                recorded_at=stack.clock.now().isoformat(),
                occurred_at="9999-12-31T23:00:00+00:00",
                actor=Actor(id="p-ansatt", name="Ali Ansatt"),
                data={"category": "vold-fysisk", "title": "x", "unit_id": "u-nord",
                      "severity": "high", "affected": [], "facts": {}},
                prev_hash="0" * 64,
                hash="f" * 64,
            )  # fmt: skip
            await js.publish(
                names.subject("demo", "incident", "IncidentReported"),
                event.model_dump_json().encode(),
                headers=bus.headers_for(event, f"{incident_id}:1", "demo"),
                stream=names.stream,
            )
            await mail.wait_for(lambda m: "lise.nord@demo.example" in {x["To"] for x in m})
            letter = json.loads((await sub.next_msg(timeout=20)).data)
            assert "duties could not be computed" in letter["reason"]
            assert json.loads(letter["body"])["incident_id"] == incident_id
        finally:
            await nc.close()
