"""Issue 3, acceptance 4: SIGKILL the incidents service mid-burst; every accepted report reaches
the bus exactly once (by Nats-Msg-Id) after restart, none missing."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
from pathlib import Path

import httpx
import nats
from nats.aio.msg import Msg

from shared.auth import issue_token
from shared.infra import free_port
from shared.subjects import Subjects
from tests.e2e.processes import start, stop, wait_until_ready
from tests.support import REPORT, stack_settings

WRITERS, PER_WRITER, KILL_AFTER = 4, 40, 60


async def test_sigkill_mid_burst_loses_and_duplicates_nothing(
    nats_url: str, tmp_path: Path
) -> None:
    key = secrets.token_urlsafe(32)
    names = Subjects(stack_settings(nats_url, tmp_path).bus_namespace)
    port = free_port()
    env = {
        "KRISELOGG_NATS_URL": nats_url,
        "KRISELOGG_SECRET_KEY": key,
        "KRISELOGG_BUS_NAMESPACE": names.root,
        "KRISELOGG_DATA_DIR": str(tmp_path / "incidents"),
    }
    url = f"http://127.0.0.1:{port}"
    token = issue_token(key, org_id="demo", person_id="p-ansatt", name="Ali", roles=["reporter"])
    accepted: list[str] = []
    enough = asyncio.Event()

    async def writer(client: httpx.AsyncClient) -> None:
        for _ in range(PER_WRITER):
            try:
                response = await client.post(
                    f"{url}/api/v1/incidents", json=REPORT,
                    headers={"Authorization": f"Bearer {token}"},
                )  # fmt: skip
            except httpx.TransportError:
                return  # the service died under us: this report was never accepted
            assert response.status_code == 201
            accepted.append(response.json()["id"])
            if len(accepted) >= KILL_AFTER:
                enough.set()

    log = tmp_path / "incidents.log"
    proc = start(["serve", "incidents", "--port", str(port)], env, log)
    try:
        await asyncio.to_thread(wait_until_ready, [proc], [f"{url}/readyz"], 30)
        async with httpx.AsyncClient(timeout=10) as client:
            burst = [asyncio.create_task(writer(client)) for _ in range(WRITERS)]
            await asyncio.wait_for(enough.wait(), 60)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            await asyncio.gather(*burst)
        assert KILL_AFTER <= len(accepted) < WRITERS * PER_WRITER, "the kill came too late"

        proc = start(["serve", "incidents", "--port", str(port)], env, tmp_path / "restart.log")
        await asyncio.to_thread(wait_until_ready, [proc], [f"{url}/readyz"], 30)

        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            seen: dict[str, int] = {}
            arrived = asyncio.Condition()

            async def on_msg(msg: Msg) -> None:
                msg_id = (msg.headers or {})["Nats-Msg-Id"]
                async with arrived:
                    seen[msg_id] = seen.get(msg_id, 0) + 1
                    arrived.notify_all()

            await js.subscribe(names.all_orgs("incident", "IncidentReported"), stream=names.stream,
                               cb=on_msg, ordered_consumer=True)  # fmt: skip
            wanted = {f"{i}:1" for i in accepted}
            async with asyncio.timeout(30), arrived:
                await arrived.wait_for(lambda: wanted <= seen.keys())
            info = await js.stream_info(names.stream)
        finally:
            await nc.close()
        assert all(count == 1 for count in seen.values()), "a report was published twice"
        # Nothing else is in the stream: one stored message per distinct report, no duplicates.
        assert info.state.messages == len(seen)
    finally:
        with contextlib.suppress(Exception):
            stop(proc)
