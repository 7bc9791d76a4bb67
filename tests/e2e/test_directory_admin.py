"""The directory page over HTTP (issue 16, item 6): admins only; an upload shows what it changes
and applies nothing until confirmed; an older version can be brought back; a file's problems are
said with their line."""

from __future__ import annotations

from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from playwright.async_api import FilePayload, async_playwright, expect

from services.content.portal import ADMIN_ONLY, CHANGED_MEANWHILE, STALE_PREVIEW
from shared.auth import issue_token, signing_key
from tests.e2e.portal_client import as_person, logged_in
from tests.e2e.test_accessibility import Audit, axe_source
from tests.e2e.test_portal import CHROMIUM_ARGS, PHONE, Browser, chromium, kriselogg
from tests.support import Stack

__all__ = ["chromium", "kriselogg"]  # fixtures shared with the portal's browser tests

DEMO_YAML = (files("services") / "demo_directory.yaml").read_text("utf-8")


class Forms(HTMLParser):
    """The fields of each form on a page, by the form's action."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self._action: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._action = given.get("action", "")
            self.forms[self._action] = {}
        elif tag == "input" and self._action is not None and "name" in given:
            self.forms[self._action][given["name"]] = given.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._action = None


def changed_yaml() -> str:
    """The demo with a unit added and Ali Ansatt gone."""
    body = yaml.safe_load(DEMO_YAML)
    body["units"].append({"id": "u-ny", "name": "Ny enhet", "parent": "u-top", "leader": "p-os"})
    body["people"] = [p for p in body["people"] if p["id"] != "p-ansatt"]
    return yaml.safe_dump(body, allow_unicode=True, sort_keys=False)


def section(html: str, testid: str) -> str:
    start = html.index(f'data-testid="{testid}"')
    return html[start : html.index("</ul>", start)]


async def unit_known(stack: Stack, unit: str) -> bool:
    response = await stack.client.get(
        f"/api/v1/directory/units/{unit}/responders", headers=stack.auth()
    )
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


async def versions(stack: Stack) -> dict[str, Any]:
    response = await stack.client.get("/api/v1/directory/versions", headers=stack.auth("admin"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def upload(stack: Stack, headers: dict[str, str], text: str) -> Any:
    return await stack.client.post(
        "/admin/katalog",
        files={"file": ("katalog.yaml", text.encode(), "application/yaml")},
        headers=headers,
    )


async def test_a_safety_rep_cannot_open_the_directory_page(stack: Stack) -> None:
    token = issue_token(
        signing_key(stack.settings),
        org_id="demo",
        person_id="p-vo",
        name="Vera Verneombud",
        roles=["safety_rep"],
        clock=stack.clock,
    )
    rep = await logged_in(
        stack.client, stack.settings.data_dir, signing_key(stack.settings), token, stack.clock
    )
    page = await stack.client.get("/admin/katalog", headers=rep)
    assert page.status_code == 403 and ADMIN_ONLY in page.text
    assert 'href="/admin/katalog"' not in page.text  # nor is it in the menu
    refused = await upload(stack, rep, changed_yaml())
    assert refused.status_code == 403 and ADMIN_ONLY in refused.text
    for path in ("/admin/katalog/versjoner/1", "/admin/katalog/versjoner/1/katalog.yaml"):
        assert (await stack.client.get(path, headers=rep)).status_code == 403
    assert not await unit_known(stack, "u-ny")
    assert (await versions(stack))["current"] == 1


async def test_an_admin_sees_the_diff_confirms_it_and_rolls_it_back(stack: Stack) -> None:
    admin = await as_person(stack, "admin")
    preview = await upload(stack, admin, changed_yaml())
    assert preview.status_code == 200, preview.text
    assert "Ny enhet" in section(preview.text, "diff-units-added")
    assert "Ali Ansatt" in section(preview.text, "diff-people-removed")
    assert "Enheter: 1 ny, 0 fjernet, 0 endret" in preview.text
    # Nothing is applied before the confirmation.
    assert not await unit_known(stack, "u-ny")
    assert (await versions(stack))["current"] == 1

    confirm = Forms(preview.text).forms["/admin/katalog/bruk"]
    assert confirm["base"] == "1"
    # A file changed after the preview is not applied, even by the same admin's browser.
    tampered = {**confirm, "katalog": confirm["katalog"].replace("Ny enhet", "Annen enhet")}
    refused = await stack.client.post("/admin/katalog/bruk", data=tampered, headers=admin)
    assert refused.status_code == 400 and STALE_PREVIEW in refused.text
    assert not await unit_known(stack, "u-ny")

    applied = await stack.client.post("/admin/katalog/bruk", data=confirm, headers=admin)
    assert applied.status_code == 303 and applied.headers["location"] == "/admin/katalog?lagret=2"
    page = await stack.client.get(applied.headers["location"], headers=admin)
    assert "Katalogen er tatt i bruk som versjon 2: 6 enheter og 14 personer." in page.text
    assert await unit_known(stack, "u-ny")
    assert (await versions(stack))["versions"][0]["applied_by"] == "p-admin"

    # Roll back: the older version's page shows what bringing it back changes, then confirms.
    assert 'href="/admin/katalog/versjoner/1"' in page.text
    back = await stack.client.get("/admin/katalog/versjoner/1", headers=admin)
    assert back.status_code == 200
    assert "Ny enhet" in back.text[back.text.index('data-testid="diff-units-removed"') :]
    assert await unit_known(stack, "u-ny")  # only shown, still in use
    restore = Forms(back.text).forms["/admin/katalog/versjoner/1/gjenopprett"]
    restored = await stack.client.post(
        "/admin/katalog/versjoner/1/gjenopprett", data=restore, headers=admin
    )
    assert restored.status_code == 303
    assert restored.headers["location"] == "/admin/katalog?lagret=3"
    assert not await unit_known(stack, "u-ny")
    kept = await versions(stack)
    assert kept["current"] == 3 and kept["versions"][0]["restored_from"] == 1
    page = await stack.client.get(restored.headers["location"], headers=admin)
    assert "versjon 3 (gjenopprettet fra versjon 1)" in page.text

    download = await stack.client.get("/admin/katalog/versjoner/2/katalog.yaml", headers=admin)
    assert download.status_code == 200
    assert any(u["id"] == "u-ny" for u in yaml.safe_load(download.text)["units"])


async def test_a_preview_made_before_another_change_is_not_applied(stack: Stack) -> None:
    admin = await as_person(stack, "admin")
    preview = await upload(stack, admin, changed_yaml())
    confirm = Forms(preview.text).forms["/admin/katalog/bruk"]
    other = yaml.safe_load(DEMO_YAML)
    other["org"]["name"] = "Demo kommune (ny)"
    meanwhile = await stack.client.put("/api/v1/directory", json=other, headers=stack.auth("admin"))
    assert meanwhile.status_code == 200
    late = await stack.client.post("/admin/katalog/bruk", data=confirm, headers=admin)
    assert late.status_code == 409 and CHANGED_MEANWHILE in late.text
    assert not await unit_known(stack, "u-ny")
    assert (await versions(stack))["current"] == 2


async def test_a_files_problems_are_said_with_their_line(stack: Stack) -> None:
    admin = await as_person(stack, "admin")
    lines = DEMO_YAML.splitlines()
    assert lines[16].startswith("  - {id: p-hl,") and lines[18].startswith("  - {id: p-ln2,")

    wrong_unit = lines.copy()
    wrong_unit[16] = wrong_unit[16].replace("unit: u-hjemme", "unit: u-hjemmet")
    page = await upload(stack, admin, "\n".join(wrong_unit))
    assert page.status_code == 422
    assert "Linje 17: personen «p-hl» har en ukjent enhet «u-hjemmet»" in page.text

    no_name = lines.copy()
    no_name[18] = no_name[18].replace("name: Lars Nestleder, ", "")
    page = await upload(stack, admin, "\n".join(no_name))
    assert page.status_code == 422 and "Linje 19: «name» mangler" in page.text

    broken = lines.copy()
    broken[11] = "  - {id: u-skole name: Oppvekst}"
    page = await upload(stack, admin, "\n".join(broken))
    assert page.status_code == 422 and "Linje 12, kolonne" in page.text
    assert "filen er ikke gyldig YAML" in page.text
    assert (await versions(stack))["current"] == 1


async def test_the_directory_round_trip_in_chromium(
    chromium: Path, kriselogg: str, tmp_path: Path
) -> None:
    """The same in a browser, at 360 px: the file goes back with the confirmation as a real form
    sends it (its line breaks as CRLF), and every page fits the phone without console errors
    and passes axe (tests/e2e/test_accessibility.py)."""
    base = kriselogg
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=PHONE,
            locale="nb-NO",
            timezone_id="Europe/Oslo",
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            browser = Browser(page, base)
            audit = Audit(page, axe_source())
            await browser.login("p-admin")
            await page.goto(f"{base}/admin/katalog")
            await browser.check("katalog")
            upload: FilePayload = {
                "name": "katalog.yaml",
                "mimeType": "application/yaml",
                "buffer": changed_yaml().encode(),
            }
            await page.set_input_files("#file", files=[upload])
            await page.get_by_role("button", name="Se endringene").click()
            await expect(page.get_by_test_id("diff-units-added")).to_contain_text("Ny enhet")
            await expect(page.get_by_test_id("diff-people-removed")).to_contain_text("Ali Ansatt")
            await browser.check("katalog-endringer")
            await audit.check("katalog-endringer")
            await page.get_by_test_id("confirm").click()
            await expect(page.get_by_test_id("directory-ok")).to_contain_text("versjon 2")

            await page.locator('[data-version="1"]').get_by_test_id("restore").click()
            await expect(page.get_by_test_id("diff-units-removed")).to_contain_text("Ny enhet")
            await browser.check("katalog-gjenopprett")
            await audit.check("katalog-gjenopprett")
            await page.get_by_test_id("confirm").click()
            await expect(page.get_by_test_id("directory-ok")).to_contain_text(
                "versjon 3 (gjenopprettet fra versjon 1)"
            )
            await browser.check("katalog-gjenopprettet", screenshots=False)
            await audit.check("katalog-gjenopprettet")
            audit.assert_clean()
        finally:
            await context.close()
