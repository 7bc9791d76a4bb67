"""Acceptance 4 of issue 2: NATS dies while reports come in; none is lost, none alerted twice."""

from __future__ import annotations

from pathlib import Path

from shared.infra import EmbeddedNats
from tests.support import BusWatcher, running_stack

BEFORE, DURING, AFTER = 5, 10, 5


async def test_reports_survive_a_killed_nats_server(tmp_path: Path) -> None:
    # Its own server: this test kills it, which it must never do to a shared one.
    server = EmbeddedNats(store_dir=tmp_path / "nats").start()
    try:
        async with running_stack(server.url, tmp_path / "data") as stack:
            ids = [(await stack.report(title=f"Før brudd {i}"))["id"] for i in range(BEFORE)]
            await stack.alerts.wait_for(lambda seen: all(len(seen[i]) == 2 for i in ids))

            server.kill()
            # Reports are accepted while the bus is down: the event store is the outbox.
            down = [(await stack.report(title=f"Under brudd {i}"))["id"] for i in range(DURING)]
            server.start()
            after = [(await stack.report(title=f"Etter brudd {i}"))["id"] for i in range(AFTER)]

            everything = ids + down + after
            # A fresh reader of the stream: the test's own consumer of the killed server would
            # first have to notice the loss (heartbeats), which says nothing about kriselogg.
            watcher = BusWatcher()
            names = stack.settings.subjects
            await watcher.start(
                server.url, names.stream, names.all_orgs("incident", "RecipientAlerted")
            )
            try:
                await watcher.wait_for(
                    lambda seen: all(len(seen[i]) >= 2 for i in everything), timeout=60
                )
            finally:
                await watcher.stop()
            for incident_id in everything:
                events = (await stack.timeline(incident_id))["events"]
                roles = [e["data"]["role"] for e in events if e["type"] == "RecipientAlerted"]
                assert sorted(roles) == ["nearest_leader", "safety_rep"], incident_id
            alerts = stack.apps["notify"].state.store.alert_count()
            assert alerts == 2 * len(everything)
    finally:
        server.stop()
