"""Issue 5 end to end: e-mail through a real SMTP server, escalation, acknowledgement, restarts.

Real nats-server, real aiosmtpd; notify runs in this process or, where it must be killed, as its
own `kriselogg serve notify` process.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.cli import demo_directory
from shared.auth import issue_token
from shared.infra import free_port
from tests.e2e.processes import start, stop, wait_until_ready
from tests.support import REPORT, BrokenSmtp, MailSink, Stack, running_stack

LEADER = "lise.nord@demo.example"  # nearest leader of u-nord
DEPUTY = "lars.nestleder@demo.example"  # her deputy
SAFETY_REP = "vera.verneombud@demo.example"  # u-nord's verneombud
NEXT_UP = "hanne.leder@demo.example"  # leader of the parent unit u-hjemme
SCHOOL = "ola.skoleleder@demo.example"  # leader of u-skole
TOP = "kari.direktor@demo.example"  # leader of the top unit
ESCALATION_SECONDS = 2


DAYS = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")
MONTHS = ("januar", "februar", "mars", "april", "mai", "juni", "juli", "august", "september",
          "oktober", "november", "desember")  # fmt: skip


def norwegian(moment: datetime) -> str:
    """'onsdag 25. november 2026 kl. 19.00': how a reader in Norway expects a time, in Oslo."""
    t = moment.astimezone(ZoneInfo("Europe/Oslo"))
    return f"{DAYS[t.weekday()]} {t.day}. {MONTHS[t.month - 1]} {t.year} kl. {t:%H.%M}"


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def ack_link(message: EmailMessage) -> str:
    found = re.search(r"https?://\S+/ack\?\S+", body(message))
    assert found, body(message)
    return found.group(0)


@pytest.fixture
async def alerting(nats_url: str, tmp_path: Path, mail: MailSink) -> AsyncIterator[Stack]:
    async with running_stack(
        nats_url,
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=mail.port,
        escalation_seconds=ESCALATION_SECONDS,
        public_url="http://kriselogg",
    ) as stack:
        yield stack


async def test_violence_report_is_mailed_escalated_and_acknowledged(
    alerting: Stack, mail: MailSink
) -> None:
    stack = alerting
    occurred = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=7)
    incident_id = (await stack.report(occurred_at=occurred.isoformat()))["id"]

    # The nearest present leader and the safety rep are e-mailed at once.
    await mail.wait_for(lambda m: {LEADER, SAFETY_REP} <= {x["To"] for x in m})
    first = mail.to(LEADER)[0]
    text = body(first)
    # What kind of incident and where; what the reporter wrote is read after logging in.
    # Category, unit, when (without the year) and what to do, before a phone cuts it off.
    year = f" {occurred.astimezone(ZoneInfo('Europe/Oslo')).year}"
    assert first["Subject"] == (
        "Varsel: Trusselsituasjoner: Fysisk vold mot ansatte, Hjemmetjenesten nord, "
        f"{norwegian(occurred).replace(year, '')} – bekreft at du har sett det"
    )
    assert str(REPORT["title"]) not in text
    assert "Hei Lise Nord" in text and "nærmeste leder" in text
    assert "Storgata 1, Tromsø" in text and "Hjemmetjenesten nord" in text  # where
    assert f"Når: {norwegian(occurred)}" in text  # when, in Oslo time
    assert "Meldt av: Ali Ansatt" in text  # who reported
    assert f"http://kriselogg/hendelser/{incident_id}" in text  # the portal page
    assert "neste leder" in text  # she is told what happens without an answer
    # The safety rep is escalated along her own track, to the main safety rep, not to leaders.
    assert "neste leder" not in body(mail.to(SAFETY_REP)[0])
    assert "hovedverneombudet" in body(mail.to(SAFETY_REP)[0])

    # Replacing the directory does not lose the alerts in flight.
    put = await stack.client.put(
        "/api/v1/directory", json=demo_directory(), headers=stack.auth("admin")
    )
    assert put.status_code == 200

    # Nobody answers: after the window the deputy is e-mailed.
    await mail.wait_for(lambda m: DEPUTY in {x["To"] for x in m}, timeout=ESCALATION_SECONDS + 15)
    deputy_mail = mail.to(DEPUTY)[0]
    assert "stedfortreder" in body(deputy_mail)
    # The story below is told in log order: let notify record the delivery it just made before
    # the deputy answers (a tap within milliseconds of the SMTP accept could be logged first).
    await stack.alerts.wait_for_events(
        lambda seen: any(
            e["type"] == "RecipientAlerted" and e["data"]["recipient"]["id"] == "p-ln2"
            for e in seen[incident_id]
        )
    )

    # The deputy acknowledges with the signed link: the GET only shows a button ...
    link = ack_link(deputy_mail).replace("http://kriselogg", "")
    page = await stack.client.get(link)
    assert page.status_code == 200 and "<button" in page.text
    path, query = link.split("?", 1)
    params = dict(p.split("=", 1) for p in query.split("&"))
    alerts = await stack.client.get(
        "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
    )
    deputy_alert = next(a for a in alerts.json() if a["person_id"] == "p-ln2")
    assert deputy_alert["acknowledged_at"] is None  # ... opening the link changed nothing
    # ... and the button acknowledges.
    done = await stack.client.post(f"{path}-link", data=params)
    assert done.status_code == 200 and "bekreftet" in done.text
    # Tapped again (or the form replayed, or opened again): single use, the first
    # acknowledgement stands, and each use is kept with how and when.
    again = await stack.client.post(f"{path}-link", data=params)
    assert again.status_code == 200 and "Lenken er allerede brukt" in again.text
    reopened = await stack.client.get(link)
    assert "Lenken er allerede brukt" in reopened.text and "<button" not in reopened.text
    alerts = await stack.client.get(
        "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
    )
    uses = next(a for a in alerts.json() if a["person_id"] == "p-ln2")["ack_log"]
    assert [(u["via"], u["outcome"]) for u in uses] == [
        ("lenke", "acknowledged"),
        ("lenke", "already_acknowledged"),
    ]
    # An altered link is refused with a page a tired person understands, in Norwegian.
    altered = await stack.client.get(link.replace(params["sig"], params["sig"][::-1]))
    assert altered.status_code == 404 and "Lenken virker ikke" in altered.text
    forged = await stack.client.post(f"{path}-link", data={**params, "expires": "9999999999"})
    assert forged.status_code == 404 and "<button" not in forged.text

    # Nobody else is alerted after that. A second incident, reported now, escalates after one
    # window; by the time its escalation arrives, the first incident's would have too.
    second = (await stack.report(unit_id="u-skole", affected=[]))["id"]
    await mail.wait_for(lambda m: TOP in {x["To"] for x in m}, timeout=ESCALATION_SECONDS + 15)
    assert mail.to(NEXT_UP) == []
    listed = (
        await stack.client.get(
            "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
        )
    ).json()
    # The safety rep's own track went on to the main safety rep (nobody in it answered).
    assert sorted(a["person_id"] for a in listed if a["kind"] == "alert") == [
        "p-hvo", "p-ln", "p-ln2", "p-vo",
    ]  # fmt: skip
    assert all(a["escalate_at"] is None for a in listed)

    # All of it is in the incident's log.
    await stack.alerts.wait_for_events(
        lambda seen: "AlertAcknowledged" in {e["type"] for e in seen[incident_id]}
    )
    events = (await stack.timeline(incident_id))["events"]
    story = [
        (e["type"], e["data"].get("recipient", {}).get("id"))
        for e in events
        if e["type"] in ("RecipientAlerted", "AlertEscalated", "AlertAcknowledged")
    ]
    assert sorted(story[:2]) == [("RecipientAlerted", "p-ln"), ("RecipientAlerted", "p-vo")]
    leaders = [(kind, who) for kind, who in story[2:] if who in ("p-ln", "p-ln2")]
    assert leaders == [
        ("AlertEscalated", "p-ln"),
        ("RecipientAlerted", "p-ln2"),
        ("AlertAcknowledged", "p-ln2"),
    ]
    reps = [(kind, who) for kind, who in story[2:] if who in ("p-vo", "p-hvo")]
    assert reps[:2] == [("AlertEscalated", "p-vo"), ("RecipientAlerted", "p-hvo")]
    escalated = next(e for e in events if e["type"] == "AlertEscalated")
    assert "Ingen bekreftelse" in escalated["data"]["reason"]
    acknowledged = next(e for e in events if e["type"] == "AlertAcknowledged")
    assert acknowledged["data"]["via"] == "lenke"  # the log says how, not only when
    deadlines = [e["data"] for e in events if e["type"] == "DeadlineSet"]
    kinds = {d["deadline_id"]: d["kind"] for d in deadlines}
    assert kinds == {
        "aml-5-1": "law",
        "ftrl-13-14": "law",
        "aml-7-2": "law",
        "hovedverneombud-varslet": "routine",
        "oppfolging-en-uke": "routine",
        "oppfolging-en-maned": "routine",
    }
    assert second != incident_id


async def test_acknowledging_takes_the_recipient_and_happens_once(
    alerting: Stack, mail: MailSink
) -> None:
    stack = alerting
    incident_id = (await stack.report())["id"]
    await mail.wait_for(lambda m: LEADER in {x["To"] for x in m})
    alerts = (
        await stack.client.get(
            "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
        )
    ).json()
    leader_alert = next(a for a in alerts if a["person_id"] == "p-ln")["id"]
    url = f"/api/v1/alerts/{leader_alert}/ack"

    assert (await stack.client.post(url, headers=stack.auth("reporter"))).status_code == 403
    assert (await stack.client.post(url, headers=stack.auth("other_org"))).status_code == 404
    assert (await stack.client.post(url)).status_code == 401
    first = await stack.client.post(url, headers=stack.auth("leader"))
    assert first.status_code == 200 and first.json()["status"] == "acknowledged"
    again = await stack.client.post(url, headers=stack.auth("leader"))
    assert again.json()["acknowledged_at"] == first.json()["acknowledged_at"]

    forged = await stack.client.get(f"{url}?expires=9999999999&sig=forged")
    assert forged.status_code == 404
    expired = ack_link(mail.to(LEADER)[0]).replace("http://kriselogg", "")
    expired = re.sub(r"expires=\d+", "expires=1000", expired)
    assert (await stack.client.get(expired)).status_code == 404

    await stack.alerts.wait_for_events(
        lambda seen: "AlertAcknowledged" in {e["type"] for e in seen[incident_id]}
    )
    events = (await stack.timeline(incident_id))["events"]
    assert [e["type"] for e in events].count("AlertAcknowledged") == 1


async def test_smtp_down_is_retried_and_delivered_when_it_is_back(
    nats_url: str, tmp_path: Path
) -> None:
    port = free_port()
    down = await BrokenSmtp(port).start()
    async with running_stack(
        nats_url,
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=port,
        delivery_backoff_seconds=[0.2, 0.4],
        escalation_seconds=600,
    ) as stack:
        incident_id = (await stack.report())["id"]
        # Two recipients, each tried at least three times while the server is down.
        await down.wait_for_connections(6)
        # While it is down, the alerts say so: failed, with the server's reason, not "sent".
        during = (
            await stack.client.get(
                "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
            )
        ).json()
        assert {a["delivery"] for a in during if a["kind"] == "alert"} == {"failed"}
        await down.stop()
        mail = MailSink(port).start()
        try:
            await mail.wait_for(lambda m: {LEADER, SAFETY_REP} <= {x["To"] for x in m})
            await stack.settle(incident_id)
            listed = (
                await stack.client.get(
                    "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
                )
            ).json()
        finally:
            mail.stop()
    assert len(mail.to(LEADER)) == 1 and len(mail.to(SAFETY_REP)) == 1
    for alert in (a for a in listed if a["kind"] == "alert"):
        log = alert["attempt_log"]
        assert [a["outcome"] for a in log][-1] == "delivered"
        assert {a["outcome"] for a in log[:-1]} == {"failed"} and len(log) >= 3
        assert all("421" in a["error"] or "Service not available" in a["error"] for a in log[:-1])
        assert alert["status"] == "sent" and alert["attempts"] == len(log)
        assert alert["delivery"] == "sent"


async def test_notify_killed_before_delivering_sends_exactly_one_mail_each(
    nats_url: str, tmp_path: Path
) -> None:
    """SIGKILL notify while it delivers (the SMTP server hangs), restart it: one e-mail each."""
    port = free_port()
    hung = BrokenSmtp(port)
    hung.silent = True
    await hung.start()
    notify_port = free_port()
    async with running_stack(
        nats_url, tmp_path, services=("content", "incidents", "documents")
    ) as stack:
        key = stack.settings.secret_key or ""
        env = {
            "KRISELOGG_NATS_URL": nats_url,
            "KRISELOGG_SECRET_KEY": key,
            "KRISELOGG_BUS_NAMESPACE": stack.settings.bus_namespace,
            "KRISELOGG_DATA_DIR": str(tmp_path / "notify-process"),
            "KRISELOGG_SMTP_HOST": "127.0.0.1",
            "KRISELOGG_SMTP_PORT": str(port),
            "KRISELOGG_DELIVERY_TIMEOUT_SECONDS": "30",
            "KRISELOGG_ESCALATION_SECONDS": "600",
        }
        url = f"http://127.0.0.1:{notify_port}"

        async def run_notify(log: str) -> Any:
            proc = start(["serve", "notify", "--port", str(notify_port)], env, tmp_path / log)
            await asyncio.to_thread(wait_until_ready, [proc], [f"{url}/readyz"], 30)
            return proc

        proc = await run_notify("notify-1.log")
        try:
            admin = issue_token(key, org_id="demo", person_id="p-admin", name="A", roles=["admin"])
            async with httpx.AsyncClient(timeout=10) as client:
                put = await client.put(
                    f"{url}/api/v1/directory",
                    json=demo_directory(),
                    headers={"Authorization": f"Bearer {admin}"},
                )
                assert put.status_code == 200, put.text
            incident_id = (await stack.report())["id"]
            # Both deliveries have started and hang in the SMTP greeting: kill notify there.
            await hung.wait_for_connections(2)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            await hung.stop()
            mail = MailSink(port).start()
            try:
                proc = await run_notify("notify-2.log")
                await mail.wait_for(lambda m: {LEADER, SAFETY_REP} <= {x["To"] for x in m})
                # Once both facts are in the log, every delivery attempt has been recorded.
                await stack.settle(incident_id)
            finally:
                mail.stop()
        finally:
            stop(proc)
    # The reporter's receipt (issue 15) is not an alert, and may or may not have gone yet.
    alerted = [m["To"] for m in mail.messages if m["To"] != "ali.ansatt@demo.example"]
    assert sorted(alerted) == sorted([LEADER, SAFETY_REP])
    # Each is the resend of the attempt that hung when notify died, and says so: the same
    # Message-ID that attempt had, so a mail system or reader can tell a repeat.
    resent = [m for m in mail.messages if m["To"] in (LEADER, SAFETY_REP)]
    assert [m["Message-ID"] for m in resent] == [
        f"<{m['X-Kriselogg-Alert']}.1@kriselogg>" for m in resent
    ]


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # The separate notify process must sign and verify with the same key as this process.
    monkeypatch.setenv("KRISELOGG_SECRET_KEY", secrets.token_urlsafe(32))
