"""The legal registry end to end: reports and later facts over HTTP, real NATS, a real SMTP
sink, notify's deadlines in the incident log, the clock where the test puts it.

Each test names the provision it holds the product to.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from shared.clock import ManualClock
from tests.support import REPORT, MailSink, Stack, running_stack

OSLO = ZoneInfo("Europe/Oslo")

LEADER = "lise.nord@demo.example"
SAFETY_REP = "vera.verneombud@demo.example"


def types(stack: Stack, incident_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in stack.alerts.events[incident_id] if e["type"] == kind]


async def deadlines_in_log(stack: Stack, incident_id: str, count: int) -> dict[str, Any]:
    await stack.alerts.wait_for_events(
        lambda ev: sum(e["type"] == "DeadlineSet" for e in ev[incident_id]) >= count
    )
    return {e["data"]["deadline_id"]: e["data"] for e in types(stack, incident_id, "DeadlineSet")}


async def alerts_of(stack: Stack, incident_id: str) -> list[dict[str, Any]]:
    response = await stack.client.get(
        "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
    )
    assert response.status_code == 200, response.text
    return [a for a in response.json() if a["kind"] == "alert"]


async def test_severity_alone_starts_no_legal_duty(nats_url: str, tmp_path: Path) -> None:
    """A "critical" report without any harm among its facts creates no legal deadline: aml
    § 5-2 runs on death or serious injury, not on how serious the reporter found it."""
    async with running_stack(nats_url, tmp_path) as stack:
        incident_id = (await stack.report(severity="critical", facts={}))["id"]
        await stack.settle(incident_id, alerts=2, deadlines=3)
        state = (await stack.timeline(incident_id))["incident"]
        assert {d["kind"] for d in state["deadlines"].values()} == {"routine"}


async def test_a_personal_crisis_reaches_the_leader_only_until_consent_is_recorded(
    nats_url: str, tmp_path: Path, mail: MailSink
) -> None:
    """aml § 6-2 is the basis for telling the safety rep (work accidents in their area): a
    death among an employee's relatives is personal, told to the nearest leader only, and to
    the safety rep when the affected person's consent is recorded later."""
    clock = ManualClock(datetime.now(UTC))
    async with running_stack(
        nats_url, tmp_path, clock=clock, smtp_host="127.0.0.1", smtp_port=mail.port
    ) as stack:
        report = await stack.report(
            category="dodsfall-naere-relasjoner",
            title="Moren til Ali døde i natt av leukemi",
            facts={"death": True, "sick_leave_from": None},
        )
        incident_id = report["id"]
        # Only the follow-up talks: no law (no work accident), no routine step for the rep.
        found = await deadlines_in_log(stack, incident_id, 2)
        assert set(found) == {"oppfolging-en-uke", "oppfolging-en-maned"}
        await mail.wait_for(lambda m: any(x["To"] == LEADER for x in m))
        assert {a["role"] for a in await alerts_of(stack, incident_id)} == {"nearest_leader"}
        leader_mail = mail.to(LEADER)[0]
        text = str(leader_mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]
        # The category and unit, never the reporter's words (an illness, a death).
        assert "leukemi" not in text + str(leader_mail["Subject"])
        assert "Dødsfall: I nære relasjoner" in str(leader_mail["Subject"])

        consent = await stack.client.post(
            f"/api/v1/incidents/{incident_id}/facts",
            json={"facts": {"consent_safety_rep": True}},
            headers=stack.auth(),
        )
        assert consent.status_code == 201, consent.text
        await mail.wait_for(lambda m: any(x["To"] == SAFETY_REP for x in m))
        roles = {a["role"] for a in await alerts_of(stack, incident_id)}
        assert roles == {"nearest_leader", "safety_rep"}
        assert len(mail.to(LEADER)) == 1  # the leader is not alerted twice
        rep_text = str(mail.to(SAFETY_REP)[0].get_body(("plain",)).get_content())  # type: ignore[union-attr]
        assert "leukemi" not in rep_text


