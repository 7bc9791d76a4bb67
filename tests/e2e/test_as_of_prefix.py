"""Issue 17, item 7: the log as of a moment is a prefix of the log, in the timeline and the form.

`recorded_at` is each writer's own wall clock. With two replicas a few seconds apart, an event
written later can carry an earlier time. The log as of a moment must still be the events
recorded by then *in log order*: it ends at the first event recorded after the moment, and the
timeline and the log form as of that moment hold the same events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.canonical import recorded_by
from shared.clock import ManualClock
from tests.support import running_stack


def test_the_prefix_ends_at_the_first_later_event() -> None:
    t = datetime(2030, 1, 1, tzinfo=UTC)

    def at(seconds: int) -> dict[str, str]:
        return {"recorded_at": (t + timedelta(seconds=seconds)).isoformat()}

    events = [at(0), at(10), at(5), at(20)]  # the third writer's clock is behind
    assert recorded_by(events, t + timedelta(seconds=7)) == 1  # not [0, 2]: that is no prefix
    assert recorded_by(events, t + timedelta(seconds=10)) == 3
    assert recorded_by(events, t - timedelta(seconds=1)) == 0
    assert recorded_by(events, t + timedelta(days=1)) == 4


async def test_timeline_and_log_form_as_of_a_moment_agree_when_clocks_differ(
    nats_url: str, tmp_path: Path
) -> None:
    clock = ManualClock(datetime.now(UTC))
    async with running_stack(nats_url, tmp_path, clock=clock) as stack:
        incident_id = (await stack.report())["id"]
        await stack.settle(incident_id)
        settled = clock.now()
        clock.advance(timedelta(seconds=10))
        for text, step in (("Ringte politiet", 0), ("Snakket med den ansatte", -5)):
            clock.advance(timedelta(seconds=step))  # the second writer's clock is 5 s behind
            response = await stack.client.post(
                f"/api/v1/incidents/{incident_id}/notes", json={"text": text},
                headers=stack.auth(),
            )  # fmt: skip
            assert response.status_code == 201, response.text
        moment = settled + timedelta(seconds=7)  # after the second note's time, before the first's
        timeline = await stack.timeline(incident_id, as_of=moment.isoformat())
        texts = [e["data"].get("text") for e in timeline["events"]]
        assert "Ringte politiet" not in texts
        assert "Snakket med den ansatte" not in texts  # recorded after the first, in log order
        seqs = [e["seq"] for e in timeline["events"]]
        assert seqs == list(range(1, len(seqs) + 1))  # a prefix
        form = await stack.client.get(
            f"/api/v1/documents/incidents/{incident_id}/log.docx",
            params={"as_of": moment.isoformat()},
            headers=stack.auth(),
        )
        assert form.status_code == 200, form.text
        assert int(form.headers["X-Kriselogg-As-Of-Seq"]) == seqs[-1]
