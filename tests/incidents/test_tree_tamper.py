"""Issue 17, items 6 and 7: the organisation's tree catches what the chain and anchor cannot.

The intruder has the database (and, for the anchors, the documents service's file too). Each
test tampers as they would, then asks over HTTP as an auditor or leader would.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from uuid import UUID

from services.incidents.store import IncidentLog, OrgLogs
from tests.incidents.tampering import _execute, _key, _table, forget
from tests.incidents.test_anchors import logged_incident, verify
from tests.support import Stack


def delete_row(store: IncidentLog, incident_id: UUID, seq: int) -> None:
    where = "WHERE originator_id = ? AND originator_version = ?"
    _execute(store, f"DELETE FROM {_table(store)} {where}", (_key(store, incident_id), seq))  # noqa: S608


def _auditor(stack: Stack) -> dict[str, str]:
    from shared.auth import issue_token, signing_key

    token = issue_token(signing_key(stack.settings), org_id="demo", person_id="p-revisor",
                        name="Revisor", roles=["auditor"], clock=stack.clock)  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


async def test_deleting_an_incidents_first_row_is_tampering_not_a_missing_incident(
    stack: Stack,
) -> None:
    incident_id, _ = await logged_incident(stack, notes=1)
    store: IncidentLog = stack.apps["incidents"].state.store
    logs: OrgLogs = stack.apps["incidents"].state.logs
    first_leaf = logs.leaves(incident_id)[0].leaf_index
    # No key needed: one DELETE of the report's row.
    delete_row(store, UUID(incident_id), 1)
    forget(store, UUID(incident_id))
    store._index.pop(incident_id, None)  # what a restart rebuilds without the deleted report
    auditor = _auditor(stack)

    shown = await stack.client.get(f"/api/v1/incidents/{incident_id}", headers=auditor)
    assert shown.status_code == 409, shown.text  # damaged, not "no such incident"
    listed = (await stack.client.get("/api/v1/incidents", headers=auditor)).json()
    entry = next(e for e in listed if e["id"] == incident_id)
    assert entry["status"] == "damaged" and entry["first_leaf_index"] == first_leaf
    result = (
        await stack.client.get(f"/api/v1/incidents/{incident_id}/verify", headers=auditor)
    ).json()
    assert result["valid"] is False
    assert result["first_invalid_seq"] == 1
    assert f"leaf {first_leaf} of the organisation's log" in result["reason"]


async def test_an_edited_event_is_named_by_seq_and_leaf(stack: Stack) -> None:
    incident_id, head = await logged_incident(stack, notes=2)
    logs: OrgLogs = stack.apps["incidents"].state.logs
    store: IncidentLog = stack.apps["incidents"].state.store
    from tests.incidents.tampering import flip_byte

    flip_byte(store, UUID(incident_id), head - 1)
    result = await verify(stack, incident_id)
    leaf = next(x.leaf_index for x in logs.leaves(incident_id) if x.seq == head - 1)
    assert result["valid"] is False and result["first_invalid_seq"] == head - 1
    assert f"leaf {leaf} of the organisation's log" in str(result["reason"])


async def test_a_chain_and_its_anchor_rewritten_together_are_caught_by_the_tree(
    stack: Stack, tmp_path: Path
) -> None:
    incident_id, head = await logged_incident(stack, notes=1)
    store: IncidentLog = stack.apps["incidents"].state.store
    # The intruder deletes the last event and moves the anchor back to match: chain and anchor
    # agree again. Only the organisation's tree, kept in another file, remembers the event.
    delete_row(store, UUID(incident_id), head)
    forget(store, UUID(incident_id))
    previous = store.exported_events(UUID(incident_id))[-1]
    anchors = stack.apps["documents"].state.anchors
    with sqlite3.connect(anchors.path) as db:
        db.execute("UPDATE anchors SET seq = ?, hash = ? WHERE incident_id = ?",
                   (head - 1, previous["hash"], incident_id))  # fmt: skip
    chain_only, _ = await asyncio.to_thread(store.verify, UUID(incident_id))
    assert chain_only.valid  # nothing in the store itself shows it
    result = await verify(stack, incident_id)
    assert result["valid"] is False
    assert result["first_invalid_seq"] == head
    assert "is missing" in str(result["reason"]) and "organisation's log" in str(result["reason"])
