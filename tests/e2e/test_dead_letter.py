"""Nothing silent: a report nobody can be alerted for is dead-lettered with its reason."""

from __future__ import annotations

import asyncio
import json

import nats

from tests.support import REPORT, Stack


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
