"""Alert path benchmark: violence report accepted -> nearest leader's alert recorded (DESIGN §9).

Starts `kriselogg up` as a subprocess (exactly what users run: embedded nats-server, the four
services and the gateway on one loopback port), posts reports one at a time as the demo employee,
and times each from just before the HTTP POST is sent to the moment a core NATS subscription sees
the `RecipientAlerted` fact with role `nearest_leader` for that incident. Notify records the alert
in its store before it publishes that fact, so this is the earliest moment an outside observer can
see that the alert was recorded and handed to the channel.

Beside it, in the same run and on the same nats-server, the floor: raw nats-py JetStream figures
on a separate stream (BENCH, subjects bench.>).

Run from the repository root:  /work/venv/bin/python bench/alert_path.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from shared.auth import issue_token, signing_key
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[1]

ORG = "demo"
ALERT_SUBJECT = f"kriselogg.{ORG}.alert.RecipientAlerted"
BUS_LINE = re.compile(r"bus:\s+(nats://\S+)")
REPORT: dict[str, Any] = {
    "category": "vold-fysisk",
    "occurred_at": "2026-11-25T19:00:00+01:00",
    "unit_id": "u-nord",
    "affected": ["p-ansatt"],
    "severity": "high",
}
BENCH_STREAM = "BENCH"
STARTUP_SECONDS = 60.0
ALERT_TIMEOUT_SECONDS = 15.0
FLOOR_TIMEOUT_SECONDS = 5.0


# ---------------------------------------------------------------- statistics and printing


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Row:
    path: str
    samples_ms: list[float] = field(default_factory=list)
    lost: int = 0

    def cells(self) -> list[str]:
        if not self.samples_ms:
            return [self.path, "0", "-", "-", "-", str(self.lost)]
        return [
            self.path,
            str(len(self.samples_ms)),
            f"{percentile(self.samples_ms, 50):.2f}",
            f"{percentile(self.samples_ms, 99):.2f}",
            f"{max(self.samples_ms):.2f}",
            str(self.lost),
        ]


def table(rows: Sequence[Row]) -> str:
    header = ["path", "n", "p50 ms", "p99 ms", "max ms", "lost"]
    body = [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join([first, *rest]) + " |"

    rule = ["-" * widths[0], *("-" * (w - 1) + ":" for w in widths[1:])]
    return "\n".join([line(header), line(rule), *(line(cells) for cells in body)])


# ---------------------------------------------------------------- the kriselogg subprocess


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def kriselogg_executable() -> str:
    beside = Path(sys.executable).with_name("kriselogg")
    if beside.exists():
        return str(beside)
    found = shutil.which("kriselogg")
    if found is None:
        raise SystemExit("kriselogg is not installed in this environment")
    return found


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    base_url: str
    data_dir: Path


def start_server(workdir: Path, port: int) -> Server:
    data_dir = workdir / "data"
    stdout, stderr = workdir / "stdout.log", workdir / "stderr.log"
    # A clean environment: no KRISELOGG_* from the caller (an external NATS URL, a fixed key).
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRISELOGG_")}
    env["PYTHONUNBUFFERED"] = "1"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [kriselogg_executable(), "up", "--data", str(data_dir), "--port", str(port)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env=env,
            start_new_session=True,  # our SIGINT is the only one it gets, and in our order
        )
    return Server(process, stdout, stderr, f"http://127.0.0.1:{port}", data_dir)


def stop_server(server: Server) -> int:
    """SIGINT (what Ctrl-C sends; `up` then stops uvicorn and its nats-server), then wait."""
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print("kriselogg did not stop on SIGINT within 30 s; killing it", file=sys.stderr)
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def wait_for_bus_url(server: Server) -> str:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"kriselogg exited at startup:\n{tail(server.stderr)}")
        found = BUS_LINE.search(server.stdout.read_text("utf-8", errors="replace"))
        if found:
            return found.group(1)
        await asyncio.sleep(0.05)
    raise RuntimeError("kriselogg printed no bus URL in time")


async def wait_until_ready(client: httpx.AsyncClient, server: Server) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"kriselogg exited at startup:\n{tail(server.stderr)}")
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"kriselogg was not ready in time:\n{tail(server.stderr)}")


# ---------------------------------------------------------------- the alert path


class AlertWatcher:
    """Core NATS subscription on RecipientAlerted: when each incident's leader alert is seen."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[float, datetime]] = {}  # incident -> (perf_counter, fact.at)
        self._waiting: dict[str, asyncio.Future[None]] = {}

    async def on_message(self, msg: Msg) -> None:
        now = time.perf_counter()
        fact = json.loads(msg.data)
        if fact.get("role") != "nearest_leader":
            return
        incident = str(fact["incident_id"])
        self.seen.setdefault(incident, (now, datetime.fromisoformat(fact["at"])))
        waiter = self._waiting.pop(incident, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, incident: str) -> tuple[float, datetime] | None:
        """When the incident's leader alert was seen, or None after ALERT_TIMEOUT_SECONDS."""
        if incident not in self.seen:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[incident] = waiter
            try:
                await asyncio.wait_for(waiter, ALERT_TIMEOUT_SECONDS)
            except TimeoutError:
                self._waiting.pop(incident, None)
                return None
        return self.seen[incident]


