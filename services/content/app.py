"""The content service: `create_app(settings)`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from services.content import api, login, portal
from services.content.sessions import Sessions
from services.content.settings import ContentSettings
from services.content.store import LocalStore, load_catalogue
from shared.apidocs import install_docs
from shared.auth import signing_key
from shared.clock import SYSTEM_CLOCK, Clock
from shared.compression import install_compression
from shared.http import (
    caller_dependency,
    health_router,
    install_hardening,
    install_problem_handlers,
)
from shared.oidc import OidcClient, oidc_config_from_env


def create_app(settings: ContentSettings | None = None, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    settings = settings or ContentSettings()
    # A broken catalogue stops the service at start: better no guidance than wrong guidance.
    catalogue = load_catalogue()
    index = catalogue.search_index
    local = LocalStore(settings.service_dir("content") / "content.sqlite", clock)
    key = signing_key(settings)
    # The portal's sessions live in the same store; the browser holds only their ids.
    sessions = Sessions(local, key, public_url=settings.public_url)
    oidc_config = oidc_config_from_env()
    http = httpx.AsyncClient(timeout=10.0)
    oidc = OidcClient(oidc_config, http) if oidc_config else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await http.aclose()
            await portal.close_client(app)
            local.close()

    async def store_ready() -> bool:
        return await asyncio.to_thread(local.ping)

    async def catalogue_ready() -> bool:
        return bool(catalogue.themes)

    # Docs: Swagger UI from a package, under the CSP (shared.apidocs), never FastAPI's CDN page.
    app = FastAPI(
        title="kriselogg content", version="1", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    install_problem_handlers(app)
    install_hardening(app, settings.cors_origins)
    # Outside the hardening: the security headers are set before the body is compressed.
    install_compression(app)
    install_docs(app, api.FIELD_DOCS)
    app.include_router(health_router({"catalogue": catalogue_ready, "store": store_ready}))
    app.include_router(api.build_router(catalogue, index, local, caller_dependency(key, clock)))
    # `kriselogg up` with its demo sets this list; nothing else ever does.
    app.state.dev_people = None
    app.include_router(
        login.auth_router(oidc, key, sessions, dev_people=lambda: app.state.dev_people)
    )
    # The portal calls the whole API as the logged-in person. `kriselogg up` sets this to an
    # in-process transport to the one origin; `serve content` uses KRISELOGG_API_URL instead.
    app.state.api_transport = None
    app.state.api_url = settings.api_url
    app.include_router(
        portal.portal_router(
            app,
            sessions=sessions,
            oidc_configured=oidc is not None,
            timezone=settings.timezone,
            clock=clock,
        )
    )
    portal.mount_static(app)
    return app
