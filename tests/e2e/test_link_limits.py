"""Behind a reverse proxy, the acknowledgement links' limit counts each real client, and only a
configured proxy can say who the client is (`kriselogg serve notify`, real uvicorn, real NATS)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx

from shared.infra import free_port
from tests.e2e.processes import start, stop, wait_until_ready

GUESSES = 30  # what one address may get wrong in a minute


async def failures(url: str, forwarded_for: str, count: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return [
            (
                await client.get(
                    f"/api/v1/alerts/a{i}/ack?expires=1&sig=x",
                    headers={"X-Forwarded-For": forwarded_for},
                )
            ).status_code
            for i in range(count)
        ]


async def test_only_a_trusted_proxy_names_the_client(nats_url: str, tmp_path: Path) -> None:
    env = {
        "KRISELOGG_NATS_URL": nats_url,
        "KRISELOGG_SECRET_KEY": secrets.token_urlsafe(32),
        "KRISELOGG_BUS_NAMESPACE": f"t-{secrets.token_hex(5)}",
    }
    behind, direct = free_port(), free_port()
    procs = [
        start(
            ["serve", "notify", "--port", str(behind)],
            {**env, "KRISELOGG_DATA_DIR": str(tmp_path / "a"),
             "KRISELOGG_TRUSTED_PROXIES": '["127.0.0.1"]'},
            tmp_path / "behind.log",
        ),
        start(
            ["serve", "notify", "--port", str(direct)],
            {**env, "KRISELOGG_DATA_DIR": str(tmp_path / "b")},
            tmp_path / "direct.log",
        ),
    ]  # fmt: skip
    try:
        urls = [f"http://127.0.0.1:{p}" for p in (behind, direct)]
        await asyncio.to_thread(wait_until_ready, procs, [f"{u}/readyz" for u in urls], 30)

        # Behind the proxy: one client's guessing does not lock out the next person.
        assert await failures(urls[0], "203.0.113.7", GUESSES + 1) == [404] * GUESSES + [429]
        assert await failures(urls[0], "203.0.113.8", 1) == [404]

        # Without a trusted proxy the header is ignored: a guesser cannot pick a fresh address.
        assert await failures(urls[1], "203.0.113.7", GUESSES) == [404] * GUESSES
        assert await failures(urls[1], "198.51.100.1", 1) == [429]
    finally:
        for proc in procs:
            stop(proc)
