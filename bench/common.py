"""What the bench scripts share: the kriselogg subprocess, tokens, the results table, the raw
NATS floor.

Not a package: the scripts run as `python bench/X.py` from the repository root, which puts this
folder on sys.path, and import it as `from common import ...`.
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
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from services.cli import READY_LINE
from shared.auth import issue_token, signing_key
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[1]

ORG = "demo"
ALERT_SUBJECT = f"kriselogg.{ORG}.alert.RecipientAlerted"
BUS_LINE = re.compile(r"bus:\s+(nats://\S+)")
# The demo employee's violence report (alert path, notify): its nearest leader is Lise Nord.
REPORT: dict[str, Any] = {
    "category": "vold-fysisk",
    "unit_id": "u-nord",
    "affected": ["p-ansatt"],
    "severity": "high",
}
STARTUP_SECONDS = 60.0
STOP_SECONDS = 30.0
FLOOR_TIMEOUT_SECONDS = 5.0


# ---------------------------------------------------------------- reports and tokens


def report_options(doc: str | None, argv: Sequence[str] | None) -> argparse.Namespace:
    """`--reports` and `--warmup`, the options of the report benches (alert path, notify)."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0] if doc else None)
    parser.add_argument("--reports", type=int, default=200, help="measured reports (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up reports (default 20)")
    return parser.parse_args(argv)


def report_body(i: int) -> dict[str, Any]:
    """REPORT titled `bench report i`, occurred now."""
    # Now, not a fixed date: an old one would make overdue deadlines remind at once.
    occurred = datetime.now(UTC).isoformat()
    return {**REPORT, "title": f"bench report {i}", "occurred_at": occurred}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def employee_token(data_dir: Path) -> str:
    """The demo employee's token, signed with the instance key `up` wrote into `data_dir`."""
    key = signing_key(Settings(data_dir=data_dir, secret_key=None))
    return issue_token(key, org_id=ORG, person_id="p-ansatt", name="Ali Ansatt", roles=["reporter"])


def leader_token(key: str, name: str = "Lise Nord") -> str:
    """Lise Nord's token (`p-ln`, role leader) in the demo organisation."""
    return issue_token(key, org_id=ORG, person_id="p-ln", name=name, roles=["leader"])


# ---------------------------------------------------------------- statistics and printing


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def markdown_table(
    header: Sequence[str], body: Sequence[Sequence[str]], left: int = 1, min_width: int = 0
) -> str:
    """A Markdown table: the first `left` columns left-aligned, the others right-aligned."""
    widths = [
        max(min_width, *(len(line[i]) for line in [header, *body])) for i in range(len(header))
    ]

    def line(cells: Sequence[str]) -> str:
        out = [
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(out) + " |"

    rule = ["-" * w if i < left else "-" * (w - 1) + ":" for i, w in enumerate(widths)]
    return "\n".join([line(header), line(rule), *(line(cells) for cells in body)])


@dataclass
class Row:
    """One timed path: its samples in ms and how many never arrived."""

    path: str
    samples_ms: list[float] = field(default_factory=list)
    lost: int = 0
    bold: bool = False

    def cells(self) -> list[str]:
        name = f"**{self.path}**" if self.bold else self.path
        n = str(len(self.samples_ms))
        if not self.samples_ms:
            return [name, n, "-", "-", "-", str(self.lost)]
        p50 = f"{percentile(self.samples_ms, 50):.2f}"
        p99 = f"{percentile(self.samples_ms, 99):.2f}"
        if self.bold:
            p50, p99 = f"**{p50}**", f"**{p99}**"
        return [name, n, p50, p99, f"{max(self.samples_ms):.2f}", str(self.lost)]


ROW_HEADER = ["path", "n", "p50 ms", "p99 ms", "max ms", "lost"]


def table(rows: Sequence[Row]) -> str:
    return markdown_table(ROW_HEADER, [row.cells() for row in rows])


# ---------------------------------------------------------------- the kriselogg subprocess


def kriselogg_executable() -> str:
    beside = Path(sys.executable).with_name("kriselogg")
    if beside.exists():
        return str(beside)
    found = shutil.which("kriselogg")
    if found is None:
        raise SystemExit("kriselogg is not installed in this environment")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the caller's KRISELOGG_* (an external NATS URL, a fixed key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRISELOGG_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def spawn(
    args: Sequence[str],
    env: Mapping[str, str],
    stdout: Path,
    stderr: Path,
    preexec_fn: Callable[[], object] | None = None,
) -> subprocess.Popen[bytes]:
    """`kriselogg <args>` in its own session, its output in files (one if stdout == stderr)."""
    with contextlib.ExitStack() as files:
        out = files.enter_context(stdout.open("wb"))
        err = out if stderr == stdout else files.enter_context(stderr.open("wb"))
        return subprocess.Popen(
            [kriselogg_executable(), *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env=env,
            start_new_session=True,  # our SIGINT is the only one it gets, and in our order
            preexec_fn=preexec_fn,
        )


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    base_url: str
    data_dir: Path


def start_up(workdir: Path, port: int, **env: str) -> Server:
    """`kriselogg up --data <workdir>/data --port <port>` with a clean environment plus `env`."""
    data_dir = workdir / "data"
    stdout, stderr = workdir / "stdout.log", workdir / "stderr.log"
    args = ["up", "--data", str(data_dir), "--port", str(port)]
    process = spawn(args, clean_env(**env), stdout, stderr)
    return Server(process, stdout, stderr, f"http://127.0.0.1:{port}", data_dir)


def stop_process(
    process: subprocess.Popen[bytes], name: str = "kriselogg", file: TextIO | None = None
) -> int:
    """SIGINT (what Ctrl-C sends; uvicorn's graceful shutdown), wait, then kill.

    A kill is noted on `file` (stdout if None).
    """
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            print(
                f"{name} did not stop on SIGINT within {STOP_SECONDS:.0f} s; killing it", file=file
            )
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def stop_server(server: Server) -> int:
    """SIGINT (`up` then stops uvicorn and its nats-server), then wait."""
    return stop_process(server.process, "kriselogg", file=sys.stderr)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def wait_for_ready_line(server: Server) -> str | None:
    """Wait for `kriselogg: ready on`; the embedded bus URL printed before it, if any."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"kriselogg exited at startup:\n{tail(server.stderr)}")
        out = server.stdout.read_text("utf-8", errors="replace")
        if READY_LINE in out:
            found = BUS_LINE.search(out)
            return found.group(1) if found else None
        await asyncio.sleep(0.05)
    raise RuntimeError(f"kriselogg printed no ready line in time:\n{tail(server.stderr)}")


async def wait_until_ready(
    client: httpx.AsyncClient, server: Server, name: str = "kriselogg"
) -> None:
    """Poll `/readyz` until 200; fail if the process exits or STARTUP_SECONDS pass."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{name} exited at startup:\n{tail(server.stderr)}")
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} was not ready in time:\n{tail(server.stderr)}")


