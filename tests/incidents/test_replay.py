"""Replay: the log as it stood at any moment (as_of) or after any entry (until_seq)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from services.cli import cli
from tests.support import Stack


async def test_timeline_as_of_and_until_seq_show_the_past(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    settled = await stack.settle(incident_id)
    base = f"/api/v1/incidents/{incident_id}"
    written = []
    for title in ("Trakk seg unna", "Ringte politiet", "Fulgte til legevakt"):
        response = await stack.client.post(
            f"{base}/measures", json={"title": title, "status": "done"}, headers=stack.auth()
        )
        assert response.status_code == 201
        written.append(response.json())
    full = await stack.timeline(incident_id)
    moment = full["events"][settled + 1]["recorded_at"]  # the second measure

    as_of = await stack.timeline(incident_id, as_of=moment)
    assert [e["seq"] for e in as_of["events"]] == list(range(1, settled + 3))
    assert [m["title"] for m in as_of["incident"]["measures"]] == [
        "Trakk seg unna",
        "Ringte politiet",
    ]
    assert as_of["incident"]["head_hash"] == written[1]["hash"]

    until = await stack.timeline(incident_id, until_seq=settled + 1)
    assert [m["title"] for m in until["incident"]["measures"]] == ["Trakk seg unna"]
    assert until["incident"]["length"] == settled + 1

    before = await stack.timeline(incident_id, as_of="2000-01-01T00:00:00Z")
    assert before["events"] == []

    both = await stack.client.get(
        f"{base}/timeline", params={"as_of": moment, "until_seq": 2}, headers=stack.auth()
    )
    assert both.status_code == 422
    naive = await stack.client.get(
        f"{base}/timeline", params={"as_of": "2026-11-25T12:00:00"}, headers=stack.auth()
    )
    assert naive.status_code == 422


async def test_export_verifies_with_the_cli_and_a_change_is_caught(
    stack: Stack, tmp_path: Path
) -> None:
    incident_id = (await stack.report())["id"]
    await stack.client.post(
        f"/api/v1/incidents/{incident_id}/notes", json={"text": "Blåmerker på armen"},
        headers=stack.auth(),
    )  # fmt: skip
    export = await stack.client.get(f"/api/v1/incidents/{incident_id}/export", headers=stack.auth())
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("application/x-ndjson")
    path = tmp_path / "export.jsonl"
    path.write_bytes(export.content)
    assert "Blåmerker" in path.read_text("utf-8")  # Norwegian letters kept, not escaped

    ok = CliRunner().invoke(cli, ["verify", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "VALID" in ok.output

    lines = path.read_text("utf-8").splitlines()
    event = json.loads(lines[1])
    event["data"]["text"] = "Ingen skader"
    lines[1] = json.dumps(event, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", "utf-8")
    bad = CliRunner().invoke(cli, ["verify", str(path)])
    assert bad.exit_code == 1
    assert "INVALID at seq 2" in bad.output
