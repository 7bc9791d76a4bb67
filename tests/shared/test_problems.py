"""shared.http's answers to what goes wrong: Norwegian problem+json for the API, and a service's
own page for a person in a browser where it has one (the portal)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.http import Problem, field_message, install_hardening, install_problem_handlers

PERSONAL = "Ali Ansatt"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=2, max_length=5)
    count: int = Field(ge=1)
    phase: Literal["akutt", "oppfolging"]
    at: datetime
    code: str

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if value != "ok":
            raise ValueError("koden må være ok")
        return value


def app(with_page: bool) -> FastAPI:
    made = FastAPI()
    install_problem_handlers(made)
    install_hardening(made, [])

    @made.post("/api/v1/ting")
    def post(body: Body) -> dict[str, str]:
        return {"ok": body.title}

    @made.get("/api/v1/treg")
    def limited() -> None:
        raise Problem(429, "For mange forsøk", "Vent 7 sekunder og prøv igjen.", retry_after=7)

    @made.get("/api/v1/feil")
    def boom() -> None:
        raise RuntimeError(PERSONAL)  # a message that must reach neither the log nor the answer

    @made.get("/side")
    def page() -> str:
        return "side"

    if with_page:

        def error_page(
            request: Request, status: int, title: str, detail: str, extra: Mapping[str, Any]
        ) -> Response:
            fields = ",".join(str(e["field"]) for e in extra.get("errors", []))
            return HTMLResponse(f"<h1>{title}</h1><p>{detail}</p><i>{fields}</i>", status)

        made.state.error_page = error_page
    return made


def client(with_page: bool = False) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app(with_page), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_the_api_speaks_norwegian_and_keeps_its_machine_readable_parts() -> None:
    async with client() as api:
        bad = await api.post(
            "/api/v1/ting",
            json={"title": "x" * 9, "count": "mange", "phase": "ferdig", "at": "i går",
                  "code": "nei", "extra": 1},
        )  # fmt: skip
        missing = await api.post("/api/v1/ting", json={})
        unknown = await api.get("/api/v1/finnes-ikke")
        wrong_method = await api.delete("/api/v1/ting")
        limited = await api.get("/api/v1/treg")
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    problem = bad.json()
    assert problem["title"] == "Ugyldig forespørsel"
    messages = {e["field"]: (e["type"], e["message"]) for e in problem["errors"]}
    assert messages == {
        "title": ("string_too_long", "kan ha høyst 5 tegn"),
        "count": ("int_parsing", "må være et heltall"),
        "phase": ("literal_error", "må være en av 'akutt' eller 'oppfolging'"),
        "at": ("datetime_from_date_parsing", messages["at"][1]),
        "code": ("value_error", "koden må være ok"),
        "extra": ("extra_forbidden", "er ikke et kjent felt"),
    }
    assert messages["at"][1].startswith("må være et tidspunkt")
    assert problem["detail"].startswith("title: kan ha høyst 5 tegn; count: må være et heltall")
    assert {e["message"] for e in missing.json()["errors"]} == {"må fylles ut"}
    assert (unknown.status_code, unknown.json()["title"]) == (404, "Finnes ikke")
    assert (wrong_method.status_code, wrong_method.json()["title"]) == (405, "Ikke tillatt her")
    assert wrong_method.headers["allow"] == "POST"
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["retry_after"] == 7


async def test_an_unexpected_error_is_a_norwegian_500_logged_without_its_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        async with client() as api:
            failed = await api.get("/api/v1/feil")
    assert failed.status_code == 500
    assert failed.json()["title"] == "Intern feil"
    assert "Ali" not in failed.text and "Ali" not in caplog.text
    assert "RuntimeError" in caplog.text


async def test_a_browser_gets_the_page_and_a_program_the_problem() -> None:
    huge = b"x" * (2 * 1024 * 1024)
    async with client(with_page=True) as site:
        page = await site.get("/finnes-ikke")
        api = await site.get("/api/v1/finnes-ikke")
        navigated = await site.get("/api/v1/finnes-ikke", headers={"Accept": "text/html"})
        too_big_page = await site.post("/side", content=huge)
        too_big_api = await site.post("/api/v1/ting", content=huge)
        invalid = await site.post("/api/v1/ting", json={}, headers={"Accept": "text/html"})
        limited = await site.get("/api/v1/treg", headers={"Accept": "text/html"})
        failed = await site.get("/api/v1/feil", headers={"Accept": "text/html,*/*"})
    assert page.status_code == 404 and page.text.startswith("<h1>Finnes ikke</h1>")
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"
    assert navigated.status_code == 404 and "text/html" in navigated.headers["content-type"]
    assert too_big_page.status_code == 413 and "For stor forespørsel" in too_big_page.text
    assert too_big_page.headers["x-frame-options"] == "DENY"  # still hardened
    assert too_big_api.json()["title"] == "For stor forespørsel"
    assert invalid.status_code == 422 and "<i>title,count,phase,at,code</i>" in invalid.text
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert failed.status_code == 500 and "<h1>Intern feil</h1>" in failed.text


def test_an_unknown_error_type_still_reads_in_norwegian() -> None:
    assert field_message({"type": "something_new", "msg": "Something new"}) == (
        "har en ugyldig verdi"
    )
    # A template whose context is missing loses only the number, not the language.
    assert field_message({"type": "string_too_long", "ctx": {}}) == "kan ha høyst"
