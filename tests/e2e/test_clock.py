"""Time comes from each service's clock: escalation, link and token expiry, and clock skew.

Real nats-server and real SMTP sink; the services run on a ManualClock that the test moves, so
a 15-minute escalation window is tested in a second, and on any day the suite runs.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from shared.auth import issue_token, signing_key
from shared.clock import ManualClock, OffsetClock
from tests.support import MailSink, Stack, running_stack

LEADER = "lise.nord@demo.example"
DEPUTY = "lars.nestleder@demo.example"
WINDOW = timedelta(seconds=900)  # the default KRISELOGG_ESCALATION_SECONDS


@pytest.fixture
async def frozen(nats_url: str, tmp_path: Path, mail: MailSink) -> AsyncIterator[Stack]:
    """Every service on one ManualClock, which only moves when the test says so."""
    clock = ManualClock(datetime.now(UTC))
    async with running_stack(
        nats_url,
        tmp_path,
        clock=clock,
        smtp_host="127.0.0.1",
        smtp_port=mail.port,
        public_url="http://kriselogg",
    ) as stack:
        yield stack


async def alerts(stack: Stack, incident_id: str) -> list[dict[str, Any]]:
    response = await stack.client.get(
        "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
    )
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


def ack_link(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    found = re.search(r"http://kriselogg(/\S+/ack\?\S+)", str(part.get_content()))
    assert found, part.get_content()
    return found.group(1)


async def test_escalation_waits_for_the_window_on_the_services_clock(
    frozen: Stack, mail: MailSink
) -> None:
    stack = frozen
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    dispatcher = stack.apps["notify"].state.dispatcher

    # A second short of the window nobody is escalated to, however long the test has run.
    stack.advance(WINDOW - timedelta(seconds=1))
    await dispatcher.tick()
    leader = next(a for a in await alerts(stack, incident_id) if a["person_id"] == "p-ln")
    assert leader["status"] == "sent" and leader["escalated_at"] is None
    assert mail.to(DEPUTY) == []

    # At the window's end the deputy is alerted, once, and the log says why.
    stack.advance(timedelta(seconds=1))
    await mail.wait_for(lambda m: any(x["To"] == DEPUTY for x in m))
    await stack.alerts.wait_for_events(
        lambda events: any(e["type"] == "AlertEscalated" for e in events[incident_id])
    )
    escalated = next(e for e in stack.alerts.events[incident_id] if e["type"] == "AlertEscalated")
    assert "15 minutter" in escalated["data"]["reason"]
    # Recorded at the services' time, not the machine's.
    assert escalated["recorded_at"] == stack.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert len(mail.to(DEPUTY)) == 1


async def test_acknowledgement_link_and_token_expire_on_the_services_clock(
    frozen: Stack, mail: MailSink
) -> None:
    stack = frozen
    await stack.report()
    await mail.wait_for(lambda m: any(x["To"] == LEADER for x in m))
    link = ack_link(mail.to(LEADER)[0])
    settings = stack.settings
    short = issue_token(
        signing_key(settings), org_id="demo", person_id="p-ln", name="Lise Nord",
        roles=["leader"], ttl=timedelta(hours=12), clock=stack.clock,
    )  # fmt: skip
    own = {"Authorization": f"Bearer {short}"}

    assert (await stack.client.get(link)).status_code == 200
    assert (await stack.client.get("/api/v1/incidents", headers=own)).status_code == 200

    # 13 hours on, the 12-hour token is refused, by the clock the services run on.
    stack.advance(timedelta(hours=13))
    refused = await stack.client.get("/api/v1/incidents", headers=own)
    assert refused.status_code == 401 and "utløpt" in refused.json()["detail"]

    # The link is good for KRISELOGG_ACK_LINK_DAYS (7): still on day 6, gone on day 8.
    stack.advance(timedelta(days=6) - timedelta(hours=13))
    assert (await stack.client.get(link)).status_code == 200
    stack.advance(timedelta(days=2))
    gone = await stack.client.get(link)
    assert gone.status_code == 410 and "Lenken er utløpt" in gone.text


async def test_notify_times_escalation_by_its_own_clock_not_the_reporting_host(
    nats_url: str, tmp_path: Path
) -> None:
    """Hosts' clocks differ: incidents' here runs ten minutes late. The recorded_at it stamps is
    its own; notify must start the escalation window when it learns of the report, by its own
    clock, or a late reporting host would cut the leader's 15 minutes to 5."""
    async with running_stack(
        nats_url, tmp_path, clocks={"incidents": OffsetClock(timedelta(minutes=-10))}
    ) as stack:
        before = datetime.now(UTC)
        incident_id = (await stack.report())["id"]
        await stack.settle(incident_id)
        reported = stack.alerts.events[incident_id][0]
        assert datetime.fromisoformat(reported["recorded_at"]) < before - timedelta(minutes=9)
        leader = next(a for a in await alerts(stack, incident_id) if a["person_id"] == "p-ln")
        escalate_at = datetime.fromisoformat(leader["escalate_at"].replace("Z", "+00:00"))
        assert before + WINDOW <= escalate_at <= datetime.now(UTC) + WINDOW