@contextlib.contextmanager
def ready_process(
    args: Sequence[str],
    env: Mapping[str, str],
    name: str,
    stop_signal: int = signal.SIGINT,
    stop_seconds: float = STOP_SECONDS,
) -> Iterator[subprocess.Popen[str]]:
    """`kriselogg <args>`, its stdout on a pipe read up to the ready line; signalled at the end."""
    proc = subprocess.Popen(
        [kriselogg_executable(), *args], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(READY_LINE):
                break
        else:
            raise SystemExit(f"{name} exited with {proc.wait()}")
        yield proc
    finally:
        proc.send_signal(stop_signal)
        proc.wait(stop_seconds)


# ---------------------------------------------------------------- alert facts on NATS


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

    async def wait(self, incident: str, deadline: float) -> tuple[float, datetime] | None:
        """When the incident's leader alert was seen, or None if not by `deadline` (monotonic)."""
        if incident not in self.seen:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[incident] = waiter
            try:
                await asyncio.wait_for(waiter, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self._waiting.pop(incident, None)
                return None
        return self.seen[incident]


# ---------------------------------------------------------------- the raw nats-py floor


async def bench_stream(js: JetStreamContext, name: str, subjects: list[str]) -> None:
    """A fresh file-storage stream for the floor, as the KRISELOGG stream is stored."""
    await drop_stream(js, name)
    await js.add_stream(
        api.StreamConfig(
            name=name,
            subjects=subjects,
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,  # as the KRISELOGG stream
        )
    )


async def drop_stream(js: JetStreamContext, name: str) -> None:
    with contextlib.suppress(Exception):
        await js.delete_stream(name)


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


async def timed_pull(
    psub: JetStreamContext.PullSubscription,
    handle: Callable[[Msg], Awaitable[None]],
    send: Callable[[int], Awaitable[None]],
    arrived: dict[int, float],
    signal_of: dict[int, asyncio.Event],
    warmup: int,
    count: int,
    row: Row,
) -> None:
    """timed_sequence with `handle` pulling beside it; then the consumer stops, unsubscribed."""
    consumer = asyncio.create_task(pull_loop(psub, warmup + count, handle))
    try:
        await timed_sequence(send, arrived, signal_of, warmup, count, row)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await psub.unsubscribe()