@dataclass
class AlertResult:
    accepted: Row
    alerted: Row
    handed: Row


async def alert_path(
    client: httpx.AsyncClient, nc: NatsClient, token: str, warmup: int, count: int
) -> AlertResult:
    watcher = AlertWatcher()
    sub = await nc.subscribe(ALERT_SUBJECT, cb=watcher.on_message)
    await nc.flush()
    headers = {"Authorization": f"Bearer {token}"}
    result = AlertResult(
        accepted=Row("report accepted (HTTP POST -> 201)"),
        alerted=Row("report sent -> leader alert fact seen on NATS"),
        handed=Row("report sent -> alert handed to channel (fact.at)"),
    )
    try:
        for i in range(warmup + count):
            # Now, not a fixed date: an old one would make overdue deadlines remind at once.
            occurred = datetime.now(UTC).isoformat()
            body = {**REPORT, "title": f"bench report {i}", "occurred_at": occurred}
            wall0 = time.time()
            t0 = time.perf_counter()
            response = await client.post("/api/v1/incidents", json=body, headers=headers)
            t1 = time.perf_counter()
            if response.status_code != 201:
                raise RuntimeError(f"report {i}: HTTP {response.status_code} {response.text}")
            seen = await watcher.wait(str(response.json()["id"]))
            if i < warmup:
                continue
            result.accepted.samples_ms.append((t1 - t0) * 1000)
            if seen is None:
                result.alerted.lost += 1
                result.handed.lost += 1
                continue
            result.alerted.samples_ms.append((seen[0] - t0) * 1000)
            # fact.at is the server's wall clock when notify handed the alert over (same host).
            result.handed.samples_ms.append((seen[1].timestamp() - wall0) * 1000)
    finally:
        await sub.unsubscribe()
    return result


# ---------------------------------------------------------------- the raw nats-py floor


