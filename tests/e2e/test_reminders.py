"""Reminders reach the responsible person before a deadline, and not once it is met.

The stack runs on a ManualClock, moved forward instead of waiting: every timer is a row compared
with the clock's "now", so the same code runs as it would half an hour later.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.clock import ManualClock
from tests.support import MailSink, running_stack

LEADER = "lise.nord@demo.example"


async def test_the_leader_is_reminded_before_the_inspectorate_deadline(
    nats_url: str, tmp_path: Path, mail: MailSink
) -> None:
    clock = ManualClock(datetime.now(UTC))
    async with running_stack(
        nats_url,
        tmp_path,
        clock=clock,
        smtp_host="127.0.0.1",
        smtp_port=mail.port,
        escalation_seconds=3600,
    ) as stack:
        # A serious injury: the inspectorate and the police must be told within the hour.
        incident_id = (await stack.report(facts={"injury": True, "serious_injury": True}))["id"]
        await stack.settle(incident_id, deadlines=8)
        await mail.wait_for(lambda m: any(x["To"] == LEADER for x in m))  # the alert itself
        state = (await stack.timeline(incident_id))["incident"]
        assert state["deadlines"]["aml-5-2"]["due_label"] == "straks"
        # Marking a duty met goes through the log to notify, like any other.
        met = await stack.client.post(
            f"/api/v1/incidents/{incident_id}/deadlines/ftrl-13-14/met", json={},
            headers=stack.auth(),
        )  # fmt: skip
        assert met.status_code == 201

        # Nothing is reminded while the clock stands still: no duty is due within the minute.
        assert not any(m["Subject"].startswith("Påminnelse") for m in mail.messages)
        # Half an hour before the deadline the reminder is due: move the clock there.
        stack.advance(timedelta(minutes=31))
        await mail.wait_for(
            lambda m: any(x["Subject"].startswith("Påminnelse") and x["To"] == LEADER for x in m)
        )
        reminders = [m for m in mail.messages if m["Subject"].startswith("Påminnelse")]
        assert len(reminders) == 1
        text = str(reminders[0].get_body(("plain",)).get_content())  # type: ignore[union-attr]
        assert "aml § 5-2" in text and "Varsle Arbeidstilsynet og politiet" in text
        listed = (
            await stack.client.get(
                "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
            )
        ).json()
        reminded = {a["deadline_id"] for a in listed if a["kind"] == "reminder"}
        assert reminded == {"aml-5-2"}  # only the duty whose reminder time has come
