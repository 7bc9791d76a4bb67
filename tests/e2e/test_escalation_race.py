"""Issue 15: an escalation can never page after an acknowledgement, nor page twice for one step.

Each alerted role escalates along its own track (nearest leader -> deputy -> the leader above;
safety rep -> main safety rep). Here the leader and the safety rep acknowledge within a few
milliseconds either side of their escalation deadline, for many incidents at once, and notify
(a real `kriselogg serve notify` process on real NATS) is killed with SIGKILL and restarted in
between. Whoever wins each race, the record must say: no one in a track alerted after someone
in it acknowledged, and one alert per step.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli import demo_directory
from shared.auth import issue_token
from shared.infra import free_port
from tests.e2e.processes import start, stop, wait_until_ready
from tests.support import running_stack

ROUNDS = 2  # notify is killed and restarted between them
PER_ROUND = 15
SPREAD = 0.005  # seconds either side of the deadline, as the request reaches notify
TRACKS = {
    "nearest_leader": "leader", "deputy": "leader", "leader": "leader",
    "safety_rep": "safety", "main_safety_rep": "safety",
}  # fmt: skip


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    """Await a state notify reaches by itself (its timers), reading its API as a user would."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_no_escalation_after_an_acknowledgement_across_a_restart(
    nats_url: str, tmp_path: Path
) -> None:
    notify_port = free_port()
    url = f"http://127.0.0.1:{notify_port}"
    rng = random.Random(15)  # the spread of test timings, not a secret
    async with running_stack(
        nats_url, tmp_path, services=("content", "incidents", "documents")
    ) as stack:
        key = stack.settings.secret_key or ""
        env = {
            "KRISELOGG_NATS_URL": nats_url,
            "KRISELOGG_SECRET_KEY": key,
            "KRISELOGG_BUS_NAMESPACE": stack.settings.bus_namespace,
            "KRISELOGG_DATA_DIR": str(tmp_path / "notify-process"),
            "KRISELOGG_ESCALATION_SECONDS": "1",
        }

        def token(person: str, name: str, role: str) -> dict[str, str]:
            t = issue_token(key, org_id="demo", person_id=person, name=name, roles=[role])
            return {"Authorization": f"Bearer {t}"}

        admin = token("p-admin", "Astrid Admin", "admin")
        people = {
            "p-ln": token("p-ln", "Lise Nord", "leader"),
            "p-vo": token("p-vo", "Vera Verneombud", "safety_rep"),
        }
        outcomes: Counter[str] = Counter()
        incidents: list[str] = []
        proc = None
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                for n in range(ROUNDS):
                    proc = start(
                        ["serve", "notify", "--port", str(notify_port)],
                        env,
                        tmp_path / f"notify-{n}.log",
                    )
                    await asyncio.to_thread(wait_until_ready, [proc], [f"{url}/readyz"], 30)
                    if n == 0:
                        put = await client.put(
                            "/api/v1/directory", json=demo_directory(), headers=admin
                        )
                        assert put.status_code == 200, put.text
                    races = []
                    for _ in range(PER_ROUND):
                        incident_id = (await stack.report())["id"]
                        incidents.append(incident_id)
                        races.append(race(client, admin, people, incident_id, rng, outcomes))
                    await asyncio.gather(*races)
                    # Killed mid-way, with escalations and their facts possibly in flight.
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
                proc = start(
                    ["serve", "notify", "--port", str(notify_port)],
                    env,
                    tmp_path / "notify-end.log",
                )
                await asyncio.to_thread(wait_until_ready, [proc], [f"{url}/readyz"], 30)

                async def settled() -> bool:
                    rows = await all_alerts(client, admin, incidents)
                    return all(a["escalate_at"] is None for a in rows)

                await until(settled, "every track acknowledged or run to its end")
                rows = await all_alerts(client, admin, incidents)
        finally:
            if proc is not None and proc.poll() is None:
                stop(proc)

        # Both kinds of race outcome were exercised, and the record holds in each.
        print(f"acknowledged first: {outcomes['ack']}, escalation first: {outcomes['late']}")
        for incident_id in incidents:
            mine = [a for a in rows if a["incident_id"] == incident_id and a["kind"] == "alert"]
            for track in ("leader", "safety"):
                alerts = [a for a in mine if TRACKS[a["role"]] == track]
                acks = [when(a["acknowledged_at"]) for a in alerts if a["acknowledged_at"]]
                assert acks, (incident_id, track, alerts)
                first_ack = min(acks)
                for a in alerts:
                    # Nobody in the track was alerted, nor escalated from, after the answer.
                    assert when(a["created_at"]) <= first_ack, (incident_id, track, alerts)
                    if a["escalated_at"]:
                        assert when(a["escalated_at"]) <= first_ack, (incident_id, a)
                # One alert per step: the chain is walked in order, each person once.
                persons = [a["person_id"] for a in alerts]
                assert len(persons) == len(set(persons)) <= 2, alerts

        # The incident log holds the same story: one RecipientAlerted per alert, one
        # AlertEscalated per escalated alert, never an escalation after an acknowledgement.
        expected = sum(1 for a in rows if a["kind"] == "alert" and a["acknowledged_at"])

        async def logged() -> bool:
            count = 0
            for incident_id in incidents:
                events = (await stack.timeline(incident_id))["events"]
                count += sum(e["type"] == "AlertAcknowledged" for e in events)
            return count == expected

        await until(logged, "every acknowledgement in the incident logs")
        for incident_id in incidents:
            events = (await stack.timeline(incident_id))["events"]
            for kind in ("RecipientAlerted", "AlertEscalated", "AlertAcknowledged"):
                ids = [e["data"]["alert_id"] for e in events if e["type"] == kind]
                assert len(ids) == len(set(ids)), (kind, events)
            acked_tracks: set[str] = set()
            for e in events:
                in_track = TRACKS.get(str(e["data"].get("role")))
                if e["type"] == "AlertAcknowledged" and in_track:
                    acked_tracks.add(in_track)
                if e["type"] == "AlertEscalated" and in_track:
                    assert in_track not in acked_tracks, events


