"""A damaged store, seen through the API after a restart (issue 3: verify never crashes).

An event that no longer decrypts is reported by verify as the first invalid seq with the reason,
to those allowed to verify, even when it is the first event, which names the organisation. Reads
that need the damaged events answer 409 problem+json, never 500; the rest of the service works.
"""

from __future__ import annotations

import uuid
from uuid import UUID

from services.incidents.bus import Relay
from services.incidents.settings import IncidentSettings
from services.incidents.store import IncidentLog
from shared import bus
from shared.auth import issue_token, signing_key
from shared.schemas import HEADER_MSG_ID, DeadLetterV1
from tests.incidents.tampering import flip_byte, forget
from tests.incidents.test_anchors import logged_incident
from tests.incidents.test_store import new_incident
from tests.support import Stack


def auditor(stack: Stack) -> dict[str, str]:
    token = issue_token(
        signing_key(stack.settings), org_id="demo", person_id="p-rev", name="Rita Revisor",
        roles=["auditor"],
    )  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


async def test_a_damaged_event_is_named_by_verify_after_a_restart(stack: Stack) -> None:
    incident_id, head = await logged_incident(stack, notes=3)
    store: IncidentLog = stack.apps["incidents"].state.store
    flip_byte(store, UUID(incident_id), head - 1)
    forget(store, UUID(incident_id))
    base = f"/api/v1/incidents/{incident_id}"

    verified = await stack.client.get(f"{base}/verify", headers=stack.auth())
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["valid"] is False
    assert body["first_invalid_seq"] == head - 1
    assert "cannot be read" in body["reason"]

    for path in ("", "/timeline", "/export"):
        read = await stack.client.get(f"{base}{path}", headers=stack.auth())
        assert read.status_code == 409, (path, read.text)
        assert read.headers["content-type"].startswith("application/problem+json")
        assert read.json()["title"] == "Hendelsesloggen er skadet"
    listed = await stack.client.get("/api/v1/incidents", headers=stack.auth())
    assert listed.status_code == 200
    assert incident_id in [i["id"] for i in listed.json()]
    # Other incidents are untouched.
    other = (await stack.report())["id"]
    assert (await stack.client.get(f"/api/v1/incidents/{other}", headers=stack.auth())).is_success


async def test_a_damaged_first_event_is_verified_by_an_auditor_of_the_organisation(
    stack: Stack,
) -> None:
    incident_id, _ = await logged_incident(stack, notes=1)
    store: IncidentLog = stack.apps["incidents"].state.store
    flip_byte(store, UUID(incident_id), 1)
    forget(store, UUID(incident_id))
    url = f"/api/v1/incidents/{incident_id}/verify"

    # Which organisation owns it now comes from the anchor keeper, not from the store.
    mine = await stack.client.get(url, headers=auditor(stack))
    assert mine.status_code == 200, mine.text
    assert mine.json()["valid"] is False
    assert mine.json()["first_invalid_seq"] == 1
    assert "cannot be read" in mine.json()["reason"]
    # Without the unit, a unit's leader cannot be told apart from any other: refused.
    assert (await stack.client.get(url, headers=stack.auth())).status_code == 403
    # Another organisation learns nothing.
    assert (await stack.client.get(url, headers=stack.auth("other_org"))).status_code == 404


async def test_after_a_restart_the_list_and_the_relay_go_round_an_unreadable_event(
    settings: IncidentSettings, nats_url: str
) -> None:
    settings = settings.model_copy(
        update={"nats_url": nats_url, "bus_namespace": f"t-{uuid.uuid4().hex[:10]}"}
    )
    log = IncidentLog(settings)
    damaged, intact, unnamed = new_incident(log, notes=2), new_incident(log), new_incident(log)
    flip_byte(log, damaged, 2)
    flip_byte(log, unnamed, 1)
    log.close()
    log = IncidentLog(settings)  # the restarted service reads everything afresh
    broker = bus.make_broker(settings, "incidents")
    await broker.connect()
    try:
        listed = {e.id for e in log.list_incidents("demo", None)}
        assert listed == {str(damaged), str(intact)}  # the unreadable report is left out

        await bus.ensure_streams(broker, settings)
        await Relay(log, broker, settings.subjects).drain()
        js = broker.config.connection_state.stream
        names = settings.subjects

        async def stored(stream: str) -> list[tuple[dict[str, str], bytes]]:
            count = (await js.stream_info(stream)).state.messages
            messages = [await js.get_msg(stream, seq) for seq in range(1, count + 1)]
            return [(dict(m.headers or {}), m.data or b"") for m in messages]

        published = [h[HEADER_MSG_ID] for h, _ in await stored(names.stream)]
        # Everything readable reached the bus, in order; the relay did not stop at the damage.
        assert published == [f"{damaged}:1", f"{damaged}:3", f"{intact}:1"]
        dead = await stored(names.dead_letter_stream)
        letters = [DeadLetterV1.model_validate_json(body) for _, body in dead]
        assert sorted(letter.original_msg_id or "" for letter in letters) == sorted(
            [f"{damaged}:2", f"{unnamed}:1"]
        )
        assert all("cannot be read" in letter.reason for letter in letters)
        assert log.position("relay:jetstream") == 5  # it went past them and stored that
    finally:
        await broker.stop()
        log.close()
