"""From the alert to the logged measure, as the leader walks it: the e-mail in a real SMTP sink,
each of its links followed in Chromium against `kriselogg up --port N`, the login in between,
the acknowledgement and the first measure, and the acknowledgement in the incident's timeline.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import async_playwright, expect

from tests.e2e.processes import running_up
from tests.e2e.test_portal import CHROMIUM_ARGS, PHONE, Browser, chromium
from tests.support import MailSink

__all__ = ["chromium"]  # the fixture, shared with the portal's browser tests

LEADER = "lise.nord@demo.example"
TITLE = "Truet med kniv i resepsjonen"


async def test_every_link_in_the_alert_opens_and_leads_to_the_logged_measure(
    chromium: Path, tmp_path: Path, mail: MailSink
) -> None:
    smtp = {"KRISELOGG_SMTP_HOST": "127.0.0.1", "KRISELOGG_SMTP_PORT": str(mail.port)}
    with running_up(tmp_path, smtp) as base:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
            # The employee reports on a phone.
            reporter = await browser.new_context(viewport=PHONE, locale="nb-NO")
            page = await reporter.new_page()
            employee = Browser(page, base)
            await employee.login("p-ansatt")
            await page.goto(f"{base}/meld?kategori=vold-fysisk")
            await page.get_by_label("Hva skjedde?").fill(TITLE)
            await page.get_by_test_id("report-submit").click()
            await page.wait_for_url(re.compile(r"/hendelser/[0-9a-f-]{36}/kvittering$"))
            incident_id = page.url.split("/")[-2]
            await reporter.close()

            # The leader's e-mail: its links point at this origin (`up --port N`), not at 8000.
            messages = await mail.wait_for(lambda m: any(x["To"] == LEADER for x in m))
            alert = next(m for m in messages if m["To"] == LEADER)
            text = str(alert.get_body(("plain",)).get_content())  # type: ignore[union-attr]
            links = re.findall(r"https?://\S+", text)
            assert links and all(link.startswith(f"{base}/") for link in links), links
            incident_link = next(link for link in links if "/hendelser/" in link)
            ack_link = next(link for link in links if "/ack?" in link)
            assert incident_link == f"{base}/hendelser/{incident_id}"
            assert TITLE not in text  # what happened is read after logging in

            # At night, on the phone, not logged in: the acknowledgement link first.
            leader = await browser.new_context(viewport=PHONE, locale="nb-NO")
            page = await leader.new_page()
            tapped = Browser(page, base)
            await page.goto(ack_link)
            await expect(
                page.get_by_role("button", name="Jeg har mottatt varselet")
            ).to_be_visible()
            await page.get_by_role("button", name="Jeg har mottatt varselet").click()
            await expect(page.locator("h1")).to_have_text("Varselet er bekreftet")

            # Then the incident link: the Norwegian login, and straight back to the incident.
            await page.goto(incident_link)
            await page.wait_for_url(re.compile(r"/logg-inn\?neste="))
            await expect(page.get_by_test_id("login-return")).to_be_visible()
            await page.get_by_test_id("dev-login-p-ln").click()
            await page.wait_for_url(incident_link)
            await expect(page.get_by_test_id("incident-title")).to_have_text(TITLE)
            # E-mail is set up and reached her: no "nobody reached" warning, and it says so.
            await expect(page.get_by_test_id("nobody-reached")).to_have_count(0)
            mine = page.locator("[data-testid=alert][data-person=p-ln]")
            await expect(mine.get_by_test_id("alert-status")).to_have_text("Bekreftet")
            await expect(mine).to_contain_text("E-post")
            # Acknowledged by the link already: the header says so and asks no more.
            head = page.get_by_test_id("incident-head")
            await expect(head.get_by_test_id("head-acks")).to_contain_text("Bekreftet av Lise Nord")
            await expect(head.get_by_test_id("head-ack")).to_have_count(0)
            await tapped.check("varsel-til-hendelse", screenshots=False)

            # The first measure, one tap, on the next measure the page leads with.
            await page.get_by_test_id("next-measure").get_by_test_id("log-measure").click()
            await expect(page.locator("[data-testid=measure][data-status=done]")).to_have_count(1)

            # The acknowledgement is in the log, by the leader, before the measure.
            await page.goto(f"{incident_link}/tidslinje?seq=1000")
            events = page.get_by_test_id("event")
            await expect(events.first).to_be_visible()
            pairs = await events.evaluate_all("els => els.map(e => [e.dataset.type, e.value])")
            seq = {kind: n for kind, n in pairs}
            assert "AlertAcknowledged" in seq and "MeasureLogged" in seq, pairs
            assert seq["AlertAcknowledged"] < seq["MeasureLogged"], pairs
            await browser.close()
