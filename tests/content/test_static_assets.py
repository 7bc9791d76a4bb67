"""Issue 16, fast on a slow phone: hashed static files cached for good, compressed answers.

In process, on the content service alone (as `kriselogg serve content` runs it): the pages name
each static file by a hashed URL, which serves the file with a year-long immutable cache; text
answers come gzipped to a browser that asks; pages are never stored. The same over a real
`kriselogg up` and in Chromium: tests/e2e/test_static_assets.py.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.content.assets import IMMUTABLE, hashed_name, hashed_names
from services.content.portal import STATIC, static_files
from shared.compression import compressed
from tests.content.conftest import ContentClient

GZIP = {"Accept-Encoding": "gzip"}
HASHED = re.compile(r"/static/[\w./-]+\.[0-9a-f]{12}\.\w+")


def test_a_files_name_changes_when_its_content_does_and_only_then(tmp_path: Path) -> None:
    (tmp_path / "style.css").write_text("body { color: black }")
    (tmp_path / "htmx.min.js").write_text("var htmx = {};")
    (tmp_path / "icons").mkdir()
    (tmp_path / "icons" / "bell.svg").write_text("<svg></svg>")
    before = hashed_names(tmp_path)
    assert set(before) == {"style.css", "htmx.min.js", "icons/bell.svg"}
    assert re.fullmatch(r"style\.[0-9a-f]{12}\.css", before["style.css"])
    assert re.fullmatch(r"htmx\.min\.[0-9a-f]{12}\.js", before["htmx.min.js"])
    assert re.fullmatch(r"icons/bell\.[0-9a-f]{12}\.svg", before["icons/bell.svg"])

    (tmp_path / "style.css").write_text("body { color: navy }")
    after = hashed_names(tmp_path)
    assert after["style.css"] != before["style.css"]
    assert after["htmx.min.js"] == before["htmx.min.js"]
    assert after["icons/bell.svg"] == before["icons/bell.svg"]
    # Back to the old content, back to the old name: the hash is of the content alone.
    assert hashed_name("style.css", b"body { color: black }") == before["style.css"]


async def test_pages_name_hashed_files_that_are_cached_for_good_and_gzipped(
    content: ContentClient,
) -> None:
    page = await content.client.get("/logg-inn", headers=GZIP)
    assert page.status_code == 200
    named = set(HASHED.findall(page.text))
    names = static_files().names
    for plain in ("style.css", "htmx.min.js", "favicon.svg"):
        assert f"/static/{names[plain]}" in named, f"the page does not name {plain} hashed"
    assert "/static/style.css" not in page.text

    for url in sorted(named):
        plain = next(p for p, h in names.items() if url == f"/static/{h}")
        asset = await content.client.get(url, headers=GZIP)
        assert asset.status_code == 200, url
        assert asset.headers["cache-control"] == IMMUTABLE
        assert asset.content == (STATIC / plain).read_bytes()
        assert "content-security-policy" in asset.headers  # the hardening is kept
        if plain.endswith((".css", ".js")):
            assert asset.headers["content-encoding"] == "gzip", url
            # What crossed the wire: httpx counts it before it unpacks.
            assert asset.num_bytes_downloaded < len(asset.content) / 2, url


async def test_every_file_of_the_static_folder_has_a_hashed_url(content: ContentClient) -> None:
    files = sorted(p for p in STATIC.rglob("*") if p.is_file())
    assert files
    for path in files:
        name = path.relative_to(STATIC).as_posix()
        answer = await content.client.get(static_files().url(name))
        assert answer.status_code == 200, name
        assert answer.content == path.read_bytes(), name


async def test_the_plain_name_is_still_served_but_revalidated(content: ContentClient) -> None:
    # Notify's acknowledgement page names /static/style.css: it must not keep an old one.
    plain = await content.client.get("/static/style.css")
    assert plain.status_code == 200
    assert plain.headers["cache-control"] == "no-cache"
    again = await content.client.get(
        "/static/style.css", headers={"If-None-Match": plain.headers["etag"]}
    )
    assert again.status_code == 304
    assert (await content.client.get("/static/style.0123456789ab.css")).status_code == 404


async def test_a_page_comes_gzipped_and_is_never_stored(content: ContentClient) -> None:
    page = await content.client.get("/logg-inn", headers=GZIP)
    assert page.headers["content-encoding"] == "gzip"
    assert page.headers["cache-control"] == "no-store"
    assert "Accept-Encoding" in page.headers["vary"]
    for header in ("content-security-policy", "x-content-type-options", "x-frame-options"):
        assert header in page.headers, header
    assert "<!doctype html>" in page.text

    plain = await content.client.get("/logg-inn", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.text == page.text


async def test_the_origin_gzips_json_but_not_log_forms_or_the_streamed_export() -> None:
    """`kriselogg up` wraps the whole origin: the API's JSON shrinks, packed files stay as
    they are, and the JSON Lines export is not held back to fill gzip blocks."""
    docx = b"PK\x03\x04" + bytes(range(256)) * 8
    lines = b"".join(b'{"seq": %d, "type": "MeasureLogged"}\n' % i for i in range(100))
    app = FastAPI()

    @app.get("/timeline")
    def timeline() -> JSONResponse:
        return JSONResponse({"events": [{"seq": i, "type": "MeasureLogged"} for i in range(100)]})

    @app.get("/log.docx")
    def log_form() -> Response:
        media = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        return Response(docx, media_type=media)

    @app.get("/export")
    def export() -> StreamingResponse:
        return StreamingResponse(iter([lines]), media_type="application/x-ndjson")

    transport = httpx.ASGITransport(app=compressed(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://origin") as client:
        json_answer = await client.get("/timeline", headers=GZIP)
        assert json_answer.headers["content-encoding"] == "gzip"
        assert len(json_answer.json()["events"]) == 100
        form = await client.get("/log.docx", headers=GZIP)
        assert "content-encoding" not in form.headers
        assert form.content == docx
        streamed = await client.get("/export", headers=GZIP)
        assert "content-encoding" not in streamed.headers
        assert streamed.content == lines
    # Left alone by choice: the export would shrink well.
    assert len(gzip.compress(lines)) < len(lines) / 4
