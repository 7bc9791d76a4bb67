"""What trusted time costs per checkpoint: one RFC 3161 round trip against the local TSA.

A round is `shared.tsa.fetch_timestamp` of a checkpoint-sized text: build the request, POST it over
loopback HTTP (one kept-alive httpx client), the TSA's `openssl ts -reply` (a process per request,
tests/tsa_server.py), and the client's checks of the reply. Beside it, the floor: the same
`openssl ts -reply` run directly on a request file, with no HTTP and no checks. A real TSA adds
its network distance and its own signing time instead.

Run from the repository root:  .venv/bin/python bench/tsa.py [--rounds 20] [--warmup 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from shared.tsa import describe, fetch_timestamp, timestamp_request, token_matches
from tests.tsa_server import LocalTsa, openssl

CHECKPOINT = (
    "kriselogg.example/demo\n"
    "1000000\n"
    "n2Dmc6GqGjSj8vH5y1F8k8wDq5Y2B1kYH6m7pNbC3xU=\n"
    "\n"
    "\u2014 kriselogg.example/demo Az3grqQ1IeGSZuCb4P0aY8SrjHVeDu0FMBwWKy0qRDdRgyxTG6wM\n"
).encode()


def summary(name: str, samples_ms: list[float]) -> str:
    return (
        f"{name:44} {len(samples_ms):>3} {statistics.median(samples_ms):>10.2f} "
        f"{min(samples_ms):>8.2f} {max(samples_ms):>8.2f}"
    )


async def round_trips(tsa: LocalTsa, rounds: int, warmup: int) -> list[float]:
    samples: list[float] = []
    async with httpx.AsyncClient() as client:
        for i in range(warmup + rounds):
            start = time.perf_counter()
            token = await fetch_timestamp(tsa.url, CHECKPOINT, client=client)
            elapsed = (time.perf_counter() - start) * 1000
            if not token_matches(token, CHECKPOINT):
                raise SystemExit("the local TSA answered a token for other data")
            if i >= warmup:
                samples.append(elapsed)
    describe(token)
    return samples


def floor(tsa: LocalTsa, rounds: int) -> list[float]:
    query = tsa.directory / "bench.tsq"
    query.write_bytes(timestamp_request(CHECKPOINT))
    config = tsa.directory / "tsa.cnf"
    samples: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        openssl(
            "ts", "-reply", "-config", config, "-queryfile", query,
            "-out", tsa.directory / "bench.tsr",
        )  # fmt: skip
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=20, help="measured rounds (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up rounds (default 3)")
    args = parser.parse_args()
    with LocalTsa.start() as tsa:
        trips = asyncio.run(round_trips(tsa, args.rounds, args.warmup))
        raw = floor(tsa, args.rounds)
    print(f"{'path':44} {'n':>3} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    print(summary("fetch_timestamp round trip (local TSA)", trips))
    print(summary("floor: openssl ts -reply alone", raw))


if __name__ == "__main__":
    main()
