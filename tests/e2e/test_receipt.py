"""Issue 15, item 6: the reporter's receipt, as an employee meets it.

The whole stack in this process on a real NATS and a real SMTP sink, served over HTTP to
Debian's chromium: the employee reports in the portal, lands on the receipt, sees the nearest
leader alerted by e-mail; the leader acknowledges and the open page shows it without a reload.
The receipt e-mail reaches the employee after the alerts, with who was alerted and how and
nothing of what happened; its link opens the receipt (after the login). Without JavaScript the
page works too, and another employee may not see it. Time is the stack's (a frozen clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.async_api import BrowserContext, async_playwright, expect

from services.content.sessions import SESSION_COOKIE
from services.gateway import Gateway
from shared.auth import issue_token, signing_key
from shared.clock import ManualClock
from shared.infra import free_port
from tests.e2e.portal_client import open_session
from tests.e2e.test_portal import CHROMIUM_ARGS, PHONE, Browser, chromium
from tests.support import TOKEN_TTL, ListeningServer, MailSink, Stack, running_stack

__all__ = ["chromium"]  # the fixture, shared with the portal's browser tests

REPORTER = "ali.ansatt@demo.example"
LEADER = "lise.nord@demo.example"
TITLE = "Truet av pårørende i gangen"
DESCRIPTION = "Han sa at han visste hvor jeg bor, og at jeg har vært sykmeldt"


@contextlib.asynccontextmanager
async def served(stack: Stack, port: int) -> AsyncIterator[str]:
    """The stack's one origin over HTTP on this loop, for the browser; yields its base URL."""
    config = uvicorn.Config(
        Gateway(stack.apps),
        host="127.0.0.1",
        port=port,
        lifespan="off",  # running_stack runs the lifespans
        log_level="warning",
        access_log=False,
        log_config=None,
    )
    server = ListeningServer(config)
    task = asyncio.create_task(server.serve())
    try:
        await asyncio.to_thread(server.up.wait, 10)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def logged_in(context: BrowserContext, stack: Stack, base: str, token: str) -> None:
    """The browser logged in as the holder of `token`: a portal session, as the login opens."""
    session = open_session(stack.settings.data_dir, signing_key(stack.settings), token, stack.clock)
    await context.add_cookies([{"name": SESSION_COOKIE, "value": session, "url": base}])


def plain(message: Any) -> str:
    return str(message.get_body(("plain",)).get_content())


