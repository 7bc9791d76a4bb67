"""Issue 17, items 1-2: the organisation's log as a Merkle tree, with signed checkpoints.

Driven as a witness and a verifier would: over HTTP, with the stack's real NATS and SQLite
stores, checking every answer with shared.merkle and shared.note only (the public formats),
never with the service's own objects.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from services.incidents.store import OrgLogs
from shared.auth import issue_witness_token, signing_key
from shared.merkle import leaf_hash, verify_consistency, verify_inclusion
from shared.note import open_checkpoint, parse_verifier
from tests.support import Stack


async def _export(stack: Stack, incident_id: str) -> list[bytes]:
    response = await stack.client.get(
        f"/api/v1/incidents/{incident_id}/export", headers=stack.auth()
    )
    assert response.status_code == 200, response.text
    return response.content.splitlines()


async def _checkpoint(stack: Stack, headers: dict[str, str]) -> tuple[Any, str]:
    key = await stack.client.get("/api/v1/log/key", headers=headers)
    note = await stack.client.get("/api/v1/log/checkpoint", headers=headers)
    assert key.status_code == note.status_code == 200, (key.text, note.text)
    checkpoint, _ = open_checkpoint(note.text, [parse_verifier(key.text)])
    assert int(note.headers["X-Kriselogg-Tree-Size"]) == checkpoint.size
    return checkpoint, note.text


def _witness(stack: Stack, org: str = "demo") -> dict[str, str]:
    token = issue_witness_token(signing_key(stack.settings), org_id=org, clock=stack.clock)
    return {"Authorization": f"Bearer {token}"}


async def test_every_event_is_a_leaf_of_its_organisations_signed_tree(stack: Stack) -> None:
    first = (await stack.report())["id"]
    await stack.settle(first)
    second = (await stack.report(title="Truet i resepsjonen"))["id"]
    await stack.settle(second)
    witness = _witness(stack)
    checkpoint, _ = await _checkpoint(stack, witness)
    assert checkpoint.origin == "kriselogg.local/demo"

    lines = {i: await _export(stack, i) for i in (first, second)}
    # Every event of the organisation is in the tree once, and nothing else is.
    assert checkpoint.size == sum(len(v) for v in lines.values())
    for incident_id, export in lines.items():
        leaves = await stack.client.get(
            "/api/v1/log/leaves", params={"incident_id": incident_id}, headers=stack.auth()
        )
        assert leaves.status_code == 200, leaves.text
        rows = leaves.json()["leaves"]
        assert [r["seq"] for r in rows] == [json.loads(x)["seq"] for x in export]
        for row, line in zip(rows, export, strict=True):
            # The leaf is the export line itself, hashed as RFC 9162 says.
            assert base64.b64decode(row["leaf_hash"]) == leaf_hash(line)
            proof = await stack.client.get(
                "/api/v1/log/proof/inclusion",
                params={"index": row["leaf_index"], "size": checkpoint.size},
                headers=witness,
            )
            assert proof.status_code == 200, proof.text
            path = [base64.b64decode(p) for p in proof.json()["proof"]]
            assert verify_inclusion(
                row["leaf_index"], checkpoint.size, leaf_hash(line), path, checkpoint.root
            )
    # Events of the first incident come before the second's report: one fixed append order.
    first_rows = (
        await stack.client.get(
            "/api/v1/log/leaves", params={"incident_id": first}, headers=stack.auth()
        )
    ).json()["leaves"]
    assert first_rows[0]["leaf_index"] == 0


async def test_a_later_checkpoint_is_proven_to_extend_an_earlier_one(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    witness = _witness(stack)
    old, _ = await _checkpoint(stack, witness)
    note = await stack.client.post(
        f"/api/v1/incidents/{incident_id}/notes", json={"text": "Ringte"}, headers=stack.auth()
    )
    assert note.status_code == 201, note.text
    # The checkpoint is cached for at most a second; the tree size moves with the next one.
    stack.apps["incidents"].state.logs._signed.clear()
    new, _ = await _checkpoint(stack, witness)
    assert new.size == old.size + 1
    proof = await stack.client.get(
        "/api/v1/log/proof/consistency", params={"from": old.size, "to": new.size}, headers=witness
    )
    assert proof.status_code == 200, proof.text
    body = proof.json()
    path = [base64.b64decode(p) for p in body["proof"]]
    assert (body["from"], body["to"]) == (old.size, new.size)
    assert verify_consistency(old.size, new.size, old.root, new.root, path)
    # A forged old root is not consistent with the new tree.
    assert not verify_consistency(old.size, new.size, bytes(32), new.root, path)


async def test_organisations_have_separate_trees(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    other, _ = await _checkpoint(stack, _witness(stack, "other"))
    assert (other.origin, other.size) == ("kriselogg.local/other", 0)
    leaves = await stack.client.get(
        "/api/v1/log/leaves", params={"incident_id": incident_id}, headers=stack.auth("other_org")
    )
    assert leaves.status_code == 404


async def test_a_witness_token_sees_checkpoints_and_nothing_else(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    witness = _witness(stack)
    for path in ("/api/v1/log/checkpoint", "/api/v1/log/key", "/api/v1/log/keys"):
        assert (await stack.client.get(path, headers=witness)).status_code == 200, path
    for path in (
        "/api/v1/incidents",
        f"/api/v1/incidents/{incident_id}",
        f"/api/v1/incidents/{incident_id}/export",
        "/api/v1/alerts",
        "/api/v1/directory/me",
    ):
        response = await stack.client.get(path, headers=witness)
        assert response.status_code == 403, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "vitnetoken" in response.json()["detail"]
    leaves = await stack.client.get(
        "/api/v1/log/leaves", params={"incident_id": incident_id}, headers=witness
    )
    assert leaves.status_code == 403  # which events an incident has is the incident's business


async def test_impossible_proofs_are_refused_in_norwegian(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    witness = _witness(stack)
    size = int(
        (await stack.client.get("/api/v1/log/checkpoint", headers=witness)).headers[
            "X-Kriselogg-Tree-Size"
        ]
    )
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/api/v1/log/proof/inclusion", {"index": size, "size": size}),
        ("/api/v1/log/proof/inclusion", {"index": 0, "size": size + 1}),
        ("/api/v1/log/proof/inclusion", {"index": -1, "size": 1}),
        ("/api/v1/log/proof/inclusion", {"index": "x", "size": 1}),
        ("/api/v1/log/proof/consistency", {"from": 2, "to": 1}),
        ("/api/v1/log/proof/consistency", {"from": 0, "to": size + 1}),
    ]
    for path, params in cases:
        response = await stack.client.get(path, params=params, headers=witness)
        assert response.status_code == 422, (path, params, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_the_tree_is_the_same_after_a_restart(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    logs: OrgLogs = stack.apps["incidents"].state.logs
    before = logs.tree("demo").root()
    again = OrgLogs(logs.path, logs.store, logs.keys, logs.origin_prefix)
    try:
        assert again.tree("demo").root() == before
        assert again.tree("demo").size == logs.tree("demo").size
    finally:
        again.close()
