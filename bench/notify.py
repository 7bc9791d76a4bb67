"""Alert to e-mail benchmark: report accepted -> e-mail accepted by an SMTP sink.

Starts a real SMTP sink in this process (aiosmtpd on a loopback port), then `kriselogg up` as a
subprocess (embedded nats-server, the four services and the gateway on one loopback port) with
KRISELOGG_SMTP_HOST/PORT pointing at the sink and KRISELOGG_ESCALATION_SECONDS=3600, so no
escalation e-mail comes during the run. It posts reports one at a time as the demo employee and
times each from just before the HTTP POST is sent to (a) the HTTP 201, (b) the sink receiving the
whole DATA of the nearest leader's e-mail (lise.nord@demo.example), (c) of the safety
representative's (vera.verneombud@demo.example) and (d) the incident page the e-mail's link
points at, fetched as the logged-in leader and answered 200 with the incident on it. E-mails
are matched to incidents by the link `.../hendelser/<id>` in their body, to recipients by `To`.
It also notes when the leader's `RecipientAlerted` fact is seen on NATS (notify publishes it
after the e-mail was handed over).

Beside it, in the same run: raw nats-py JetStream publish with ack -> durable pull consumer
(fetch 1) -> ack on the same nats-server (stream BENCHN, subjects benchn.>), and aiosmtplib.send
of a similar message to the same sink, so the reader sees what the bus and SMTP cost alone.

Run from the repository root:  /work/venv/bin/python bench/notify.py
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import nats
from aiosmtpd.controller import Controller
from common import (
    ALERT_SUBJECT,
    FLOOR_TIMEOUT_SECONDS,
    AlertWatcher,
    Row,
    Server,
    bearer,
    bench_stream,
    drop_stream,
    employee_token,
    leader_token,
    report_body,
    report_options,
    start_up,
    stop_server,
    table,
    tail,
    timed_pull,
    wait_for_ready_line,
    wait_until_ready,
)
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from services.content.sessions import SESSION_COOKIE
from services.content.store import LocalStore
from shared.auth import signing_key
from shared.infra import EmbeddedNats, free_port
from shared.settings import Settings

LEADER = "lise.nord@demo.example"
SAFETY_REP = "vera.verneombud@demo.example"
INCIDENT_LINK = re.compile(r"/hendelser/([A-Za-z0-9_-]+)")
BENCH_STREAM = "BENCHN"
MAIL_TIMEOUT_SECONDS = 15.0
ESCALATION_SECONDS = 3600
SETTLE_SECONDS = 1.0  # after the last report, for late duplicates or stray e-mails


# ---------------------------------------------------------------- the SMTP sink


@dataclass(frozen=True)
class Mail:
    """One message as the sink received it."""

    at: float  # time.perf_counter() when the whole DATA had arrived
    to: str
    alert_id: str
    incident_id: str
    subject: str


class Sink:
    """aiosmtpd handler: records when each message's DATA arrived, parsed, for the bench's loop.

    aiosmtpd runs it in its own thread and event loop; each parsed message is handed to the
    bench's loop with call_soon_threadsafe, so all bookkeeping happens in one thread.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.mails: list[Mail] = []
        self.unparsed = 0
        self._by_key: dict[tuple[str, str], Mail] = {}  # (incident or floor id, to) -> first
        self._waiting: dict[tuple[str, str], asyncio.Future[Mail]] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.perf_counter()
        raw: bytes = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        to = str(message.get("To") or ",".join(envelope.rcpt_tos)).strip().lower()
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if isinstance(body, EmailMessage) else ""
        found = INCIDENT_LINK.search(text)
        if found is None:
            self.loop.call_soon_threadsafe(self._unparsed)
        else:
            mail = Mail(
                at=now,
                to=to,
                alert_id=str(message.get("X-Kriselogg-Alert") or ""),
                incident_id=found.group(1),
                subject=str(message.get("Subject") or ""),
            )
            self.loop.call_soon_threadsafe(self._arrived, mail)
        return "250 Message accepted for delivery"

    def _unparsed(self) -> None:
        self.unparsed += 1

    def _arrived(self, mail: Mail) -> None:
        self.mails.append(mail)
        key = (mail.incident_id, mail.to)
        self._by_key.setdefault(key, mail)
        waiter = self._waiting.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(self._by_key[key])

    async def wait(self, incident: str, to: str, deadline: float) -> Mail | None:
        """The first e-mail for (incident, to), or None if none came by `deadline` (monotonic)."""
        key = (incident, to)
        if key in self._by_key:
            return self._by_key[key]
        waiter: asyncio.Future[Mail] = self.loop.create_future()
        self._waiting[key] = waiter
        try:
            return await asyncio.wait_for(waiter, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            self._waiting.pop(key, None)
            return None


@contextlib.contextmanager
def smtp_sink(sink: Sink, port: int) -> Iterator[Any]:
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


# ---------------------------------------------------------------- the kriselogg subprocess


def start_server(workdir: Path, port: int, smtp_port: int) -> Server:
    """`kriselogg up`, its e-mail to the sink, no escalation during the run."""
    return start_up(
        workdir,
        port,
        KRISELOGG_SMTP_HOST="127.0.0.1",
        KRISELOGG_SMTP_PORT=str(smtp_port),
        KRISELOGG_ESCALATION_SECONDS=str(ESCALATION_SECONDS),
    )


# ---------------------------------------------------------------- report -> e-mail


@dataclass
class MailResult:
    accepted: Row
    leader: Row
    safety_rep: Row
    fact: Row
    page: Row
    incidents: list[str]


def portal_session(data_dir: Path, jwt: str) -> dict[str, str]:
    """The leader's browser after the login: a portal session in the instance's content store
    (services.content.sessions), its cookie as the header."""
    store = LocalStore(data_dir / "content" / "content.sqlite")
    try:
        session = store.open_session(jwt, time.time() + 12 * 3600)
    finally:
        store.close()
    return {"Cookie": f"{SESSION_COOKIE}={session}"}


async def report_to_mail(
    client: httpx.AsyncClient,
    nc: NatsClient | None,
    sink: Sink,
    token: str,
    portal: dict[str, str],
    warmup: int,
    count: int,
) -> MailResult:
    facts = AlertWatcher()
    sub = await nc.subscribe(ALERT_SUBJECT, cb=facts.on_message) if nc is not None else None
    if nc is not None:
        await nc.flush()
    headers = bearer(token)
    result = MailResult(
        accepted=Row("report accepted (HTTP POST -> 201)"),
        leader=Row("report sent -> leader's e-mail DATA at the sink", bold=True),
        safety_rep=Row("report sent -> safety rep's e-mail DATA at the sink"),
        fact=Row("report sent -> leader's RecipientAlerted fact on NATS"),
        page=Row("report sent -> e-mail -> its link followed -> incident page (200)", bold=True),
        incidents=[],
    )
    try:
        for i in range(warmup + count):
            body = report_body(i)
            t0 = time.perf_counter()
            deadline = time.monotonic() + MAIL_TIMEOUT_SECONDS
            response = await client.post("/api/v1/incidents", json=body, headers=headers)
            t1 = time.perf_counter()
            if response.status_code != 201:
                raise RuntimeError(f"report {i}: HTTP {response.status_code} {response.text}")
            incident = str(response.json()["id"])
            result.incidents.append(incident)
            leader, rep = await asyncio.gather(
                sink.wait(incident, LEADER, deadline), sink.wait(incident, SAFETY_REP, deadline)
            )
            fact = await facts.wait(incident, deadline) if sub is not None else None
            opened = None
            if leader is not None:
                page = await client.get(f"/hendelser/{leader.incident_id}", headers=portal)
                if page.status_code == 200 and "incident-title" in page.text:
                    opened = time.perf_counter()
            if i < warmup:
                continue
            if opened is None:
                result.page.lost += 1
            else:
                result.page.samples_ms.append((opened - t0) * 1000)
            result.accepted.samples_ms.append((t1 - t0) * 1000)
            for row, mail in ((result.leader, leader), (result.safety_rep, rep)):
                if mail is None:
                    row.lost += 1
                else:
                    row.samples_ms.append((mail.at - t0) * 1000)
            if sub is not None:
                if fact is None:
                    result.fact.lost += 1
                else:
                    result.fact.samples_ms.append((fact[0] - t0) * 1000)
    finally:
        if sub is not None:
            await sub.unsubscribe()
    return result


# ---------------------------------------------------------------- the floors


async def floor_nats_pull(nc: NatsClient, warmup: int, count: int) -> Row:
    """js.publish (awaiting the stream's ack) -> durable pull consumer, fetch(1) -> ack."""
    row = Row("floor: js.publish with ack -> durable pull (fetch 1) -> ack")
    js = nc.jetstream()
    await bench_stream(js, BENCH_STREAM, ["benchn.>"])
    arrived: dict[int, float] = {}
    signal_of: dict[int, asyncio.Event] = {}
    psub = await js.pull_subscribe("benchn.pull", durable="benchn-pull", stream=BENCH_STREAM)

    async def handle(msg: Msg) -> None:
        i = int(msg.data)
        arrived[i] = time.perf_counter()
        await msg.ack()
        event = signal_of.get(i)
        if event is not None:
            event.set()

    async def send(i: int) -> None:
        await js.publish("benchn.pull", str(i).encode())

    try:
        await timed_pull(psub, handle, send, arrived, signal_of, warmup, count, row)
    finally:
        await drop_stream(js, BENCH_STREAM)
    return row


def floor_message(i: int) -> EmailMessage:
    """About the size and shape of an alert e-mail (Norwegian text, same headers)."""
    incident = f"floor-{i}"
    message = EmailMessage()
    message["From"] = "kriselogg@localhost"
    message["To"] = LEADER
    message["Subject"] = f"Varsel fra kriselogg: bench report {i}"
    message["Message-ID"] = f"<{incident}.alert@kriselogg>"
    message["X-Kriselogg-Alert"] = incident
    lines = [
        "Hei Lise Nord,",
        "",
        "Det er meldt en hendelse som du skal følge opp som nærmeste leder.",
        "",
        f"Hva: bench report {i}",
        "Alvorlighet: høy",
        "Hvor: ikke oppgitt (Enhet Nord)",
        "Når: onsdag 25. november 2026 kl. 19.00",
        "Meldt av: Ali Ansatt, onsdag 25. november 2026 kl. 19.00",
        "",
        f"Åpne hendelsen: http://127.0.0.1:8000/hendelser/{incident}",
        "Bekreft at du har mottatt varselet: http://127.0.0.1:8000/api/v1/alerts/"
        f"{incident}/ack?expires=1800000000&sig=" + "x" * 43,
        "",
        "Bekrefter du ikke innen 60 minutter, varsles neste leder.",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


async def floor_smtp(sink: Sink, port: int, warmup: int, count: int) -> tuple[Row, Row]:
    """aiosmtplib.send as notify calls it (a new connection each time) to the same sink."""
    arrived = Row("floor: aiosmtplib.send -> DATA at the sink")
    returned = Row("floor: aiosmtplib.send, whole call (to QUIT)")
    for i in range(warmup + count):
        message = floor_message(i)
        t0 = time.perf_counter()
        try:
            await aiosmtplib.send(
                message, hostname="127.0.0.1", port=port, timeout=FLOOR_TIMEOUT_SECONDS
            )
        except (OSError, TimeoutError, aiosmtplib.SMTPException):
            if i >= warmup:
                arrived.lost += 1
                returned.lost += 1
            continue
        t1 = time.perf_counter()
        mail = await sink.wait(f"floor-{i}", LEADER, time.monotonic() + FLOOR_TIMEOUT_SECONDS)
        if i < warmup:
            continue
        returned.samples_ms.append((t1 - t0) * 1000)
        if mail is None:
            arrived.lost += 1
        else:
            arrived.samples_ms.append((mail.at - t0) * 1000)
    return arrived, returned


# ---------------------------------------------------------------- main


@dataclass
class Outcome:
    rows: list[Row]
    notes: list[str]


def stray_mails(sink: Sink, incidents: Sequence[str]) -> list[str]:
    """Anything but exactly one alert e-mail to each of the two recipients per report."""
    notes: list[str] = []
    mine = set(incidents)
    per_key: dict[tuple[str, str], int] = {}
    others: dict[str, int] = {}
    for mail in sink.mails:
        if mail.incident_id.startswith("floor-"):
            continue
        if mail.incident_id not in mine:
            others["unknown incident"] = others.get("unknown incident", 0) + 1
        elif mail.to not in (LEADER, SAFETY_REP):
            others[f"to {mail.to}"] = others.get(f"to {mail.to}", 0) + 1
        elif not mail.subject.startswith("Varsel: "):  # an alert, not a receipt or reminder
            others[f"'{mail.subject[:40]}'"] = others.get(f"'{mail.subject[:40]}'", 0) + 1
        else:
            key = (mail.incident_id, mail.to)
            per_key[key] = per_key.get(key, 0) + 1
    duplicates = sum(n - 1 for n in per_key.values() if n > 1)
    notes.append(
        f"the sink got {sum(per_key.values())} alert e-mails for {len(incidents)} reports "
        f"(warm-up included) to the leader and the safety rep, {sum(others.values())} other"
    )
    if duplicates:
        notes.append(f"{duplicates} duplicate alert e-mail(s) (same incident and recipient)")
    for what, n in sorted(others.items()):
        notes.append(f"{n} other e-mail(s): {what}")
    if sink.unparsed:
        notes.append(f"{sink.unparsed} e-mail(s) without an incident link")
    return notes


async def run(workdir: Path, warmup: int, count: int) -> Outcome:
    loop = asyncio.get_running_loop()
    sink = Sink(loop)
    smtp_port = free_port()
    notes: list[str] = []
    with smtp_sink(sink, smtp_port):
        server = start_server(workdir, free_port(), smtp_port)
        try:
            bus_url = await wait_for_ready_line(server)
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0) as client:
                await wait_until_ready(client, server)
                # `up` has written the instance key by now; sign as the demo employee with it.
                token = employee_token(server.data_dir)
                nc = None
                if bus_url is not None:
                    nc = await nats.connect(bus_url, name="kriselogg-bench", allow_reconnect=False)
                try:
                    key = signing_key(Settings(data_dir=server.data_dir, secret_key=None))
                    # The leader follows the link logged in, as after the login.
                    portal = portal_session(server.data_dir, leader_token(key))
                    mails = await report_to_mail(client, nc, sink, token, portal, warmup, count)
                    await asyncio.sleep(SETTLE_SECONDS)
                    notes += stray_mails(sink, mails.incidents)
                    smtp_arrived, smtp_returned = await floor_smtp(sink, smtp_port, warmup, count)
                    if nc is not None:
                        nats_floor = await floor_nats_pull(nc, warmup, count)
                    else:
                        notes.append(
                            "the `up` output named no bus URL: the NATS floor ran on an "
                            "EmbeddedNats of its own, and the fact row is empty"
                        )
                        with EmbeddedNats(store_dir=workdir / "floor-nats") as own:
                            floor_nc = await nats.connect(own.url, allow_reconnect=False)
                            try:
                                nats_floor = await floor_nats_pull(floor_nc, warmup, count)
                            finally:
                                await floor_nc.close()
                finally:
                    if nc is not None:
                        await nc.close()
        finally:
            code = await asyncio.to_thread(stop_server, server)
            if code not in (0, -signal.SIGINT):
                notes.append(f"kriselogg exited with {code}:\n{tail(server.stderr)}")
        if mails.leader.lost or mails.safety_rep.lost:
            notes.append(f"notify's log (last lines of `up` output):\n{tail(server.stderr, 40)}")
    rows = [
        mails.accepted,
        mails.leader,
        mails.safety_rep,
        mails.fact,
        mails.page,
        smtp_arrived,
        smtp_returned,
        nats_floor,
    ]
    return Outcome(rows, notes)


def main(argv: Sequence[str] | None = None) -> int:
    args = report_options(__doc__, argv)

    with tempfile.TemporaryDirectory(prefix="kriselogg-bench-") as tmp:
        outcome = asyncio.run(run(Path(tmp), args.warmup, args.reports))
    print(
        f"Alert to e-mail, {args.reports} sequential reports after {args.warmup} warm-up, "
        f"loopback, {os.cpu_count()} cores, SMTP sink (aiosmtpd) in the bench process"
    )
    print(table(outcome.rows))
    print("Budget: report accepted -> nearest leader's alert handed to the channel")
    print("p50 <= 50 ms, p99 <= 250 ms.")
    for note in outcome.notes:
        print(f"note: {note}")
    mail_rows = outcome.rows[1:3]
    return 1 if any(row.lost for row in mail_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
