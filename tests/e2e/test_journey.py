"""Issue 16, item 9: the worst moment walked at 360 px, reporter then leader, every tap counted.

Against `kriselogg up` with a real SMTP sink, in Debian's chromium on a phone-sized screen:

1. the employee, logged in on her phone, reports from the start page: the type (tap 1) and
   "Send" (tap 2), and reads the receipt;
2. the nearest leader, whose phone keeps her portal session, opens the incident link in the
   alert e-mail from the sink, acknowledges in the sticky header (tap 1) and logs the next
   acute measure (tap 2); the log then holds the acknowledgement and the measure, in that order.

The login taps are not counted: a login lasts 12 hours, and the worst moment starts on a phone
that is already logged in (logged out, the login leads straight back: test_alert_links.py).
Each step's screenshot is written to tests/e2e/screenshots/journey/ (named in the output).
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Locator, Page, async_playwright, expect

from tests.e2e.processes import running_up
from tests.e2e.test_portal import CHROMIUM_ARGS, PHONE, SCREENSHOTS, Browser, chromium
from tests.support import MailSink

__all__ = ["chromium"]  # the fixture, shared with the portal's browser tests

LEADER = "lise.nord@demo.example"
FOLDER = SCREENSHOTS / "journey"
REPORT_TAPS = 2  # acceptance item 1: report in two taps from the start page
MEASURE_TAPS = 2  # acceptance item 2: first measure within 2 taps of opening the alert link


class Taps:
    """Counts the taps of one person and keeps a screenshot of every screen they see."""

    def __init__(self, page: Page, who: str) -> None:
        self.page, self.who, self.count, self.shots = page, who, 0, 0

    async def tap(self, target: Locator) -> None:
        await expect(target).to_be_visible()
        # Thumb-sized, and on the screen she is looking at, not somewhere below it.
        box = await target.bounding_box()
        assert box is not None and box["height"] >= 44 and box["width"] >= 44, box
        await target.click()
        self.count += 1

    async def shot(self, name: str) -> None:
        self.shots += 1
        path = FOLDER / f"{self.who}-{self.shots}-{name}.png"
        await self.page.screenshot(path=str(path), full_page=False)


async def test_the_worst_moment_in_four_taps_reporter_then_leader(
    chromium: Path, tmp_path: Path, mail: MailSink
) -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    print(f"screenshots of each step: {FOLDER}")
    smtp = {"KRISELOGG_SMTP_HOST": "127.0.0.1", "KRISELOGG_SMTP_PORT": str(mail.port)}
    with running_up(tmp_path, smtp) as base:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)

            # --- the employee ----------------------------------------------------------------
            context = await browser.new_context(viewport=PHONE, locale="nb-NO")
            page = await context.new_page()
            employee = Browser(page, base)
            await employee.login("p-ansatt")
            reporter = Taps(page, "melder")
            await reporter.shot("forside")
            await reporter.tap(page.get_by_test_id("report-type-vold-fysisk"))
            await page.wait_for_url(f"{base}/meld?kategori=vold-fysisk")
            await reporter.shot("skjema")
            await reporter.tap(page.get_by_test_id("report-submit"))
            await page.wait_for_url(re.compile(r"/hendelser/[0-9a-f-]{36}/kvittering$"))
            await expect(page.get_by_test_id("receipt-title")).to_have_text("Meldingen er sendt")
            await reporter.shot("kvittering")
            incident_id = page.url.split("/")[-2]
            assert reporter.count <= REPORT_TAPS, reporter.count
            await employee.check("reise-melder", screenshots=False)
            await context.close()

            # --- the leader, from her alert e-mail -------------------------------------------
            messages = await mail.wait_for(lambda m: any(x["To"] == LEADER for x in m))
            alert = next(m for m in messages if m["To"] == LEADER)
            text = str(alert.get_body(("plain",)).get_content())  # type: ignore[union-attr]
            link = next(u for u in re.findall(r"https?://\S+", text) if "/hendelser/" in u)
            assert link == f"{base}/hendelser/{incident_id}", link

            context = await browser.new_context(viewport=PHONE, locale="nb-NO")
            page = await context.new_page()
            lise = Browser(page, base)
            await lise.login("p-ln")
            leader = Taps(page, "leder")
            await page.goto(link)
            await expect(page.get_by_test_id("incident-head")).to_be_visible()
            await leader.shot("hendelsen")
            head = page.get_by_test_id("incident-head")
            await leader.tap(head.get_by_test_id("head-ack"))
            await expect(head.get_by_test_id("head-acks")).to_contain_text("Lise Nord")
            await leader.shot("bekreftet")
            next_measure = page.get_by_test_id("next-measure")
            measure_id = await next_measure.get_attribute("data-measure-id")
            await leader.tap(next_measure.get_by_test_id("log-measure"))
            done = page.locator("[data-testid=measure][data-status=done]")
            await expect(done).to_have_count(1)
            # The measure the page led with is the one logged.
            assert measure_id and await done.get_attribute("data-measure-id") == measure_id
            await leader.shot("tiltak-logget")
            assert leader.count <= MEASURE_TAPS, leader.count
            await lise.check("reise-leder", screenshots=False)

            # The log holds both, by her, in the order she tapped them.
            await page.goto(f"{link}/tidslinje?seq=1000")
            events = page.get_by_test_id("event")
            await expect(events.first).to_be_visible()
            pairs = await events.evaluate_all("els => els.map(e => [e.dataset.type, e.value])")
            seq = {kind: n for kind, n in pairs}
            assert seq["AlertAcknowledged"] < seq["MeasureLogged"], pairs
            await browser.close()
        assert reporter.count + leader.count <= REPORT_TAPS + MEASURE_TAPS
        assert len(list(FOLDER.glob("*.png"))) >= reporter.shots + leader.shots
