"""Issue 16, items 2 and 3: the incident screen for a leader on a phone, closing, live lists.

The whole stack in this process on a real NATS and a real SMTP sink, on a ManualClock the test
moves, served over HTTP to Debian's chromium at 360 px. The leader opens the link in her alert
e-mail and logs the first measure; starts one, finds one not applicable (with the reason),
undoes a mistaken tap within the minute (a correction in the log) and cannot after it; closes
only after the page has listed what is left; and sees new incidents arrive without a reload.

"Two taps of opening the alert link": the leader's phone has her portal session (it lasts 12
hours), she opens the incident link from the e-mail, and every tap after the page has opened
counts: the acknowledgement in the header (1) and "Utført" on the next measure (2). Logged out,
the login comes first and leads straight back (tests/e2e/test_alert_links.py).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser as Chromium
from playwright.async_api import Page, async_playwright, expect

from shared.clock import ManualClock
from shared.infra import free_port
from tests.e2e.portal_client import as_person
from tests.e2e.test_portal import CHROMIUM_ARGS, PHONE, Browser, chromium
from tests.e2e.test_receipt import logged_in, served
from tests.support import MailSink, Stack, running_stack

__all__ = ["chromium"]  # the fixture, shared with the portal's browser tests

LEADER = "lise.nord@demo.example"
OSLO = ZoneInfo("Europe/Oslo")
WINDOW = timedelta(seconds=900)  # the default KRISELOGG_ESCALATION_SECONDS
# A Wednesday morning in Oslo (an arbitrary fixed time, so the labels can be asserted exactly).
START = datetime(2026, 3, 4, 9, 0, tzinfo=OSLO)


@dataclass
class Screen:
    stack: Stack
    base: str
    browser: Chromium
    mail: MailSink

    async def phone(self, who: str = "leader", script: bool = True) -> tuple[Page, Browser]:
        """A 360 px page logged in as one of the stack's people (a portal session, as after
        the login), with the checks of the portal's browser tests watching it."""
        context = await self.browser.new_context(
            viewport=PHONE, locale="nb-NO", timezone_id="Europe/Oslo", java_script_enabled=script
        )
        await logged_in(context, self.stack, self.base, self.stack.tokens[who])
        page = await context.new_page()
        return page, Browser(page, self.base)

    async def acute(self) -> list[dict[str, Any]]:
        """The acute phase's measures of the report's category, in order."""
        response = await self.stack.client.get(
            "/api/v1/guidance/subthemes/vold-fysisk", headers=self.stack.auth()
        )
        assert response.status_code == 200, response.text
        phase = next(p for p in response.json()["phases"] if p["id"] == "akutt")
        measures: list[dict[str, Any]] = phase["measures"]
        return measures