async def race(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    people: dict[str, dict[str, str]],
    incident_id: str,
    rng: random.Random,
    outcomes: Counter[str],
) -> None:
    """As soon as notify has alerted the leader and the safety rep, each of them acknowledges
    at their own deadline."""
    alerts: list[dict[str, Any]] = []
    latency = [0.0]

    async def planned() -> bool:
        started = time.perf_counter()
        alerts[:] = await first_alerts(client, admin, incident_id)
        latency[0] = time.perf_counter() - started
        return len(alerts) == 2

    await until(planned, "notify to plan the report")
    await asyncio.gather(
        *(ack_at_deadline(client, a, people, rng, outcomes, latency[0]) for a in alerts)
    )


async def first_alerts(
    client: httpx.AsyncClient, admin: dict[str, str], incident_id: str
) -> list[dict[str, Any]]:
    rows = await client.get("/api/v1/alerts", params={"incident_id": incident_id}, headers=admin)
    return [a for a in rows.json() if a["person_id"] in ("p-ln", "p-vo")]


async def all_alerts(
    client: httpx.AsyncClient, admin: dict[str, str], incidents: list[str]
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for incident_id in incidents:
        response = await client.get(
            "/api/v1/alerts", params={"incident_id": incident_id}, headers=admin
        )
        found += response.json()
    return found


async def ack_at_deadline(
    client: httpx.AsyncClient,
    alert: dict[str, Any],
    people: dict[str, dict[str, str]],
    rng: random.Random,
    outcomes: Counter[str],
    latency: float,
) -> None:
    """Tap "acknowledge" so that it reaches notify a few milliseconds before or after the
    escalation deadline (sent earlier by about one request's time)."""
    aim = when(alert["escalate_at"]).timestamp() - latency + rng.uniform(-SPREAD, SPREAD)
    # Aiming at a moment on the wall clock is the point of this test, not a wait for an event.
    await asyncio.sleep(max(0.0, aim - time.time()))
    response = await client.post(
        f"/api/v1/alerts/{alert['id']}/ack", headers=people[alert["person_id"]]
    )
    assert response.status_code == 200, response.text
    rows = (
        await client.get(
            "/api/v1/alerts",
            params={"incident_id": alert["incident_id"]},
            headers=people["p-ln"],
        )
    ).json()
    mine = next(a for a in rows if a["id"] == alert["id"])
    outcomes["late" if mine["escalated_at"] else "ack"] += 1


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # The notify process must sign and verify with the same key as this process.
    monkeypatch.setenv("KRISELOGG_SECRET_KEY", secrets.token_urlsafe(32))
