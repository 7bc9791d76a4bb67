"""The documents service: `create_app(settings)`.

Rendering arrives with issue 6; the service already joins the bus so that readiness, the
composition and deployment are real from the start.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.documents.settings import DocumentSettings
from shared import bus
from shared.http import health_router, install_problem_handlers


def create_app(settings: DocumentSettings | None = None) -> FastAPI:
    settings = settings or DocumentSettings()
    archive = settings.service_dir("documents")
    broker = bus.make_broker(settings, "documents")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.connect()
        await bus.ensure_streams(broker, settings)
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()

    async def archive_ready() -> bool:
        return archive.is_dir()

    async def bus_ready() -> bool:
        return bool(broker.config.connection_state.connection.is_connected)

    app = FastAPI(title="kriselogg documents", version="1", lifespan=lifespan)
    install_problem_handlers(app)
    app.include_router(health_router({"archive": archive_ready, "bus": bus_ready}))
    return app