@pytest.fixture
async def screen(
    chromium: Path, nats_url: str, tmp_path: Path, mail: MailSink
) -> AsyncIterator[Screen]:
    port = free_port()
    async with (
        running_stack(
            nats_url,
            tmp_path,
            clock=ManualClock(START),
            smtp_host="127.0.0.1",
            smtp_port=mail.port,
            public_url=f"http://127.0.0.1:{port}",
        ) as stack,
        served(stack, port) as base,
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield Screen(stack, base, browser, mail)
        finally:
            await browser.close()


def plain(message: Any) -> str:
    return str(message.get_body(("plain",)).get_content())


async def focus_stays_in_the_list(page: Page, measure_id: str | None = None) -> None:
    """Focus is in the checklist after a tap (htmx moves it there as the swap settles): on the
    first button of the given measure when one is given."""
    await expect(page.locator("#tiltak :focus")).to_have_count(1)
    if measure_id is not None:
        await expect(page.locator(f"[data-measure-id='{measure_id}'] :focus")).to_have_count(1)


async def test_from_the_alert_link_the_first_measure_is_logged_in_two_taps(
    screen: Screen,
) -> None:
    stack = screen.stack
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    messages = await screen.mail.wait_for(lambda m: any(x["To"] == LEADER for x in m))
    text = plain(next(m for m in messages if m["To"] == LEADER))
    link = next(u for u in re.findall(r"https?://\S+", text) if "/hendelser/" in u)
    assert link == f"{screen.base}/hendelser/{incident_id}"
    acute = await screen.acute()

    # Twelve minutes after the report she opens the link on her phone.
    stack.advance(timedelta(minutes=12))
    page, checked = await screen.phone()
    await page.goto(link)
    head = page.get_by_test_id("incident-head")
    await expect(head.get_by_test_id("head-category")).to_have_text("Fysisk vold mot ansatte")
    await expect(head.get_by_test_id("head-reported")).to_have_text("· meldt for 12 min siden")
    await expect(head.get_by_test_id("head-acks")).to_have_text("Ingen har bekreftet varselet ennå")
    # Both tracks (leaders, safety reps) escalate at the window's end, three minutes from now.
    due = (START + WINDOW).astimezone(OSLO)
    await expect(head.get_by_test_id("head-escalation")).to_have_text(
        f"Neste leder og verneombud varsles kl. {due:%H:%M} (om 3 min)"
    )
    # The next measure is the acute phase's first, above everything else: the acknowledgement
    # and "Utført" are on the first screen, with nothing to scroll or open.
    card = page.get_by_test_id("next-measure")
    await expect(card).to_have_attribute("data-measure-id", acute[0]["id"])
    for button in (head.get_by_test_id("head-ack"), card.get_by_test_id("log-measure")):
        box = await button.bounding_box()
        assert box is not None and box["y"] + box["height"] <= PHONE["height"], box

    taps = 0
    await head.get_by_test_id("head-ack").click()
    taps += 1
    await expect(head.get_by_test_id("head-acks")).to_contain_text("Bekreftet av Lise Nord")
    # Her track stops; the safety rep's still runs.
    await expect(head.get_by_test_id("head-escalation")).to_have_attribute(
        "data-tracks", "verneombud"
    )
    await card.get_by_test_id("log-measure").click()
    taps += 1
    logged = page.get_by_test_id("logged-entry")
    await expect(logged).to_contain_text(f"Utført: {acute[0]['title']}")
    assert taps == 2

    # Focus stays in the list: on "Utført" of the measure that is next now.
    await expect(card).to_have_attribute("data-measure-id", acute[1]["id"])
    await expect(card.get_by_test_id("log-measure")).to_be_focused()
    await focus_stays_in_the_list(page, acute[1]["id"])
    done = page.locator(f"[data-testid=measure][data-measure-id='{acute[0]['id']}']")
    await expect(done).to_have_attribute("data-status", "done")
    await checked.check("hendelse-fra-varsel", screenshots=False)

    # The header asks again every 15 s; two minutes on it says so, by the portal's clock.
    stack.advance(timedelta(minutes=2))
    http = await as_person(stack, "leader")
    reported = (await stack.timeline(incident_id))["incident"]["reported_at"]
    polled = await stack.client.get(
        f"/hendelser/{incident_id}/hode", params={"meldt": reported}, headers=http
    )
    assert polled.status_code == 200 and "meldt for 14 min siden" in polled.text
    assert f"Neste verneombud varsles kl. {due:%H:%M} (om 1 min)" in polled.text

    # Both are in the log: her acknowledgement (notify's fact, on the bus) and her measure.
    await stack.alerts.wait_for_events(
        lambda seen: any(
            e["type"] == "AlertAcknowledged" and e["data"]["recipient"]["id"] == "p-ln"
            for e in seen[incident_id]
        )
    )
    events = (await stack.timeline(incident_id))["events"]
    measures = [e for e in events if e["type"] == "MeasureLogged"]
    assert [(e["data"]["measure_id"], e["actor"]["id"]) for e in measures] == [
        (acute[0]["id"], "p-ln")
    ]


async def test_started_not_applicable_and_undo_within_the_minute(screen: Screen) -> None:
    stack = screen.stack
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    acute = await screen.acute()
    page, checked = await screen.phone()
    await page.goto(f"{screen.base}/hendelser/{incident_id}")
    card = page.get_by_test_id("next-measure")

    def row(measure: dict[str, Any]) -> Any:
        return page.locator(f"[data-testid=measure][data-measure-id='{measure['id']}']")

    # Started: the card moves on; the started one waits in its own short list, still open.
    await card.get_by_test_id("start-measure").click()
    await expect(card).to_have_attribute("data-measure-id", acute[1]["id"])
    await expect(page.get_by_test_id("started-measure")).to_contain_text(acute[0]["title"])
    await expect(row(acute[0])).to_have_attribute("data-status", "started")
    await focus_stays_in_the_list(page, acute[1]["id"])

    # Not applicable asks why; the reason goes in the log with it.
    await card.get_by_test_id("skip-measure").click()
    await card.get_by_test_id("skip-reason").fill("Faren var over da lederen kom")
    await card.get_by_test_id("skip-submit").click()
    await expect(card).to_have_attribute("data-measure-id", acute[2]["id"])
    await expect(row(acute[1])).to_have_attribute("data-status", "not_applicable")
    await expect(row(acute[1]).get_by_test_id("measure-done")).to_contain_text("Ikke aktuelt")
    await expect(row(acute[1]).get_by_test_id("measure-done")).to_contain_text(
        "Faren var over da lederen kom"
    )
    await focus_stays_in_the_list(page, acute[2]["id"])
    # Without a reason (a form posted past the browser's check): refused, in Norwegian.
    http = await as_person(stack, "leader")
    refused = await stack.client.post(
        f"/hendelser/{incident_id}/tiltak",
        data={"measure_id": acute[2]["id"], "status": "not_applicable", "note": " "},
        headers=http,
    )
    assert refused.status_code == 422 and "hvorfor tiltaket ikke er aktuelt" in refused.text

    # A mistaken "Utført", undone at once: the measure is open (and next) again, and the log
    # keeps both the entry and its correction "Angret".
    await card.get_by_test_id("log-measure").click()
    mistaken = page.locator(f"[data-testid=logged-entry][data-measure-id='{acute[2]['id']}']")
    await expect(mistaken).to_be_visible()
    seq = int(await mistaken.get_attribute("data-seq") or 0)
    stack.advance(timedelta(seconds=59))  # within the minute, by the services' clock
    await mistaken.get_by_test_id("undo-measure").click()
    await expect(mistaken).to_have_count(0)
    await expect(card).to_have_attribute("data-measure-id", acute[2]["id"])
    await expect(row(acute[2])).not_to_have_attribute("data-seq", re.compile("."))
    await focus_stays_in_the_list(page, acute[2]["id"])
    await page.locator("#tidslinje-boks > summary").click()
    correction = page.locator("[data-testid=replay-events] [data-type=EntryCorrected]")
    await expect(correction).to_contain_text(f"retter #{seq}: Angret")
    events = (await stack.timeline(incident_id))["events"]
    assert any(e["seq"] == seq and e["type"] == "MeasureLogged" for e in events)
    assert events[-1]["type"] == "EntryCorrected"
    assert events[-1]["data"]["corrects_seq"] == seq
    await checked.check("hendelse-angret", screenshots=False)

    # Logged again; a minute and a second later the undo is gone, and the server refuses it.
    await card.get_by_test_id("log-measure").click()
    again = page.locator(f"[data-testid=logged-entry][data-measure-id='{acute[2]['id']}']")
    await expect(again.get_by_test_id("undo-measure")).to_be_visible()
    seq = int(await again.get_attribute("data-seq") or 0)
    stack.advance(timedelta(seconds=61))
    offer = await stack.client.get(f"/hendelser/{incident_id}/angre/{seq}", headers=http)
    assert offer.status_code == 200 and 'data-testid="undo-measure"' not in offer.text
    await page.reload()
    await expect(page.get_by_test_id("undo-measure")).to_have_count(0)
    await expect(row(acute[2])).to_have_attribute("data-status", "done")
    late = await stack.client.post(
        f"/hendelser/{incident_id}/angre", data={"seq": str(seq)}, headers=http
    )
    assert late.status_code == 409 and "Angrefristen på ett minutt er ute" in late.text
    assert (await stack.timeline(incident_id))["events"][-1]["type"] == "MeasureLogged"

    # Without JavaScript the same taps post the forms and the page comes back.
    bare, _ = await screen.phone(script=False)
    await bare.goto(f"{screen.base}/hendelser/{incident_id}")
    plain_card = bare.get_by_test_id("next-measure")
    await expect(plain_card).to_have_attribute("data-measure-id", acute[3]["id"])
    await plain_card.get_by_test_id("log-measure").click()
    await bare.wait_for_url(re.compile(r"#tiltak$"))
    await expect(plain_card).to_have_attribute("data-measure-id", acute[4]["id"])
    await bare.get_by_test_id("undo-measure").click()
    await expect(plain_card).to_have_attribute("data-measure-id", acute[3]["id"])
    await bare.context.close()
    await page.reload()

    # A tap in the full list: it stays open, and focus goes to its first open measure (the
    # started one).
    await page.get_by_test_id("all-measures").click()
    await row(acute[4]).get_by_test_id("log-measure").click()
    await expect(row(acute[4])).to_have_attribute("data-status", "done")
    await expect(page.locator("#alle-tiltak")).to_have_attribute("open", "")
    await expect(
        page.locator(f"#alle-tiltak [data-measure-id='{acute[0]['id']}'] :focus")
    ).to_have_count(1)


async def test_closing_lists_what_is_left_and_closes_only_when_confirmed(
    screen: Screen,
) -> None:
    stack = screen.stack
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    acute = await screen.acute()
    met = await stack.client.post(
        f"/api/v1/incidents/{incident_id}/deadlines/aml-5-1/met", json={}, headers=stack.auth()
    )
    assert met.status_code == 201, met.text
    page, checked = await screen.phone()
    await page.goto(f"{screen.base}/hendelser/{incident_id}")
    await page.get_by_test_id("next-measure").get_by_test_id("log-measure").click()
    await expect(page.get_by_test_id("logged-entry")).to_have_count(1)

    # The deadlines say the day and the basis in words.
    deadlines = page.get_by_test_id("deadline")
    await page.locator("#frister > summary").click()
    nav = page.locator("[data-testid=deadline][data-deadline-id='ftrl-13-14']")
    await expect(nav.get_by_test_id("deadline-basis")).to_contain_text("Lovkrav: folketrygdloven")
    await expect(nav.get_by_test_id("deadline-due")).to_have_text("Frist: snarest mulig")
    dated = page.get_by_test_id("deadline-due").filter(has_text="kl.").first
    await expect(dated).to_have_text(
        re.compile(r"^Frist: (mandag|tirsdag|onsdag|torsdag|fredag|lørdag|søndag) \d{1,2}\. "
                   r"(januar|februar|mars|april|mai|juni|juli|august|september|oktober|"
                   r"november|desember) kl\. \d\d:\d\d")
    )  # fmt: skip
    routine = deadlines.and_(page.locator("[data-kind=routine]")).first
    await expect(routine.get_by_test_id("deadline-basis")).to_have_text("Egen rutine")

    await page.locator("#avslutt > summary").click()
    await page.get_by_label("Oppsummering").fill("Fulgt opp; saken er anmeldt.")
    await page.get_by_test_id("close-incident").click()
    await expect(page.get_by_test_id("close-title")).to_have_text("Avslutte hendelsen?")
    listed = page.locator("[data-testid=open-measure][data-phase=akutt]")
    await expect(listed).to_have_count(len(acute) - 1)
    shown = await listed.evaluate_all("els => els.map(e => e.dataset.measureId)")
    assert shown == [m["id"] for m in acute[1:]]
    duties = page.get_by_test_id("unmet-duty")
    ids = await duties.evaluate_all("els => els.map(e => e.dataset.deadlineId)")
    assert sorted(ids) == ["aml-7-2", "ftrl-13-14"], ids  # the met one and routines: not listed
    await expect(page.get_by_label("Oppsummering")).to_have_value("Fulgt opp; saken er anmeldt.")
    await checked.check("avslutt-bekreft", screenshots=False)
    state = (await stack.timeline(incident_id))["incident"]
    assert state["status"] == "open"  # asking closed nothing

    # Not now: back to the incident, still open.
    await page.get_by_test_id("cancel-close").click()
    await page.wait_for_url(f"{screen.base}/hendelser/{incident_id}")
    await expect(page.get_by_test_id("incident-status")).to_contain_text("Åpen")

    # Then confirmed: closed with the summary.
    await page.locator("#avslutt > summary").click()
    await page.get_by_label("Oppsummering").fill("Fulgt opp; saken er anmeldt.")
    await page.get_by_test_id("close-incident").click()
    await page.get_by_test_id("confirm-close").click()
    await page.wait_for_url(re.compile(rf"/hendelser/{incident_id}#avslutt$"))
    await expect(page.get_by_test_id("incident-status")).to_contain_text("Avsluttet")
    state = (await stack.timeline(incident_id))["incident"]
    assert state["status"] == "closed" and state["summary"] == "Fulgt opp; saken er anmeldt."


async def test_the_incident_list_and_the_start_page_show_a_new_incident_without_reload(
    screen: Screen,
) -> None:
    stack = screen.stack
    page, checked = await screen.phone()
    await page.goto(f"{screen.base}/hendelser")
    await expect(page.get_by_test_id("open-incidents-none")).to_be_visible()
    await page.evaluate("window.notReloaded = true")
    await stack.report(title="Truet med kniv i resepsjonen")
    await expect(page.get_by_test_id("open-incidents")).to_contain_text(
        "Truet med kniv i resepsjonen", timeout=15_000
    )
    assert await page.evaluate("window.notReloaded === true")
    await checked.check("hendelser-live", screenshots=False)

    await page.goto(f"{screen.base}/")
    await expect(page.get_by_test_id("start-incidents")).to_contain_text(
        "Truet med kniv i resepsjonen"
    )
    await page.evaluate("window.notReloaded = true")
    await stack.report(title="Slått i gangen")
    await expect(page.get_by_test_id("start-incidents")).to_contain_text(
        "Slått i gangen", timeout=15_000
    )
    assert await page.evaluate("window.notReloaded === true")

    # Logged out meanwhile (the session gone): the next poll takes the whole page to the
    # login, which leads back here, instead of swapping the login into the list.
    await page.context.clear_cookies()
    await page.wait_for_url(f"{screen.base}/logg-inn", timeout=15_000)


async def test_with_200_entries_the_page_stays_short_on_a_phone(screen: Screen) -> None:
    """Issue 16 found the page 8 200 px high on a 360 px phone, the acute phase two screens
    down. Notes, timeline and alerts are collapsed now; the next measure is on the first
    screen however long the log."""
    stack = screen.stack
    incident_id = (await stack.report())["id"]
    length = await stack.settle(incident_id)
    for n in range(200 - length):
        note = await stack.client.post(
            f"/api/v1/incidents/{incident_id}/notes",
            json={"text": f"Notat nr. {n}: ringte den ansatte."},
            headers=stack.auth(),
        )
        assert note.status_code == 201, note.text
    page, checked = await screen.phone()
    await page.goto(f"{screen.base}/hendelser/{incident_id}")
    await expect(page.get_by_test_id("replay-count")).to_have_text("(200 oppføringer)")
    height = await page.evaluate("document.scrollingElement.scrollHeight")
    assert height <= 2 * PHONE["height"], f"{height} px"
    box = await page.get_by_test_id("next-measure").get_by_test_id("log-measure").bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"], box
    await checked.check("hendelse-200")
