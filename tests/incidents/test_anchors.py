"""Truncation and a consistent rewrite leave the chain intact; the anchors still reveal them."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from uuid import UUID

from services.incidents.domain import Incident
from services.incidents.settings import IncidentSettings
from services.incidents.store import IncidentLog
from tests.incidents.tampering import delete_from, replace_stream, rows
from tests.support import Stack

ACTOR = {"id": "p-ln", "name": "Lise Nord"}


async def logged_incident(stack: Stack, notes: int) -> tuple[str, int]:
    incident_id = (await stack.report())["id"]
    settled = await stack.settle(incident_id)
    for i in range(notes):
        response = await stack.client.post(
            f"/api/v1/incidents/{incident_id}/notes", json={"text": f"Notat {i}"},
            headers=stack.auth(),
        )  # fmt: skip
        assert response.status_code == 201
    head = settled + notes
    anchors = stack.apps["documents"].state.anchors
    assert await asyncio.to_thread(anchors.wait_for, "demo", incident_id, head, 20)
    return incident_id, head


async def verify(stack: Stack, incident_id: str) -> dict[str, object]:
    response = await stack.client.get(
        f"/api/v1/incidents/{incident_id}/verify", headers=stack.auth()
    )
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


async def test_untouched_log_matches_its_anchor(stack: Stack) -> None:
    incident_id, head = await logged_incident(stack, notes=2)
    result = await verify(stack, incident_id)
    assert result["valid"] is True
    assert result["anchor_checked"] is True
    assert result["anchored_seq"] == head


async def test_deleting_the_last_two_events_is_reported_as_truncation(stack: Stack) -> None:
    incident_id, head = await logged_incident(stack, notes=3)
    store: IncidentLog = stack.apps["incidents"].state.store
    delete_from(store, UUID(incident_id), head - 1)
    result = await verify(stack, incident_id)
    assert result["valid"] is False
    assert result["length"] == head - 2
    assert result["first_invalid_seq"] == head - 1
    assert "truncated" in str(result["reason"])


async def test_a_consistently_rewritten_chain_is_revealed_by_the_anchor(
    stack: Stack, tmp_path: Path
) -> None:
    incident_id, head = await logged_incident(stack, notes=2)
    store: IncidentLog = stack.apps["incidents"].state.store
    original = store.exported_events(UUID(incident_id))

    # The forger rebuilds the same incident with one note changed, with correct hashes all the
    # way, encrypted with the same key, and swaps it in: the chain alone cannot tell.
    forger = IncidentLog(
        IncidentSettings(data_dir=tmp_path / "forger", event_key=store.env["CIPHER_KEY"])
    )
    first = original[0]
    forged = Incident.report(
        org_id="demo", actor=first["actor"], data=first["data"],
        occurred_at=datetime.fromisoformat(first["occurred_at"]),
        now=datetime.fromisoformat(first["recorded_at"]), incident_id=UUID(incident_id),
    )  # fmt: skip
    for event in original[1:]:
        occurred = event["occurred_at"]
        data = dict(event["data"])
        if data.get("text") == "Notat 1":
            data["text"] = "Ingenting skjedde"
        forged.record(
            event["type"], actor=event["actor"], data=data,
            now=datetime.fromisoformat(event["recorded_at"]),
            occurred_at=datetime.fromisoformat(occurred) if occurred else None,
        )  # fmt: skip
    forger.save(forged)
    replace_stream(store, UUID(incident_id), rows(forger, UUID(incident_id)))
    forger.close()

    chain_only, _ = store.verify(UUID(incident_id))
    assert chain_only.valid, "the forged chain is internally consistent"
    result = await verify(stack, incident_id)
    assert result["valid"] is False
    assert result["first_invalid_seq"] == head
    assert "rewritten" in str(result["reason"])
