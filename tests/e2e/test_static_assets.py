"""Issue 16, fast on a slow phone, over a real `kriselogg up` and in Chromium.

The pages and their static files come gzipped from the one origin, the API's JSON too; a static
file is named by its content's hash and cached for good, so a phone that opens a second page
fetches only that page, not the style sheet and htmx again. The details, in process:
tests/content/test_static_assets.py; the figures on throttled 3G: bench/portal_3g.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import async_playwright

from services.content.assets import IMMUTABLE
from services.content.portal import static_files
from tests.e2e.test_portal import CHROMIUM_ARGS, PHONE, Browser, chromium, kriselogg

__all__ = ["chromium", "kriselogg"]  # fixtures shared with the portal's browser tests

GZIP = {"Accept-Encoding": "gzip"}
HASHED = re.compile(r"/static/[\w./-]+\.[0-9a-f]{12}\.\w+")
# What the browser fetched for the page it shows: the page itself first.
ENTRIES_JS = """
() => [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")]
  .map((e) => ({
    name: new URL(e.name).pathname,
    transfer: e.transferSize,
    encoded: e.encodedBodySize,
    decoded: e.decodedBodySize,
  }))
"""


async def test_a_phone_fetches_style_and_htmx_once_and_every_answer_comes_gzipped(
    chromium: Path, kriselogg: str
) -> None:
    base = kriselogg
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        login = await client.get("/logg-inn", headers=GZIP)
        assert login.status_code == 200
        assert login.headers["content-encoding"] == "gzip"
        assert login.headers["cache-control"] == "no-store"
        assert "content-security-policy" in login.headers
        # The same folder as the server's, so the same names.
        assets = {plain: f"/static/{hashed}" for plain, hashed in static_files().names.items()}
        named = set(HASHED.findall(login.text))
        assert {assets[p] for p in ("style.css", "htmx.min.js", "favicon.svg")} <= named, named
        for name, url in assets.items():
            asset = await client.get(url, headers=GZIP)
            assert asset.status_code == 200, url
            assert asset.headers["cache-control"] == IMMUTABLE, url
            if name.endswith((".css", ".js")):
                assert asset.headers["content-encoding"] == "gzip", url
        # The gateway's own answer, the merged API schema: the whole origin is compressed.
        schema = await client.get("/openapi.json", headers=GZIP)
        assert schema.headers["content-encoding"] == "gzip"
        assert schema.num_bytes_downloaded < len(schema.content) / 3

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(viewport=PHONE)
            page = await context.new_page()
            person = Browser(page, base)
            await person.login("p-ln")  # the login page and the start page fetch the assets
            await page.goto(f"{base}/meld")
            entries: list[dict[str, Any]] = await page.evaluate(ENTRIES_JS)
            page_itself, loaded = entries[0], entries[1:]
            assert page_itself["name"] == "/meld"
            assert 0 < page_itself["encoded"] < page_itself["decoded"] / 2  # gzipped
            from_cache = {e["name"]: e["transfer"] for e in loaded if e["name"] in assets.values()}
            assert set(from_cache) >= {assets["style.css"], assets["htmx.min.js"]}, loaded
            assert all(size == 0 for size in from_cache.values()), loaded  # no request at all
            assert not person.problems, person.problems
        finally:
            await browser.close()
