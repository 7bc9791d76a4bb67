"""Issue 16, acceptance 1: a report in two taps from the start page, kept when offline.

In Debian's chromium at 360 px against `kriselogg up`: the demo employee taps the type on the
start page, then "Send meldingen", and lands on the receipt; the incident has her unit from the
directory, the type she tapped, and the facts she did not answer as unknown. A leader of two
units is asked which one. With the network gone, the report is kept on the phone and sent when
it returns (or when the start page is opened next), once. Over HTTP: the form chooses no type
and no severity for anyone, says in Norwegian what is missing, and a form sent twice opens one
incident.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser as Chromium
from playwright.async_api import BrowserContext, async_playwright, expect

from services.cli import demo_directory
from shared.auth import issue_token
from tests.e2e.portal_client import as_person
from tests.e2e.test_portal import CHROMIUM_ARGS, PHONE, Browser, chromium, kriselogg
from tests.support import REPORT, Stack

__all__ = ["chromium", "kriselogg"]  # fixtures shared with the portal's browser tests

RECEIPT = re.compile(r"/hendelser/([0-9a-f-]{36})/kvittering$")
OFFLINE = "Ingen nettverk – meldingen er lagret på telefonen og sendes når nettet er tilbake."
PEOPLE = {
    "p-ansatt": ("Ali Ansatt", "reporter"),
    "p-ln": ("Lise Nord", "leader"),
    "p-admin": ("Astrid Admin", "admin"),
}
# A second unit led by the demo's leader: she then reports for one of two.
NIGHT = {"id": "u-natt", "name": "Hjemmetjenesten natt", "parent": "u-hjemme", "leader": "p-ln"}


def api_auth(data_dir: Path, person: str) -> dict[str, str]:
    """A Bearer token for a demo person of a `kriselogg up` (signed with its key)."""
    key = (data_dir / "secret.key").read_text().strip()
    name, role = PEOPLE[person]
    token = issue_token(key, org_id="demo", person_id=person, name=name, roles=[role])
    return {"Authorization": f"Bearer {token}"}


async def phone(browser: Chromium) -> BrowserContext:
    return await browser.new_context(viewport=PHONE, locale="nb-NO", timezone_id="Europe/Oslo")


async def mine(client: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    listed = await client.get("/api/v1/incidents", headers=auth)
    assert listed.status_code == 200, listed.text
    found: list[dict[str, Any]] = listed.json()
    return found


# --- in the browser -----------------------------------------------------------------------


async def test_an_employee_reports_in_two_taps_and_a_leader_of_two_units_is_asked_which(
    chromium: Path, kriselogg: str, tmp_path: Path
) -> None:
    base, data = kriselogg, tmp_path / "data"
    async with (
        async_playwright() as pw,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        employee = await phone(browser)
        page = await employee.new_page()
        checked = Browser(page, base)
        await checked.login("p-ansatt")

        # The start page: a heading, and one big button per common crisis type.
        await expect(page.get_by_role("heading", level=1)).to_have_text("Hva har skjedd?")
        types = page.locator(".report-types a")
        assert await types.count() == 6  # five types, violence and threats first, and "the rest"
        for n in range(await types.count()):
            box = await types.nth(n).bounding_box()
            assert box is not None and box["height"] >= 44 and box["width"] >= 44, box
        await checked.check("forside-meld", screenshots=False)

        taps = 0
        await page.get_by_test_id("report-type-vold-fysisk").click()
        taps += 1
        await page.wait_for_url(f"{base}/meld?kategori=vold-fysisk")
        await expect(page.get_by_test_id("report-unit")).to_have_text("Enhet: Hjemmetjenesten nord")
        # Nothing answered for her: the harm "Vet ikke", the severity not at all.
        await expect(page.get_by_test_id("fact-injury").get_by_label("Vet ikke")).to_be_checked()
        assert await page.locator("input[name=severity]:checked").count() == 0
        await checked.check("meld-valgt-type", screenshots=False)
        await page.get_by_test_id("report-submit").click()
        taps += 1
        await page.wait_for_url(RECEIPT)
        await expect(page.get_by_test_id("receipt-title")).to_have_text("Meldingen er sendt")
        assert taps == 2
        found = RECEIPT.search(page.url)
        assert found
        incident = await client.get(
            f"/api/v1/incidents/{found.group(1)}", headers=api_auth(data, "p-ansatt")
        )
        state = incident.json()
        assert (state["category"], state["unit_id"]) == ("vold-fysisk", "u-nord")
        assert state["title"] == "Fysisk vold mot ansatte"  # the type's name, as none was typed
        assert state["severity"] == "high"  # violence, harm unknown: high (report_form)
        assert state["reported_by"]["id"] == "p-ansatt"
        for fact in ("death", "serious_injury", "serious_psychological_injury", "injury"):
            assert fact in state["facts"] and state["facts"][fact] is None, state["facts"]
        await employee.close()

        # The leader leads two units: the form asks which, and chooses neither for her.
        directory = demo_directory()
        directory["units"].append(NIGHT)
        saved = await client.put(
            "/api/v1/directory", json=directory, headers=api_auth(data, "p-admin")
        )
        assert saved.status_code == 200, saved.text
        leader = await phone(browser)
        page = await leader.new_page()
        checked = Browser(page, base)
        await checked.login("p-ln")
        await page.get_by_test_id("report-type-trusler-personlig").click()
        choice = page.get_by_test_id("report-unit-choice")
        await expect(choice.get_by_role("radio")).to_have_count(2)
        assert await choice.locator("input:checked").count() == 0
        await choice.get_by_label("Hjemmetjenesten natt").check()
        await page.get_by_test_id("report-submit").click()
        await page.wait_for_url(RECEIPT)
        found = RECEIPT.search(page.url)
        assert found
        incident = await client.get(
            f"/api/v1/incidents/{found.group(1)}", headers=api_auth(data, "p-ln")
        )
        assert incident.json()["unit_id"] == "u-natt"
        assert incident.json()["category"] == "trusler-personlig"
        assert not checked.problems, checked.problems
        await browser.close()


async def test_a_report_typed_offline_is_kept_and_sent_once_when_the_network_returns(
    chromium: Path, kriselogg: str, tmp_path: Path
) -> None:
    base, data = kriselogg, tmp_path / "data"
    auth = api_auth(data, "p-ansatt")
    async with (
        async_playwright() as pw,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        context = await phone(browser)
        page = await context.new_page()
        checked = Browser(page, base)
        await checked.login("p-ansatt")
        await page.get_by_test_id("report-type-trusler-personlig").click()
        await page.wait_for_url(f"{base}/meld?kategori=trusler-personlig")

        # No network: the form stays, says so, and the report waits on the phone.
        await context.set_offline(True)
        await page.get_by_label("Mer om hendelsen (valgfritt)").fill("Truet ved inngangen")
        await page.get_by_test_id("report-submit").click()
        await expect(page.get_by_test_id("report-status")).to_have_text(OFFLINE)
        assert page.url == f"{base}/meld?kategori=trusler-personlig"
        kept = await page.evaluate(
            "Object.keys(localStorage).filter(k => k.startsWith('kriselogg.melding.'))"
        )
        assert len(kept) == 1
        assert await mine(client, auth) == []

        # The network is back: it is sent by itself, and the receipt shows.
        await context.set_offline(False)
        await page.wait_for_url(RECEIPT)
        await expect(page.get_by_test_id("receipt-title")).to_have_text("Meldingen er sendt")
        sent = await mine(client, auth)
        assert len(sent) == 1 and sent[0]["category"] == "trusler-personlig"
        found = RECEIPT.search(page.url)
        assert found and sent[0]["id"] == found.group(1)
        assert await page.evaluate("Object.keys(localStorage).length") == 0

        # Kept, the page closed before the network came back: the start page sends it.
        await page.goto(f"{base}/meld?kategori=bombetrussel")
        await context.set_offline(True)
        await page.get_by_test_id("report-submit").click()
        await expect(page.get_by_test_id("report-status")).to_have_text(OFFLINE)
        await page.close()
        await context.set_offline(False)
        page = await context.new_page()
        checked = Browser(page, base)
        await page.goto(f"{base}/")
        await page.wait_for_url(RECEIPT)
        sent = await mine(client, auth)
        assert sorted(i["category"] for i in sent) == ["bombetrussel", "trusler-personlig"]
        assert not checked.problems, checked.problems
        await browser.close()


# --- over HTTP ----------------------------------------------------------------------------


async def test_the_form_chooses_no_type_and_says_in_norwegian_what_is_missing(
    stack: Stack,
) -> None:
    reporter = await as_person(stack, "reporter")
    page = await stack.client.get("/meld", headers=reporter)
    assert page.status_code == 200
    form = page.text[page.text.index('data-testid="report-form"') :]
    categories = re.findall(r'<input type="radio" name="category"[^>]*>', form)
    assert len(categories) > 5 and not any("checked" in c for c in categories)
    assert categories[0].find('value="vold-fysisk"') > 0  # the common types first
    assert not re.search(r'name="severity"[^>]*checked', form)
    assert 'name="unit_id" value="u-nord"' in form  # her one unit, from the directory
    assert "fact_sick_leave_from" not in form  # learnt later, on the incident's page
    report_id = re.search(r'name="report_id" value="([0-9a-f-]{36})"', form)
    assert report_id

    # Sent without a type (a browser without the form's checks): refused, in Norwegian.
    refused = await stack.client.post("/meld", data={"unit_id": "u-nord"}, headers=reporter)
    assert refused.status_code == 422
    assert "Velg hva slags hendelse det er." in refused.text
    assert await mine(stack.client, stack.auth("reporter")) == []
    unknown = await stack.client.post(
        "/meld", data={"unit_id": "u-nord", "category": "finnes-ikke"}, headers=reporter
    )
    assert unknown.status_code == 422 and "Ukjent type hendelse" in unknown.text
    no_unit = await stack.client.post("/meld", data={"category": "ran"}, headers=reporter)
    assert no_unit.status_code == 422 and "Velg enheten der det skjedde." in no_unit.text

    # A harm answered raises the severity that the type alone would give.
    sent = await stack.client.post(
        "/meld",
        data={"category": "trusler-personlig", "unit_id": "u-nord", "fact_injury": "true"},
        headers=reporter,
    )
    assert sent.status_code == 303, sent.text
    [made] = await mine(stack.client, stack.auth("reporter"))
    assert (made["severity"], made["title"]) == ("high", "Trusler ansikt til ansikt")


async def test_a_report_sent_twice_opens_one_incident(stack: Stack) -> None:
    reporter = await as_person(stack, "reporter")
    report_id = str(uuid.uuid4())
    form = {"category": "vold-fysisk", "unit_id": "u-nord", "report_id": report_id}
    first = await stack.client.post("/meld", data=form, headers=reporter)
    again = await stack.client.post("/meld", data=form, headers=reporter)
    assert first.status_code == again.status_code == 303, again.text
    assert first.headers["location"] == again.headers["location"]
    assert first.headers["location"] == f"/hendelser/{report_id}/kvittering"
    assert [i["id"] for i in await mine(stack.client, stack.auth("reporter"))] == [report_id]

    # The API: a resend answers 200 with the same incident; another person's id is a clash.
    body = {**REPORT, "id": str(uuid.uuid4())}
    made = await stack.client.post("/api/v1/incidents", json=body, headers=stack.auth("reporter"))
    resent = await stack.client.post("/api/v1/incidents", json=body, headers=stack.auth("reporter"))
    assert (made.status_code, resent.status_code) == (201, 200), resent.text
    assert made.json()["id"] == resent.json()["id"] == body["id"]
    clash = await stack.client.post("/api/v1/incidents", json=body, headers=stack.auth("leader"))
    assert clash.status_code == 409, clash.text
    assert len(await mine(stack.client, stack.auth("reporter"))) == 2


async def test_the_units_offered_come_from_the_directory(stack: Stack) -> None:
    own = await stack.client.get("/api/v1/directory/me", headers=stack.auth("reporter"))
    assert own.status_code == 200
    assert own.json()["units"] == [{"id": "u-nord", "name": "Hjemmetjenesten nord"}]
    # Someone with no unit in the directory (the admin): no unit of their own; every unit is
    # there to choose from.
    none = (await stack.client.get("/api/v1/directory/me", headers=stack.auth("admin"))).json()
    assert none["units"] == [] and "u-skole" in [u["id"] for u in none["all_units"]]
    page = await stack.client.get("/meld", headers=await as_person(stack, "admin"))
    assert 'data-testid="report-unit-select"' in page.text and "Velg enhet" in page.text

    directory = demo_directory()
    directory["units"].append(NIGHT)
    saved = await stack.client.put("/api/v1/directory", json=directory, headers=stack.auth("admin"))
    assert saved.status_code == 200, saved.text
    two = (await stack.client.get("/api/v1/directory/me", headers=stack.auth("leader"))).json()
    assert [u["id"] for u in two["units"]] == ["u-nord", "u-natt"]  # her own unit first
    page = await stack.client.get("/meld?kategori=ran", headers=await as_person(stack, "leader"))
    assert 'data-testid="report-unit-choice"' in page.text
    assert not re.search(r'name="unit_id" value="[^"]+" required checked', page.text)
