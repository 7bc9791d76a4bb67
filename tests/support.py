"""Test helpers: an in-process stack and ways to await what happens on the bus."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import socket
import threading
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
import uvicorn
from fastapi import FastAPI
from nats.aio.msg import Msg

from services.cli import SERVICES, build_app, connect_in_process, seed_demo
from services.gateway import Gateway
from shared.auth import issue_token, signing_key
from shared.clock import SYSTEM_CLOCK, Clock, ManualClock
from shared.settings import Settings

OSLO = ZoneInfo("Europe/Oslo")

# No `occurred_at`: the API takes the time of the report, so this report is "now" on any day
# the tests run. `Stack.report` gives one five minutes before the stack's clock.
REPORT = {
    "category": "vold-fysisk",
    "title": "Slått og truet av bruker under hjemmebesøk",
    "place": "Storgata 1, Tromsø",
    "unit_id": "u-nord",
    "affected": ["p-ansatt"],
    "severity": "high",
    "facts": {"injury": True, "serious_injury": False, "police_involved": False},
}


class BusWatcher:
    """Collects incident events from the stream so tests can await them instead of sleeping.

    An ordered JetStream consumer, not a core subscription: it resumes after a NATS restart
    without missing what was published while it was disconnected.
    """

    def __init__(self) -> None:
        self.by_incident: dict[str, list[dict[str, Any]]] = defaultdict(list)  # alerts only
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)  # every event
        self._changed = asyncio.Condition()
        self._nc: Any = None

    async def start(self, url: str, stream: str, subject: str) -> None:
        self._nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        seen: set[tuple[str, int]] = set()

        async def on_msg(msg: Msg) -> None:
            body = json.loads(msg.data)
            key = (body["incident_id"], body["seq"])
            async with self._changed:
                if key not in seen:
                    seen.add(key)
                    self.events[body["incident_id"]].append(body)
                    if body["type"] == "RecipientAlerted":
                        self.by_incident[body["incident_id"]].append(body)
                self._changed.notify_all()

        js = self._nc.jetstream()
        await js.subscribe(subject, stream=stream, cb=on_msg, ordered_consumer=True)

    async def stop(self) -> None:
        if self._nc is not None:
            await self._nc.close()

    async def wait_for(
        self, predicate: Callable[[dict[str, list[dict[str, Any]]]], bool], timeout: float = 20
    ) -> None:
        """Until `predicate(alerts by incident)` holds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self.by_incident))

    async def wait_for_events(
        self, predicate: Callable[[dict[str, list[dict[str, Any]]]], bool], timeout: float = 20
    ) -> None:
        """Until `predicate(every event by incident)` holds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self.events))


def minutes_ago(minutes: float, clock: Clock = SYSTEM_CLOCK) -> str:
    """An RFC 3339 time `minutes` before the clock's now, in Oslo time as a user would give it."""
    return (clock.now() - timedelta(minutes=minutes)).astimezone(OSLO).isoformat()