async def test_serious_injury_learnt_later_starts_aml_5_2_from_then(
    nats_url: str, tmp_path: Path
) -> None:
    """aml § 5-2 (1) "straks": from when the employer learnt of the serious injury. Learnt two
    hours after the report, it is due within the hour of that, with its written confirmation
    (copy to the safety rep), and the duties already set keep their deadlines."""
    clock = ManualClock(datetime.now(UTC))
    async with running_stack(nats_url, tmp_path, clock=clock) as stack:
        incident_id = (await stack.report())["id"]  # violence, a lesser injury
        before = await deadlines_in_log(stack, incident_id, 6)
        assert "aml-5-2" not in before and before["aml-5-1"].get("due_at") is None
        assert before["ftrl-13-14"]["due_label"] == "snarest mulig"

        stack.advance(timedelta(hours=2))
        learnt = clock.now()
        later = await stack.client.post(
            f"/api/v1/incidents/{incident_id}/facts",
            json={"facts": {"serious_injury": True}},
            headers=stack.auth(),
        )
        assert later.status_code == 201, later.text
        found = await deadlines_in_log(stack, incident_id, 8)
        notice = found["aml-5-2"]
        assert notice["due_label"] == "straks"
        assert datetime.fromisoformat(notice["due_at"]) == learnt + timedelta(hours=1)
        assert notice["responsible_role"] == "nearest_leader"
        assert found["aml-5-2-skriftlig"].get("due_at") is None
        # Set once each: the report's duties were not set again.
        assert len(types(stack, incident_id, "DeadlineSet")) == 8
        state = (await stack.timeline(incident_id))["incident"]
        assert state["facts"]["serious_injury"] is True and state["facts"]["injury"] is True


async def test_sick_leave_follow_up_runs_from_the_first_day_of_sick_leave(
    nats_url: str, tmp_path: Path
) -> None:
    """aml § 4-6 (3) and (4), ftrl § 8-7 a: 4, 7 and 26 weeks from the sick-leave start."""
    clock = ManualClock(datetime.now(UTC))
    async with running_stack(nats_url, tmp_path, clock=clock) as stack:
        incident_id = (await stack.report())["id"]
        await deadlines_in_log(stack, incident_id, 6)
        start = (clock.now() + timedelta(days=1)).date()
        recorded = await stack.client.post(
            f"/api/v1/incidents/{incident_id}/facts",
            json={"facts": {"sick_leave_from": start.isoformat()}},
            headers=stack.auth(),
        )
        assert recorded.status_code == 201, recorded.text
        found = await deadlines_in_log(stack, incident_id, 9)
        for duty, days in (("aml-4-6-plan", 28), ("aml-4-6-dialogmote", 49), ("ftrl-8-7a", 182)):
            due = datetime.fromisoformat(found[duty]["due_at"]).astimezone(OSLO)
            assert due.date() == start + timedelta(days=days), duty


async def test_facts_are_yes_no_or_unknown_and_anything_else_is_a_clear_422(
    nats_url: str, tmp_path: Path
) -> None:
    async with running_stack(nats_url, tmp_path) as stack:
        unknown = await stack.report(facts={"death": None, "serious_injury": None})
        state = (await stack.timeline(unknown["id"]))["incident"]
        assert state["facts"] == {"death": None, "serious_injury": None}
        for bad in (
            {"death": "kanskje"},
            {"sick_leave_from": "i går"},
            {"injury": [1]},
            {"bad key!": True},
        ):
            response = await stack.client.post(
                "/api/v1/incidents",
                json={**REPORT, "facts": bad},
                headers=stack.auth("reporter"),
            )
            assert response.status_code == 422, (bad, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        empty = await stack.client.post(
            f"/api/v1/incidents/{unknown['id']}/facts", json={"facts": {}}, headers=stack.auth()
        )
        assert empty.status_code == 422 and "minst én opplysning" in empty.json()["detail"]
        # Facts start duties, so a reporter cannot add them later; the leader and HR can.
        refused = await stack.client.post(
            f"/api/v1/incidents/{unknown['id']}/facts",
            json={"facts": {"death": True}},
            headers=stack.auth("reporter"),
        )
        assert refused.status_code == 403
        schema = (await stack.client.get("/openapi.json")).json()["components"]["schemas"]
        documented = schema["Facts"]["properties"]
        for key in (
            "death", "serious_injury", "serious_psychological_injury", "injury",
            "sick_leave_from", "police_involved",
        ):  # fmt: skip
            assert key in documented and documented[key]["description"], key
        assert "aml § 5-2" in documented["serious_psychological_injury"]["description"]
