"""Guidance benchmark: a sub-theme over HTTP (budget: p99 ≤ 10 ms at 200 requests/s).

Runs `kriselogg serve content` as a real process (uvicorn, one worker) and measures, over
keep-alive HTTP on loopback, requests for sub-themes (rotating through all of them, each with
the caller's organisation's local additions looked up):

* open loop at a fixed rate (default 200 requests/s for 15 s): latency measured from each
  request's *scheduled* start, so a stall is counted against every request it delays;
* closed loop with N concurrent clients: the most sub-theme requests per second it sustains;
* search at the same fixed rate, for comparison.

The load generator runs on the same machine; its own CPU use is printed beside the server's.

Run from the repository root:  /work/venv/bin/python bench/content.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
from common import bearer, leader_token, ready_process

from services.content.store import load_catalogue
from shared.auth import issue_token
from shared.infra import free_port

SEARCHES = ["vold", "trusler", "brann", "dødsfall", "sykefravær", "psykisk førstehjelp"]


@contextmanager
def content_server(data: Path, key: str) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    env = {**os.environ, "KRISELOGG_DATA_DIR": str(data), "KRISELOGG_SECRET_KEY": key}
    env["KRISELOGG_LOG_LEVEL"] = "WARNING"
    args = ["serve", "content", "--port", str(port)]
    # SIGTERM (Popen.terminate), 10 s to stop.
    with ready_process(args, env, "content service", signal.SIGTERM, 10) as proc:
        yield f"http://127.0.0.1:{port}", psutil.Process(proc.pid)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(label: str, latencies: list[float], seconds: float, errors: int) -> None:
    ms = [x * 1000 for x in latencies]
    print(
        f"{label}: {len(ms)} requests in {seconds:.1f} s = {len(ms) / seconds:.0f}/s, "
        f"p50 {percentile(ms, 50):.2f} ms, p99 {percentile(ms, 99):.2f} ms, "
        f"max {max(ms):.2f} ms, errors {errors}"
    )


async def open_loop(
    client: httpx.AsyncClient, paths: list[str], rate: float, seconds: float
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        nonlocal errors
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the load, not waiting for a result
        response = await client.get(paths[i % len(paths)])
        latencies.append(time.perf_counter() - scheduled)
        if response.status_code != 200:
            errors += 1

    await asyncio.gather(*(one(i) for i in range(total)))
    return latencies, errors


async def closed_loop(
    base: str, headers: dict[str, str], paths: list[str], clients: int, seconds: float
) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base, headers=headers) as client:
            i = n
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                response = await client.get(paths[i % len(paths)])
                latencies.append(time.perf_counter() - t0)
                errors += response.status_code != 200
                i += clients

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(clients)))
    return latencies, errors, time.perf_counter() - t0


async def main(rate: float, seconds: float, clients: int) -> None:
    catalogue = load_catalogue()
    key = secrets.token_urlsafe(32)
    headers = bearer(leader_token(key, name="Bench"))
    subthemes = [f"/api/v1/guidance/subthemes/{sid}" for sid in catalogue.subthemes]
    searches = [f"/api/v1/guidance/search?q={q}" for q in SEARCHES]
    print(
        f"catalogue {catalogue.version}: {len(subthemes)} sub-themes; "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as tmp, content_server(Path(tmp), key) as (base, server):
        me = psutil.Process()
        async with httpx.AsyncClient(base_url=base, headers=headers) as client:
            # Local additions exist for the caller's organisation, so every request looks them up.
            admin = issue_token(key, org_id="demo", person_id="p-a", name="A", roles=["admin"])
            for sid in list(catalogue.subthemes)[:10]:
                added = await client.post(
                    f"/api/v1/guidance/subthemes/{sid}/local",
                    json={"kind": "article", "title": "Lokal rutine", "text": "Ring vakta."},
                    headers=bearer(admin),
                )
                assert added.status_code == 201, added.text
            for path in subthemes * 3:  # warm-up
                assert (await client.get(path)).status_code == 200
            sizes = [len((await client.get(p)).content) for p in subthemes]
            print(
                f"sub-theme body: median {statistics.median(sizes) / 1024:.1f} KiB, "
                f"max {max(sizes) / 1024:.1f} KiB"
            )

            server.cpu_percent(), me.cpu_percent()
            latencies, errors = await open_loop(client, subthemes, rate, seconds)
            summary(f"sub-theme, open loop at {rate:.0f}/s", latencies, seconds, errors)
            print(
                f"  CPU: server {server.cpu_percent():.0f} %, "
                f"load generator {me.cpu_percent():.0f} % (of one core)"
            )
            latencies, errors = await open_loop(client, searches, rate, seconds / 3)
            summary(f"search, open loop at {rate:.0f}/s", latencies, seconds / 3, errors)

        latencies, errors, took = await closed_loop(base, headers, subthemes, clients, seconds / 2)
        summary(f"sub-theme, closed loop, {clients} clients", latencies, took, errors)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the open loop")
    parser.add_argument("--clients", type=int, default=8, help="clients of the closed loop")
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.clients))
