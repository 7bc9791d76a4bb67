"""The content service: `create_app(settings)`."""

from __future__ import annotations

from fastapi import FastAPI

from services.content import api
from services.content.settings import ContentSettings
from services.content.store import load_catalogue
from shared.auth import signing_key
from shared.http import caller_dependency, health_router, install_problem_handlers


def create_app(settings: ContentSettings | None = None) -> FastAPI:
    settings = settings or ContentSettings()
    menu = load_catalogue()

    async def catalogue_ready() -> bool:
        return bool(menu.themes)

    app = FastAPI(title="kriselogg content", version="1")
    install_problem_handlers(app)
    app.include_router(health_router({"catalogue": catalogue_ready}))
    app.include_router(api.build_router(menu, caller_dependency(signing_key(settings))))
    app.include_router(api.portal_router(menu))
    return app