async def test_the_reporter_sees_who_was_alerted_live_and_gets_the_receipt_by_e_mail(
    chromium: Path, nats_url: str, tmp_path: Path, mail: MailSink
) -> None:
    port = free_port()
    async with (
        running_stack(
            nats_url,
            tmp_path,
            clock=ManualClock(datetime.now(UTC)),
            smtp_host="127.0.0.1",
            smtp_port=mail.port,
            public_url=f"http://127.0.0.1:{port}",
        ) as stack,
        served(stack, port) as base,
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        employee = await browser.new_context(viewport=PHONE, locale="nb-NO")
        await logged_in(employee, stack, base, stack.tokens["reporter"])
        page = await employee.new_page()
        checked = Browser(page, base)

        # The employee reports on the phone and lands on the receipt.
        await page.goto(f"{base}/meld?kategori=vold-fysisk")
        await page.get_by_label("Hva skjedde?").fill(TITLE)
        await page.get_by_label("Mer om hendelsen (valgfritt)").fill(DESCRIPTION)
        await page.get_by_test_id("report-submit").click()
        await page.wait_for_url(re.compile(r"/hendelser/[0-9a-f-]{36}/kvittering$"))
        incident_id = page.url.split("/")[-2]
        await expect(page.get_by_role("heading", level=1)).to_have_text("Meldingen er sendt")

        # The nearest leader, alerted by e-mail: the page fills in by itself.
        leader = page.locator("[data-testid=receipt-alert][data-role=nearest_leader]")
        await expect(leader).to_contain_text("Lise Nord", timeout=20_000)
        await expect(leader.get_by_test_id("receipt-delivery")).to_have_text(
            "Sendt", timeout=20_000
        )
        await expect(leader.get_by_test_id("receipt-channels")).to_contain_text("E-post")
        await expect(leader.get_by_test_id("receipt-ack")).to_have_text("Ikke bekreftet ennå")
        assert TITLE not in await page.content() and DESCRIPTION not in await page.content()
        await checked.check("kvittering", screenshots=False)

        # The leader acknowledges (with her token): the open page shows it, not reloaded.
        await page.evaluate("window.notReloaded = true")
        await stack.alerts.wait_for(lambda seen: len(seen[incident_id]) >= 2)
        alert_id = next(
            e["data"]["alert_id"]
            for e in stack.alerts.by_incident[incident_id]
            if e["data"]["recipient"]["id"] == "p-ln"
        )
        acked = await stack.client.post(f"/api/v1/alerts/{alert_id}/ack", headers=stack.auth())
        assert acked.status_code == 200, acked.text
        await expect(leader).to_have_attribute("data-acknowledged", "true", timeout=15_000)
        await expect(leader.get_by_test_id("receipt-ack")).to_contain_text("Bekreftet")
        await expect(page.get_by_test_id("receipt")).to_have_attribute("data-acknowledged", "true")
        assert await page.evaluate("window.notReloaded === true")
        # Once acknowledged the page stops asking.
        assert await page.get_by_test_id("receipt").get_attribute("hx-trigger") is None
        await checked.check("kvittering-bekreftet", screenshots=False)

        # The receipt e-mail: after the leader's alert, who was alerted and how, the link to
        # the receipt, and nothing of what happened.
        await mail.wait_for(lambda m: any(x["To"] == REPORTER for x in m))
        order = [m["To"] for m in mail.messages]
        assert order.index(LEADER) < order.index(REPORTER), order
        (receipt,) = mail.to(REPORTER)
        text = plain(receipt)
        subject = str(receipt["Subject"])
        assert "Kvittering" in subject
        assert "Nærmeste leder Lise Nord: Sendt på e-post" in text, text
        assert "Verneombud Vera Verneombud: Sendt på e-post" in text, text
        for secret in (TITLE, DESCRIPTION, "sykmeldt", LEADER, "/ack?"):
            assert secret not in text and secret not in subject, secret
        link = f"{base}/hendelser/{incident_id}/kvittering"
        assert link in re.findall(r"https?://\S+", text)

        # The link opens the receipt: the login first, then straight back to it.
        fresh = await browser.new_context(viewport=PHONE, locale="nb-NO")
        tapped = await fresh.new_page()
        await tapped.goto(link)
        await tapped.wait_for_url(re.compile(r"/logg-inn\?neste=%2Fhendelser%2F.+%2Fkvittering"))
        await logged_in(fresh, stack, base, stack.tokens["reporter"])
        await tapped.goto(link)
        await expect(tapped.get_by_test_id("receipt")).to_have_attribute(
            "data-acknowledged", "true"
        )
        # And on to the incident, which the reporter may read.
        await tapped.get_by_test_id("receipt-incident-link").click()
        await tapped.wait_for_url(f"{base}/hendelser/{incident_id}")
        await expect(tapped.get_by_test_id("incident-title")).to_have_text(TITLE)

        # Without JavaScript: the same list, and a link that asks again.
        no_js = await browser.new_context(viewport=PHONE, locale="nb-NO", java_script_enabled=False)
        await logged_in(no_js, stack, base, stack.tokens["reporter"])
        bare = await no_js.new_page()
        await bare.goto(link)
        await expect(
            bare.locator("[data-testid=receipt-alert][data-role=nearest_leader]")
        ).to_have_attribute("data-acknowledged", "true")
        await bare.get_by_role("link", name="Oppdater").click()
        await bare.wait_for_url(link)

        # Another employee may not see it: the API says 403, the portal "Ingen tilgang".
        other = issue_token(
            signing_key(stack.settings), org_id="demo", person_id="p-annen", name="Anne Annen",
            roles=["reporter"], ttl=TOKEN_TTL, clock=stack.clock,
        )  # fmt: skip
        refused = await stack.client.get(
            f"/api/v1/alerts/receipt/{incident_id}", headers={"Authorization": f"Bearer {other}"}
        )
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        await logged_in(no_js, stack, base, other)
        await bare.goto(link)
        await expect(bare.get_by_role("heading", level=1)).to_have_text("Ingen tilgang")
        await browser.close()

        # The receipt is no alert: not in the incident's log, and no second RecipientAlerted.
        listed = (
            await stack.client.get(
                "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
            )
        ).json()
        receipt_row = next(a for a in listed if a["kind"] == "receipt")
        assert receipt_row["status"] == "sent" and receipt_row["escalate_at"] is None
        ids = {e["data"].get("alert_id") for e in stack.alerts.events[incident_id]}
        assert receipt_row["id"] not in ids
        assert sum(a["kind"] == "alert" for a in listed) == 2


async def test_the_receipt_api_answers_the_reporter_and_overseers_only(
    nats_url: str, tmp_path: Path
) -> None:
    """Without e-mail set up: nobody is reached, and the receipt says so honestly."""
    async with running_stack(nats_url, tmp_path, clock=ManualClock(datetime.now(UTC))) as stack:
        incident_id = (await stack.report())["id"]
        await stack.alerts.wait_for(lambda seen: len(seen[incident_id]) >= 2)
        path = f"/api/v1/alerts/receipt/{incident_id}"

        async def get(who: str, url: str = path) -> httpx.Response:
            return await stack.client.get(url, headers=stack.auth(who))

        mine = await get("reporter")
        assert mine.status_code == 200, mine.text
        body = mine.json()
        assert body["may_open_incident"] is True and body["nobody_reached"] is True
        shown = sorted((a["role"], a["name"], a["delivery"], a["channels"]) for a in body["alerts"])
        assert shown == [
            ("nearest_leader", "Lise Nord", "no_channel", ["log"]),
            ("safety_rep", "Vera Verneombud", "no_channel", ["log"]),
        ]
        assert body["alerts"][0]["delivery_text"] == "Ikke sendt – ingen kanal satt opp"
        # Never contact points, deadlines or facts.
        for word in ("@demo.example", "+47", "deadline", "injury", "escalate", "Storgata"):
            assert word not in mine.text, word
        assert (await get("leader")).status_code == 200
        # No e-mail set up: no receipt row either.
        listed = (await get("leader", f"/api/v1/alerts?incident_id={incident_id}")).json()
        assert {a["kind"] for a in listed} == {"alert"}
        assert (await get("admin")).json()["may_open_incident"] is False  # alerts, no incidents
        missing = await get("leader", f"/api/v1/alerts/receipt/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        foreign = await get("other_org")
        assert foreign.status_code == 404  # another organisation's incident is not found
