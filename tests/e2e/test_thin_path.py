"""The thin path through real NATS: report -> relay -> notify -> fact -> incident log."""

from __future__ import annotations

from services.cli import demo_directory
from tests.support import Stack, alerted_roles


async def test_violence_report_alerts_nearest_leader_and_safety_rep(stack: Stack) -> None:
    written = await stack.report()
    incident_id = written["id"]
    assert written["seq"] == 1 and len(written["hash"]) == 64

    await stack.alerts.wait_for(lambda seen: len(seen[incident_id]) == 2)

    timeline = await stack.timeline(incident_id)
    events = timeline["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "IncidentReported"
    assert alerted_roles(events) == ["nearest_leader", "safety_rep"]
    recipients = {
        e["data"]["role"]: e["data"]["recipient"]["id"]
        for e in events
        if e["type"] == "RecipientAlerted"
    }
    # Lise Nord leads the affected employee's unit; Vera Verneombud is its safety rep.
    assert recipients == {"nearest_leader": "p-ln", "safety_rep": "p-vo"}
    alerts = timeline["incident"]["alerts"]
    assert {a["status"] for a in alerts.values()} == {"sent"}

    listed = await stack.client.get(
        "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
    )
    assert listed.status_code == 200
    assert sorted(a["role"] for a in listed.json()) == ["nearest_leader", "safety_rep"]


async def test_absent_leader_is_skipped_for_the_deputy(stack: Stack) -> None:
    body = demo_directory()
    for person in body["people"]:
        if person["id"] == "p-ln":
            person["absences"] = [{"from": "2000-01-01", "to": "2999-12-31"}]
    put = await stack.client.put("/api/v1/directory", json=body, headers=stack.auth("admin"))
    assert put.status_code == 200, put.text

    incident_id = (await stack.report())["id"]
    await stack.alerts.wait_for(lambda seen: len(seen[incident_id]) == 2)
    events = (await stack.timeline(incident_id))["events"]
    leader = next(e for e in events if e["data"].get("role") == "deputy")
    assert leader["data"]["recipient"]["id"] == "p-ln2"
