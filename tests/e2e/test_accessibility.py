"""Issue 16, item 8: the portal is accessible, for every role, on a phone and on a desktop.

Against `kriselogg up` with an incident that has measures, a note, alerts (one acknowledged),
deadlines (one met) and a correction, plus a closed incident. Every demo person visits every
page they can reach, and a few they cannot (the 403 and 404 pages), at 360 px and 1280 px:

- axe-core (from the axe-playwright-python wheel) finds no WCAG 2.0/2.1/2.2 A/AA or best-practice
  violation; its color-contrast rule is the 4.5:1 check;
- every page has exactly one h1 and does not scroll sideways at 360 px;
- every visible tap target is at least 44×44 px at 360 px (WCAG 2.5.5). A link inside running
  text is exempt, as WCAG 2.5.8 exempts targets "in a sentence": it is a link shown inline whose
  neighbouring text in the same element has letters or digits ("Ring <a>112</a> først").
  Navigation (header, nav, footer) gets no exemption, and neither do list links, buttons,
  summaries, fields or the labels of radios and checkboxes (the label is the tap target, so a
  small radio inside a 44 px label passes).

Then a keyboard-only journey (no mouse, only page.keyboard): the employee logs in from
/logg-inn, reports and reaches the receipt; the leader opens the incident and logs a measure.
Every focused element shows a focus indicator (an outline or a box-shadow) and is on screen, and
the skip link jumps to the content. The journey relies on these hooks only: data-testid
dev-login-<person>, logout, report-type-* or report-button (the start page's report buttons),
report-form, report-submit* (its send buttons), the radios named fact_injury in it,
receipt-title, a link on the start page whose href is the incident's path, log-measure inside
an element with data-measure-id, and [data-testid=measure][data-measure-id][data-seq] for a
logged measure. The audit also uses replay-slider, replay-position ("etter oppføring N"),
close-incident (a leader's close form with a textarea) and login-return.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser as PwBrowser
from playwright.async_api import Page, async_playwright, expect

from services.cli import DEMO_LOGINS
from shared.auth import issue_token
from shared.settings import Settings
from tests.e2e.processes import start_up, stop, wait_until_ready
from tests.e2e.test_portal import CHROMIUM_ARGS, DESKTOP, PHONE, Browser, chromium
from tests.support import REPORT, BusWatcher

__all__ = ["chromium"]  # the fixture, shared with the portal's browser tests

# Every person and width of every page is one axe run, so the module gets more than the default.
pytestmark = pytest.mark.timeout(900)

ROLES = {person: roles for person, _, roles, _ in DEMO_LOGINS}
PEOPLE = list(ROLES)
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}
TARGET = 44  # px, WCAG 2.5.5 (AAA), as the issue asks: the size of a fingertip
KEYBOARD_TITLE = "Truet i resepsjonen, meldt med tastaturet"


def axe_source() -> str:
    """axe-core's axe.min.js as the wheel ships it; a missing wheel fails with what to do."""
    try:
        return (
            importlib.resources.files("axe_playwright_python")
            .joinpath("axe.min.js")
            .read_text(encoding="utf-8")
        )
    except ModuleNotFoundError:
        pytest.fail(
            "axe-playwright-python is not installed: it ships the axe-core these tests run. "
            "Install the test extras: .venv/bin/pip install -e '.[test]'",
            pytrace=False,
        )


@dataclass(frozen=True)
class Portal:
    base: str
    incident: str  # open: measures, a note, alerts, deadlines, a correction
    closed: str
    article: str  # a resource article's id