async def bench_stream(js: JetStreamContext) -> None:
    with contextlib.suppress(Exception):
        await js.delete_stream(BENCH_STREAM)
    await js.add_stream(
        api.StreamConfig(
            name=BENCH_STREAM,
            subjects=["bench.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,  # as the KRISELOGG stream
        )
    )


async def timed_sequence(
    send: Callable[[int], Awaitable[None]],
    arrived: dict[int, float],
    signal_of: dict[int, asyncio.Event],
    warmup: int,
    count: int,
    row: Row,
) -> None:
    """Send message i, wait until a consumer records its arrival, one at a time."""
    for i in range(warmup + count):
        signal_of[i] = asyncio.Event()
        t0 = time.perf_counter()
        await send(i)
        try:
            await asyncio.wait_for(signal_of[i].wait(), FLOOR_TIMEOUT_SECONDS)
        except TimeoutError:
            if i >= warmup:
                row.lost += 1
            continue
        if i >= warmup:
            row.samples_ms.append((arrived[i] - t0) * 1000)


def recorder(
    arrived: dict[int, float], signal_of: dict[int, asyncio.Event]
) -> Callable[[bytes], None]:
    def record(data: bytes) -> None:
        i = int(data)
        arrived[i] = time.perf_counter()
        event = signal_of.get(i)
        if event is not None:
            event.set()

    return record


async def floor_publish_ack(js: JetStreamContext, warmup: int, count: int) -> Row:
    row = Row("floor: js.publish with ack (round trip)")
    for i in range(warmup + count):
        t0 = time.perf_counter()
        await js.publish("bench.ack", str(i).encode())
        if i >= warmup:
            row.samples_ms.append((time.perf_counter() - t0) * 1000)
    return row


async def floor_push(js: JetStreamContext, warmup: int, count: int) -> Row:
    row = Row("floor: js.publish -> durable push consumer")
    arrived: dict[int, float] = {}
    signal_of: dict[int, asyncio.Event] = {}
    record = recorder(arrived, signal_of)

    async def on_message(msg: Msg) -> None:
        record(msg.data)
        await msg.ack()

    sub = await js.subscribe(
        "bench.push", durable="bench-push", stream=BENCH_STREAM, cb=on_message, manual_ack=True
    )

    async def send(i: int) -> None:
        await js.publish("bench.push", str(i).encode())

    try:
        await timed_sequence(send, arrived, signal_of, warmup, count, row)
    finally:
        await sub.unsubscribe()
    return row


async def pull_loop(
    psub: JetStreamContext.PullSubscription,
    total: int,
    handle: Callable[[Msg], Awaitable[None]],
) -> None:
    """Fetch one at a time (as FastStream's PullSub(batch_size=1)) until `total` are handled."""
    handled = 0
    for _ in range(total * 4):  # bounded: idle fetch timeouts count too
        if handled >= total:
            return
        try:
            msgs = await psub.fetch(1, timeout=FLOOR_TIMEOUT_SECONDS)
        except TimeoutError:
            continue
        for msg in msgs:
            await handle(msg)
            handled += 1


async def floor_pull(js: JetStreamContext, warmup: int, count: int) -> Row:
    row = Row("floor: js.publish -> durable pull consumer (fetch 1)")
    arrived: dict[int, float] = {}
    signal_of: dict[int, asyncio.Event] = {}
    record = recorder(arrived, signal_of)
    psub = await js.pull_subscribe("bench.pull", durable="bench-pull", stream=BENCH_STREAM)

    async def handle(msg: Msg) -> None:
        record(msg.data)
        await msg.ack()

    async def send(i: int) -> None:
        await js.publish("bench.pull", str(i).encode())

    consumer = asyncio.create_task(pull_loop(psub, warmup + count, handle))
    try:
        await timed_sequence(send, arrived, signal_of, warmup, count, row)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await psub.unsubscribe()
    return row


async def floor_chain(nc: NatsClient, js: JetStreamContext, warmup: int, count: int) -> Row:
    """The alert path's bus hops alone: publish+ack -> pull consumer -> publish+ack -> core sub."""
    row = Row("floor: publish -> pull -> republish -> core sub")
    arrived: dict[int, float] = {}
    signal_of: dict[int, asyncio.Event] = {}
    record = recorder(arrived, signal_of)
    psub = await js.pull_subscribe("bench.chain.in", durable="bench-chain", stream=BENCH_STREAM)

    async def on_out(msg: Msg) -> None:
        record(msg.data)

    out = await nc.subscribe("bench.chain.out", cb=on_out)
    await nc.flush()

    async def handle(msg: Msg) -> None:
        await js.publish("bench.chain.out", msg.data)
        await msg.ack()

    async def send(i: int) -> None:
        await js.publish("bench.chain.in", str(i).encode())

    consumer = asyncio.create_task(pull_loop(psub, warmup + count, handle))
    try:
        await timed_sequence(send, arrived, signal_of, warmup, count, row)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await psub.unsubscribe()
        await out.unsubscribe()
    return row


async def floor(nc: NatsClient, warmup: int, count: int) -> list[Row]:
    js = nc.jetstream()
    await bench_stream(js)
    try:
        return [
            await floor_publish_ack(js, warmup, count),
            await floor_push(js, warmup, count),
            await floor_pull(js, warmup, count),
            await floor_chain(nc, js, warmup, count),
        ]
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(BENCH_STREAM)


# ---------------------------------------------------------------- main


async def run(server: Server, warmup: int, count: int) -> list[Row]:
    bus_url = await wait_for_bus_url(server)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0) as client:
        await wait_until_ready(client, server)
        # `up` has written the instance key by now; sign as the demo employee with it.
        key = signing_key(Settings(data_dir=server.data_dir, secret_key=None))
        token = issue_token(
            key, org_id=ORG, person_id="p-ansatt", name="Ali Ansatt", roles=["reporter"]
        )
        nc = await nats.connect(bus_url, name="kriselogg-bench", allow_reconnect=False)
        try:
            alerts = await alert_path(client, nc, token, warmup, count)
            floors = await floor(nc, warmup, count)
        finally:
            await nc.close()
    return [alerts.accepted, alerts.alerted, alerts.handed, *floors]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--reports", type=int, default=200, help="measured reports (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up reports (default 20)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="kriselogg-bench-") as tmp:
        server = start_server(Path(tmp), free_port())
        try:
            rows = asyncio.run(run(server, args.warmup, args.reports))
        finally:
            code = stop_server(server)
        if code not in (0, -signal.SIGINT):
            print(f"note: kriselogg exited with {code}:\n{tail(server.stderr)}", file=sys.stderr)
    print(
        f"Alert path, {args.reports} sequential reports after {args.warmup} warm-up, "
        f"loopback, {os.cpu_count()} cores"
    )
    print(table(rows))
    print("Budget (DESIGN §9): report accepted -> leader alert handed to channel p50 <= 50 ms,")
    print("p99 <= 250 ms.")
    return 1 if any(row.lost for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
