"""Alert path benchmark: violence report accepted -> nearest leader's alert recorded.

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

import asyncio
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
from common import (
    ALERT_SUBJECT,
    AlertWatcher,
    Row,
    Server,
    bearer,
    bench_stream,
    drop_stream,
    employee_token,
    recorder,
    report_body,
    report_options,
    start_up,
    stop_server,
    table,
    tail,
    timed_pull,
    timed_sequence,
    wait_for_ready_line,
    wait_until_ready,
)
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.infra import free_port

BENCH_STREAM = "BENCH"
ALERT_TIMEOUT_SECONDS = 15.0


# ---------------------------------------------------------------- the alert path


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
    headers = bearer(token)
    result = AlertResult(
        accepted=Row("report accepted (HTTP POST -> 201)"),
        alerted=Row("report sent -> leader alert fact seen on NATS"),
        handed=Row("report sent -> alert handed to channel (fact.at)"),
    )
    try:
        for i in range(warmup + count):
            body = report_body(i)
            wall0 = time.time()
            t0 = time.perf_counter()
            response = await client.post("/api/v1/incidents", json=body, headers=headers)
            t1 = time.perf_counter()
            if response.status_code != 201:
                raise RuntimeError(f"report {i}: HTTP {response.status_code} {response.text}")
            deadline = time.monotonic() + ALERT_TIMEOUT_SECONDS
            seen = await watcher.wait(str(response.json()["id"]), deadline)
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

    await timed_pull(psub, handle, send, arrived, signal_of, warmup, count, row)
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

    try:
        await timed_pull(psub, handle, send, arrived, signal_of, warmup, count, row)
    finally:
        await out.unsubscribe()
    return row


async def floor(nc: NatsClient, warmup: int, count: int) -> list[Row]:
    js = nc.jetstream()
    await bench_stream(js, BENCH_STREAM, ["bench.>"])
    try:
        return [
            await floor_publish_ack(js, warmup, count),
            await floor_push(js, warmup, count),
            await floor_pull(js, warmup, count),
            await floor_chain(nc, js, warmup, count),
        ]
    finally:
        await drop_stream(js, BENCH_STREAM)


# ---------------------------------------------------------------- main


async def run(server: Server, warmup: int, count: int) -> list[Row]:
    bus_url = await wait_for_ready_line(server)
    if bus_url is None:
        raise RuntimeError("kriselogg printed no bus URL")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0) as client:
        await wait_until_ready(client, server)
        # `up` has written the instance key by now; sign as the demo employee with it.
        token = employee_token(server.data_dir)
        nc = await nats.connect(bus_url, name="kriselogg-bench", allow_reconnect=False)
        try:
            alerts = await alert_path(client, nc, token, warmup, count)
            floors = await floor(nc, warmup, count)
        finally:
            await nc.close()
    return [alerts.accepted, alerts.alerted, alerts.handed, *floors]


def main(argv: Sequence[str] | None = None) -> int:
    args = report_options(__doc__, argv)

    with tempfile.TemporaryDirectory(prefix="kriselogg-bench-") as tmp:
        server = start_up(Path(tmp), free_port())
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
    print("Budget: report accepted -> leader alert handed to channel p50 <= 50 ms,")
    print("p99 <= 250 ms.")
    return 1 if any(row.lost for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