@pytest.fixture(scope="module")
async def portal(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Portal]:
    """One `kriselogg up` for the module, with the incidents the pages show."""
    tmp = tmp_path_factory.mktemp("accessibility")
    proc, base, log = start_up(tmp)
    watcher = BusWatcher()
    try:
        await asyncio.to_thread(wait_until_ready, [proc], [f"{base}/readyz"], 30)
        # The bus `up` started for itself: its events are awaited instead of polling the API.
        bus = re.search(r"bus: (nats://\S+)", log.read_text())
        assert bus, log.read_text()[-2000:]
        subjects = Settings().subjects
        await watcher.start(bus[1], subjects.stream, subjects.all_orgs("incident"))
        key = (tmp / "data" / "secret.key").read_text().strip()
        async with httpx.AsyncClient(base_url=base, timeout=15) as client:
            yield await seed(client, key, watcher)
    finally:
        await watcher.stop()
        code = stop(proc, signal.SIGINT)
        assert code == 0, log.read_text(errors="replace")[-3000:]


async def seed(client: httpx.AsyncClient, key: str, watcher: BusWatcher) -> Portal:
    """Through the API, as the demo people: everything an incident page can show."""
    tokens = {
        person: issue_token(key, org_id="demo", person_id=person, name=name, roles=roles)
        for person, name, roles, _ in DEMO_LOGINS
    }

    async def call(method: str, path: str, who: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response.json()

    incident = (await call("POST", "/api/v1/incidents", "p-ansatt", REPORT))["id"]
    closed = (
        await call("POST", "/api/v1/incidents", "p-ansatt", {**REPORT, "title": "Avsluttet"})
    )["id"]

    def settled(events: dict[str, list[dict[str, Any]]]) -> bool:
        kinds = [e["type"] for e in events[incident]]
        return kinds.count("RecipientAlerted") >= 2 and kinds.count("DeadlineSet") >= 6

    await watcher.wait_for_events(settled, timeout=30)
    events = watcher.events[incident]
    mine = next(
        e["data"]["alert_id"]
        for e in events
        if e["type"] == "RecipientAlerted" and e["data"]["recipient"]["id"] == "p-ln"
    )
    await call("POST", f"/api/v1/alerts/{mine}/ack", "p-ln", {})
    guidance = await call("GET", "/api/v1/guidance/subthemes/vold-fysisk", "p-ln")
    acute = next(p for p in guidance["phases"] if p["id"] == "akutt")
    # Done, done, started and not applicable: every state a measure is shown in.
    for measure, status in zip(
        acute["measures"], ("done", "done", "started", "not_applicable"), strict=False
    ):
        body = {"measure_id": measure["id"], "title": measure["title"], "status": status}
        if status == "not_applicable":
            body["note"] = "Ingen andre var til stede."
        await call("POST", f"/api/v1/incidents/{incident}/measures", "p-ln", body)
    note = {"text": "Ali er sendt til legevakten; kollega følger ham."}
    seq = (await call("POST", f"/api/v1/incidents/{incident}/notes", "p-ln", note))["seq"]
    correction = {"seq": seq, "reason": "Feil kollega", "note": "Det var Per som fulgte ham."}
    await call("POST", f"/api/v1/incidents/{incident}/corrections", "p-ln", correction)
    deadline = next(e["data"]["deadline_id"] for e in events if e["type"] == "DeadlineSet")
    await call("POST", f"/api/v1/incidents/{incident}/deadlines/{deadline}/met", "p-ln", {})
    await call("POST", f"/api/v1/incidents/{closed}/close", "p-ln", {"summary": "Fulgt opp."})
    tree = await call("GET", "/api/v1/guidance/themes", "p-ansatt")
    article = tree["resources"][0]["articles"][0]["id"]
    return Portal(str(client.base_url).rstrip("/"), incident, closed, article)


# ------------------------------------------------------------------ what is checked on a page

# Too-small tap targets at the current width: each as {what, width, height}.
SMALL_TARGETS_JS = """
(min) => {
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    // Off-screen (the skip link before it is focused) or not rendered: not a target now.
    return r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0
      && s.visibility !== 'hidden' && s.display !== 'none';
  };
  const chrome = 'header, nav, footer, [role=navigation], [role=banner], [role=contentinfo]';
  const words = /[\\p{L}\\p{N}]/u;
  // A link in a sentence (WCAG 2.5.8): inline, with words right beside it in its own element.
  const inSentence = (a) => {
    if (a.closest(chrome) || getComputedStyle(a).display !== 'inline') return false;
    const beside = [a.previousSibling, a.nextSibling];
    return beside.some((n) => n && n.nodeType === Node.TEXT_NODE && words.test(n.textContent));
  };
  const describe = (el) => {
    const id = el.getAttribute('data-testid') || el.id || el.getAttribute('href') || '';
    const text = (el.innerText || el.value || '').trim().replace(/\\s+/g, ' ').slice(0, 40);
    return `${el.tagName.toLowerCase()}${id ? '[' + id + ']' : ''} "${text}"`;
  };
  const targets = new Set();
  const fields = 'a[href], button, select, textarea, summary, '
    + 'input:not([type=hidden]):not([type=radio]):not([type=checkbox])';
  for (const el of document.querySelectorAll(fields)) {
    if (el.tagName === 'A' && inSentence(el)) continue;
    targets.add(el);
  }
  // A radio or checkbox is tapped through its label.
  for (const box of document.querySelectorAll('input[type=radio], input[type=checkbox]')) {
    const label = box.closest('label') || (box.labels && box.labels[0]);
    targets.add(label || box);
  }
  const small = [];
  for (const el of targets) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width < min - 0.5 || r.height < min - 0.5) {
      small.push({what: describe(el), width: Math.round(r.width), height: Math.round(r.height)});
    }
  }
  return small;
}
"""

OPEN_DETAILS_JS = "() => document.querySelectorAll('details').forEach((d) => { d.open = true; })"


async def run_axe(page: Page, source: str) -> list[dict[str, Any]]:
    # page.evaluate runs through the DevTools protocol, which the page's CSP does not govern,
    # so axe is injected without loosening the CSP (an added <script> would be refused).
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(source)
    result: dict[str, Any] = await page.evaluate(
        "(options) => axe.run(document, options)", AXE_OPTIONS
    )
    return list(result["violations"])


class Audit:
    """Every problem on every page, reported together: one run shows the whole list."""

    def __init__(self, page: Page, source: str) -> None:
        self.page = page
        self.source = source
        self.problems: dict[str, list[str]] = {}  # the problem -> the widths it was found at
        self.pages = 0
        self.refused: set[str] = set()  # pages visited on purpose that answer 403 or 404

    def found(self, problem: str, width: str = "") -> None:
        self.problems.setdefault(problem, []).append(width)

    async def visit(self, name: str, url: str) -> int:
        """Open `url` and check it; returns its HTTP status."""
        await self.page.set_viewport_size(PHONE)
        response = await self.page.goto(url)
        assert response is not None, url
        await self.page.wait_for_load_state("load")
        if response.status >= 500:
            self.found(f"{name} ({url}): answered {response.status}, a server error")
        if response.status in (403, 404):
            self.refused.add(url)
        await self.check(name)
        return response.status

    async def check(self, name: str) -> None:
        """The page as it is now, at 360 px and then at 1280 px (left at 360 px)."""
        page = self.page
        self.pages += 1
        await page.evaluate(OPEN_DETAILS_JS)
        where = f"{name} (/{page.url.split('/', 3)[-1]})"
        h1 = await page.locator("h1").all_inner_texts()
        if len(h1) != 1 or not h1[0].strip():
            self.found(f"{where}: {len(h1)} h1 elements {h1}, not exactly one")
        for viewport in (PHONE, DESKTOP):
            await page.set_viewport_size(viewport)
            width = f"{viewport['width']}px"
            for v in await run_axe(page, self.source):
                for node in v["nodes"]:
                    summary = " ".join((node.get("failureSummary") or "").split())[:200]
                    target = " ".join(map(str, node["target"]))
                    self.found(
                        f"{where}: axe {v['id']} ({v['impact']}) at {target}: {summary}", width
                    )
            if viewport is PHONE:
                scroll = await page.evaluate("document.scrollingElement.scrollWidth")
                if scroll > PHONE["width"] + 1:
                    self.found(f"{where}: scrolls sideways ({scroll}px)", width)
                for t in await page.evaluate(SMALL_TARGETS_JS, TARGET):
                    self.found(
                        f"{where}: tap target {t['what']} is {t['width']}×{t['height']} px, "
                        f"under {TARGET}×{TARGET}",
                        width,
                    )
        await page.set_viewport_size(PHONE)

    def unexpected(self, problems: list[str]) -> list[str]:
        """The browser's problems, less its console line for a refused page visited on purpose."""
        return [
            p
            for p in problems
            if not (
                p.startswith("console error: Failed to load resource")
                and any(p.endswith(f"({url})") for url in self.refused)
            )
        ]

    def assert_clean(self) -> None:
        assert self.pages, "no page was checked"
        if self.problems:
            lines = [f"{p} [{', '.join(w for w in ws if w)}]" for p, ws in self.problems.items()]
            pytest.fail(f"{len(lines)} accessibility problems:\n" + "\n".join(lines), pytrace=False)


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[PwBrowser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


async def new_page(browser: PwBrowser) -> Page:
    context = await browser.new_context(
        viewport=PHONE, locale="nb-NO", timezone_id="Europe/Oslo", accept_downloads=True
    )
    return await context.new_page()


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


async def test_the_login_and_error_pages_are_accessible_logged_out(
    browser: PwBrowser, portal: Portal, axe: str
) -> None:
    page = await new_page(browser)
    watched = Browser(page, portal.base)
    audit = Audit(page, axe)
    await audit.visit("logg-inn", f"{portal.base}/logg-inn")
    await audit.visit("forside-utlogget", f"{portal.base}/")
    # A link from an alert, followed before logging in: the login page says why it is shown.
    await audit.visit("logg-inn-neste", f"{portal.base}/hendelser/{portal.incident}")
    await expect(page.get_by_test_id("login-return")).to_be_visible()
    audit.assert_clean()
    assert not audit.unexpected(watched.problems), watched.problems


@pytest.mark.parametrize("person", PEOPLE)
async def test_every_page_is_accessible_for_every_role(
    browser: PwBrowser, portal: Portal, axe: str, person: str
) -> None:
    page = await new_page(browser)
    watched = Browser(page, portal.base)
    await watched.login(person)
    audit = Audit(page, axe)
    base = portal.base
    for name, path in (
        ("forside", "/"),
        ("sok", "/sok?q=trusler"),
        ("sok-uten-treff", "/sok?q=qqqzzz"),
        ("veiledning", "/veiledning/vold-fysisk"),
        ("ressurs", f"/ressurser/{portal.article}"),
        ("meld", "/meld"),
        ("meld-type-valgt", "/meld?kategori=vold-fysisk"),
        ("hendelser", "/hendelser"),
    ):
        await audit.visit(name, base + path)
    # The replay, for whoever may see the incident: the log as it stood after the report,
    # swapped in by htmx.
    if await audit.visit("hendelse", f"{base}/hendelser/{portal.incident}") == 200:
        slider = page.get_by_test_id("replay-slider")
        await slider.fill("1")
        await expect(page.get_by_test_id("replay-position")).to_contain_text("etter oppføring 1")
        await audit.check("hendelse-tilbakespilt")
    # A leader closing the incident is asked to confirm first, on a page of its own.
    if "leader" in ROLES[person]:
        close = page.get_by_test_id("close-incident")
        await page.goto(f"{base}/hendelser/{portal.incident}")
        await page.evaluate(OPEN_DETAILS_JS)
        form = page.locator("form", has=close)
        await form.locator("textarea").first.fill("Fulgt opp med samtaler.")
        async with page.expect_navigation():
            await close.click()
        await audit.check("avslutt-bekreft")
    for name, path in (
        ("hendelse-avsluttet", f"/hendelser/{portal.closed}"),
        ("kvittering", f"/hendelser/{portal.incident}/kvittering"),
        ("katalog", "/admin/katalog"),  # the admin's page; a 403 page for everyone else
        ("katalog-versjon", "/admin/katalog/versjoner/1"),
        ("logg-ut", "/logg-ut"),  # a typed /logg-ut asks first
        ("finnes-ikke", "/finnes-ikke"),
        ("hendelse-finnes-ikke", "/hendelser/00000000-0000-0000-0000-000000000000"),
    ):
        await audit.visit(name, base + path)
    audit.assert_clean()
    assert not audit.unexpected(watched.problems), watched.problems


# ------------------------------------------------------------------ keyboard only

FOCUS_JS = """
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  const r = el.getBoundingClientRect();
  const id = el.getAttribute('data-testid') || el.id || el.getAttribute('href') || '';
  const text = (el.innerText || el.value || '').trim().replace(/\\s+/g, ' ').slice(0, 40);
  return {
    what: `${el.tagName.toLowerCase()}${id ? '[' + id + ']' : ''} "${text}"`,
    testid: el.getAttribute('data-testid') || '',
    tag: el.tagName.toLowerCase(),
    type: el.getAttribute('type') || '',
    name: el.getAttribute('name') || '',
    value: el.value || '',
    checked: !!el.checked,
    required: !!el.required,
    text,
    measure: (el.closest('[data-measure-id]') || {dataset: {}}).dataset.measureId || '',
    // A date field's calendar button is a stop inside the browser's own shadow DOM: the field
    // is the active element yet matches no :focus, and the browser draws its own ring there.
    indicator: (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0)
      || s.boxShadow !== 'none'
      || (/^(date|datetime-local|time|month|week)$/.test(el.type) && !el.matches(':focus')),
    style: `outline ${s.outlineStyle} ${s.outlineWidth}, box-shadow ${s.boxShadow}`,
    onScreen: r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth,
  };
}
"""


async def arrived(page: Page, url: str | re.Pattern[str]) -> None:
    """At `url`, and it is a portal page (not a server error's JSON, say)."""
    await page.wait_for_url(url)
    if not await page.locator("main#innhold").count():
        text = await page.locator("body").inner_text()
        raise AssertionError(f"{page.url} is not a portal page: {text[:300]}")


class Keyboard:
    """Moves through a page with Tab only, checking the focus can be seen at every stop."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.steps = 0

    async def focused(self) -> dict[str, Any]:
        found: dict[str, Any] | None = await self.page.evaluate(FOCUS_JS)
        assert found is not None, f"nothing has focus on {self.page.url}"
        return found

    async def press(self, key: str) -> dict[str, Any]:
        await self.page.keyboard.press(key)
        self.steps += 1
        now = await self.focused()
        assert now["indicator"], f"{now['what']} has focus but no indicator ({now['style']})"
        assert now["onScreen"], f"{now['what']} has focus off screen"
        return now

    async def tab_to(self, wanted: str, limit: int = 80) -> dict[str, Any]:
        """Tab until the focused element matches `wanted` (a JS test of `el`); the element
        focused already counts (a page may autofocus it)."""
        test = f"(() => {{ const el = document.activeElement; return !!({wanted}); }})()"
        if await self.page.evaluate(test):
            now = await self.focused()
            assert now["indicator"], f"{now['what']} has focus but no indicator ({now['style']})"
            return now
        seen: list[str] = []
        for _ in range(limit):
            now = await self.press("Tab")
            if await self.page.evaluate(test):
                return now
            seen.append(now["what"])
        raise AssertionError(f"{wanted} not reached in {limit} tabs on {self.page.url}: {seen}")


async def test_a_keyboard_user_reports_and_a_keyboard_leader_logs_a_measure(
    browser: PwBrowser, portal: Portal
) -> None:
    page = await new_page(browser)
    watched = Browser(page, portal.base)
    keys = Keyboard(page)
    await page.goto(f"{portal.base}/logg-inn")
    await arrived(page, f"{portal.base}/logg-inn")

    # The skip link is the first stop; it shows itself and jumps past the header.
    skip = await keys.press("Tab")
    assert skip["text"] == "Hopp til innholdet", skip
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "innhold"
    await keys.tab_to("el.dataset.testid === 'dev-login-p-ansatt'")
    await page.keyboard.press("Enter")
    await arrived(page, f"{portal.base}/")

    # The start page's report button (a type of incident), then the form: only what has to be
    # typed is typed, and the injury question is answered "yes" with the arrow keys.
    await keys.tab_to("/^report-(type-|button)/.test(el.dataset.testid || '')")
    await page.keyboard.press("Enter")
    await arrived(page, re.compile(r"/meld"))
    await expect(page.get_by_test_id("report-form")).to_be_visible()
    injury = page.locator("[data-testid=report-form] input[type=radio][name=fact_injury]")
    await expect(injury).to_have_count(3)  # yes / no / don't know
    answered = False
    while True:
        now = await keys.press("Tab")
        assert keys.steps < 150, "the report form's send button was not reached"
        if now["testid"].startswith("report-submit") and answered:
            break
        typed = now["tag"] == "textarea" or (
            now["tag"] == "input" and now["type"] in ("", "text", "search")
        )
        if typed and now["required"] and not now["value"]:
            await page.keyboard.type(KEYBOARD_TITLE)
        elif now["type"] == "radio" and now["name"] == "fact_injury" and not answered:
            # Arrow keys move within a radio group and pick as they go: on to "yes".
            for _ in range(3):
                if now["value"] == "true":
                    break
                now = await keys.press("ArrowRight")
            assert now["value"] == "true" and now["checked"], now
            # Shift+Tab leaves the group backwards; Tab comes back to the answer given.
            back = await keys.press("Shift+Tab")
            assert back["name"] != "fact_injury", back
            again = await keys.press("Tab")
            assert again["name"] == "fact_injury" and again["value"] == "true", again
            answered = True
    await page.keyboard.press("Enter")
    await arrived(page, re.compile(r"/hendelser/[0-9a-f-]{36}/kvittering$"))
    await expect(page.get_by_test_id("receipt-title")).to_be_visible()
    incident_path = page.url.removeprefix(portal.base).removesuffix("/kvittering")

    # The leader: log out and in again (Space presses a button too), open the incident from
    # the start page and log the first measure.
    await keys.tab_to("el.dataset.testid === 'logout'")
    await page.keyboard.press("Enter")
    await arrived(page, f"{portal.base}/logg-inn")
    await keys.tab_to("el.dataset.testid === 'dev-login-p-ln'")
    await page.keyboard.press("Space")
    await arrived(page, f"{portal.base}/")
    await keys.tab_to(f"el.getAttribute('href') === {json.dumps(incident_path)}")
    await page.keyboard.press("Enter")
    await arrived(page, portal.base + incident_path)
    measure = await keys.tab_to("el.dataset.testid === 'log-measure'")
    assert measure["measure"], f"{measure['what']} is not inside a measure"
    await page.keyboard.press("Enter")
    logged = page.locator(
        f"[data-testid=measure][data-measure-id='{measure['measure']}'][data-seq]"
    )
    await expect(logged).to_have_count(1)
    # The tapped button is gone; the focus must not be lost with it.
    after = await keys.focused()
    assert after["indicator"] and after["onScreen"], after
    assert not watched.problems, watched.problems
