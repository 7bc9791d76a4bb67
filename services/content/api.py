"""HTTP API of the guidance catalogue (DESIGN §8) and the portal's pages."""

from collections.abc import Awaitable, Callable
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import HTMLResponse

from services.content.domain import Menu
from shared.auth import Principal


def build_router(menu: Menu, caller: Callable[..., Awaitable[Principal]]) -> APIRouter:
    router = APIRouter(prefix="/api/v1/guidance", tags=["guidance"])
    Caller = Annotated[Principal, Depends(caller)]

    @router.get("/themes")
    def themes(_: Caller, response: Response) -> dict[str, Any]:
        response.headers["Content-Version"] = menu.version
        return {"content_version": menu.version, "themes": menu.model_dump()["themes"]}

    return router


def portal_router(menu: Menu) -> APIRouter:
    router = APIRouter(tags=["portal"])

    @router.get("/", response_class=HTMLResponse)
    def start_page() -> str:
        items = "".join(
            f"<li>{escape(t.title)} ({len(t.subthemes)} deltemaer)</li>" for t in menu.themes
        )
        return (
            "<!doctype html><html lang='nb'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<title>kriselogg</title></head><body><main>"
            "<h1>kriselogg</h1><p>Veiledning og hendelseslogg for ledere i krise.</p>"
            f"<h2>Temaer</h2><ul>{items}</ul></main></body></html>"
        )

    return router
