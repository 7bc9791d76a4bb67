"""Acceptance 3 of issue 2: the thin path with four `kriselogg serve` processes on PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx

from services.cli import demo_directory
from shared.auth import issue_token
from shared.infra import free_port
from shared.subjects import Subjects
from tests.e2e.processes import start, stop, wait_until_ready
from tests.support import REPORT, BusWatcher, stack_settings

SERVICES = ("content", "incidents", "documents", "notify")


async def test_thin_path_across_four_processes_on_postgres(
    nats_url: str, postgres_dsn: str, tmp_path: Path
) -> None:
    key = secrets.token_urlsafe(32)
    namespace = stack_settings(nats_url, tmp_path).bus_namespace
    ports = {name: free_port() for name in SERVICES}
    procs, logs = [], []
    for name in SERVICES:
        env = {
            "KRISELOGG_NATS_URL": nats_url,
            "KRISELOGG_EVENT_STORE": "postgres",
            "KRISELOGG_POSTGRES_DSN": postgres_dsn,
            "KRISELOGG_SECRET_KEY": key,
            "KRISELOGG_BUS_NAMESPACE": namespace,
            # Each service its own data dir: nothing is shared but the bus and the key.
            "KRISELOGG_DATA_DIR": str(tmp_path / name),
            # documents reads incidents over HTTP when they run apart
            "KRISELOGG_INCIDENTS_URL": f"http://127.0.0.1:{ports['incidents']}",
        }
        logs.append(tmp_path / f"{name}.log")
        procs.append(start(["serve", name, "--port", str(ports[name])], env, logs[-1]))
    watcher = BusWatcher()
    try:
        await asyncio.to_thread(
            wait_until_ready,
            procs,
            [f"http://127.0.0.1:{p}/readyz" for p in ports.values()],
            30,
        )
        names = Subjects(namespace)
        await watcher.start(nats_url, names.stream, names.all_orgs("incident"))
        admin = issue_token(key, org_id="demo", person_id="p-admin", name="A", roles=["admin"])
        reporter = issue_token(
            key, org_id="demo", person_id="p-ansatt", name="Ali Ansatt", roles=["reporter"]
        )
        async with httpx.AsyncClient(timeout=10) as client:
            put = await client.put(
                f"http://127.0.0.1:{ports['notify']}/api/v1/directory",
                json=demo_directory(),
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert put.status_code == 200, put.text
            incidents = f"http://127.0.0.1:{ports['incidents']}/api/v1/incidents"
            auth = {"Authorization": f"Bearer {reporter}"}
            created = await client.post(incidents, json=REPORT, headers=auth)
            assert created.status_code == 201, created.text
            incident_id = created.json()["id"]
            await watcher.wait_for_events(
                lambda seen: (
                    [e["type"] for e in seen[incident_id]].count("DeadlineSet") == 6
                    and len(seen[incident_id]) == 9
                )
            )
            timeline = (
                await client.get(f"{incidents}/{incident_id}/timeline", headers=auth)
            ).json()
        kinds = [e["type"] for e in timeline["events"]]
        assert kinds[0] == "IncidentReported"
        assert sorted(kinds[1:]) == ["DeadlineSet"] * 6 + ["RecipientAlerted"] * 2
        alerted = [e for e in timeline["events"] if e["type"] == "RecipientAlerted"]
        assert {e["data"]["recipient"]["id"] for e in alerted} == {"p-ln", "p-vo"}
    finally:
        await watcher.stop()
        for proc in procs:
            stop(proc)