@dataclass
class Stack:
    settings: Settings
    apps: dict[str, FastAPI]
    client: httpx.AsyncClient
    alerts: BusWatcher
    tokens: dict[str, str] = field(default_factory=dict)
    clock: Clock = SYSTEM_CLOCK

    def auth(self, who: str = "leader") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def advance(self, delta: timedelta) -> None:
        """Move a ManualClock forward and let notify's timers look at it at once."""
        assert isinstance(self.clock, ManualClock), "advance() needs running_stack(clock=Manual…)"
        self.clock.advance(delta)
        if "notify" in self.apps:
            self.apps["notify"].state.dispatcher.wake()

    async def report(self, **overrides: Any) -> dict[str, Any]:
        report = {**REPORT, "occurred_at": minutes_ago(5, self.clock), **overrides}
        response = await self.client.post(
            "/api/v1/incidents", json=report, headers=self.auth("reporter")
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def settle(self, incident_id: str, alerts: int = 2, deadlines: int = 6) -> int:
        """Wait until notify's facts about a report are in its log; returns the log's length.

        The default REPORT (violence, a lesser injury) gets two alerts (nearest leader, safety
        rep, aml § 6-2) and six deadlines: aml § 5-1, ftrl § 13-14 and aml § 7-2 (a work injury,
        not serious, so no § 5-2), and the three routine duties.
        """

        def done(events: dict[str, list[dict[str, Any]]]) -> bool:
            kinds = [e["type"] for e in events[incident_id]]
            return kinds.count("RecipientAlerted") >= alerts and (
                kinds.count("DeadlineSet") >= deadlines
            )

        await self.alerts.wait_for_events(done)
        return int(max(e["seq"] for e in self.alerts.events[incident_id]))

    async def timeline(self, incident_id: str, **params: Any) -> dict[str, Any]:
        response = await self.client.get(
            f"/api/v1/incidents/{incident_id}/timeline", params=params, headers=self.auth()
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def demo_tokens(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> dict[str, str]:
    """Tokens issued at the stack's now: a token from the real clock would be expired (or not
    yet issued) for services whose clock the test has moved."""
    key = signing_key(settings)
    people = {
        "leader": ("demo", "p-ln", "Lise Nord", ["leader"]),
        "reporter": ("demo", "p-ansatt", "Ali Ansatt", ["reporter"]),
        "admin": ("demo", "p-admin", "Astrid Admin", ["admin"]),
        "other_org": ("other", "p-x", "Xavier Annen", ["leader", "admin"]),
    }
    return {
        who: issue_token(
            key, org_id=org, person_id=person, name=name, roles=roles, ttl=TOKEN_TTL, clock=clock
        )
        for who, (org, person, name, roles) in people.items()
    }


# Long enough for any test, including one whose ManualClock jumps weeks ahead.
TOKEN_TTL = timedelta(days=400)


def stack_settings(nats_url: str, data_dir: Path, **extra: Any) -> Settings:
    # A namespace per stack: tests never see each other's streams, even on a shared server.
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    return Settings(data_dir=data_dir, nats_url=nats_url, bus_namespace=namespace, **extra)


@contextlib.asynccontextmanager
async def running_stack(
    nats_url: str,
    data_dir: Path,
    services: tuple[str, ...] = SERVICES,
    clock: Clock = SYSTEM_CLOCK,
    clocks: dict[str, Clock] | None = None,
    **extra: Any,
) -> AsyncIterator[Stack]:
    """The services in this process behind the gateway; leave one out to run it as a process.

    `clock` is every service's now; `clocks` gives single services their own (hosts whose
    clocks differ). Tokens are issued by `clock`.
    """
    settings = stack_settings(nats_url, data_dir, **extra)
    apps = {name: build_app(name, settings, (clocks or {}).get(name, clock)) for name in services}
    connect_in_process(apps)
    if "notify" in apps:
        seed_demo(apps["notify"])
    gateway = Gateway(apps)
    watcher = BusWatcher()
    try:
        async with gateway.running():
            if "notify" in apps and "incidents" in apps:
                # The access rules need the demo organisation's units; notify shares them at start.
                await apps["incidents"].state.directory.wait_for("demo")
            await watcher.start(
                nats_url, settings.subjects.stream, settings.subjects.all_orgs("incident")
            )
            transport = httpx.ASGITransport(app=gateway)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://kriselogg"
            ) as client:
                yield Stack(settings, apps, client, watcher, demo_tokens(settings, clock), clock)
    finally:
        await watcher.stop()


def alerted_roles(events: list[dict[str, Any]]) -> list[str]:
    return sorted(e["data"]["role"] for e in events if e["type"] == "RecipientAlerted")


class MailSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives, to be awaited."""

    def __init__(self, port: int) -> None:
        from aiosmtpd.controller import Controller

        self.port = port
        self.messages: list[EmailMessage] = []
        self._changed = threading.Condition()
        self._controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()
        return "250 Message accepted for delivery"

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        with self._changed:
            return [m for m in self.messages if m["To"] == address]

    async def wait_for(
        self, predicate: Callable[[list[EmailMessage]], bool], timeout: float = 20
    ) -> list[EmailMessage]:
        def wait() -> list[EmailMessage]:
            with self._changed:
                if not self._changed.wait_for(lambda: predicate(self.messages), timeout):
                    got = [m["To"] for m in self.messages]
                    raise AssertionError(f"mail not received within {timeout}s; got {got}")
                return list(self.messages)

        return await asyncio.to_thread(wait)


class BrokenSmtp:
    """An SMTP server that is down: it greets every connection with 421 and hangs up.

    Each connection is an attempt by notify, so a test can await retries as events.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.connections = 0
        self._changed = asyncio.Condition()
        self._server: asyncio.AbstractServer | None = None
        self.silent = False  # True: accept and never answer (a hung server)
        self._writers: list[asyncio.StreamWriter] = []

    async def _on_connect(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self._changed:
            self.connections += 1
            self._changed.notify_all()
        if self.silent:
            self._writers.append(writer)
            return
        writer.write(b"421 127.0.0.1 Service not available, try again later\r\n")
        await writer.drain()
        writer.close()

    async def start(self) -> BrokenSmtp:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_for_connections(self, count: int, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.connections >= count)


class HttpSink:
    """A real HTTP server on loopback that records each POST (webhooks, an SMS gateway)."""

    def __init__(self, status: int = 200) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._changed = threading.Condition()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with sink._changed:
                    sink.requests.append((self.path, dict(self.headers.items()), body))
                    sink._changed.notify_all()
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    async def wait_for(self, count: int, timeout: float = 20) -> None:
        def wait() -> None:
            with self._changed:
                if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                    raise AssertionError(f"{len(self.requests)} of {count} requests arrived")

        await asyncio.to_thread(wait)


class ListeningServer(uvicorn.Server):
    """A uvicorn server in a test's background thread that says when it listens (or gave up),
    so the test waits on an event, not a clock."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.up.set()
