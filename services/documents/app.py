"""The documents service: `create_app(settings)`.

It keeps the anchors of incident heads (tamper evidence outside the event store). Rendering the
log form arrives with issue 6.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.documents import bus as documents_bus
from services.documents.settings import DocumentSettings
from services.documents.store import AnchorStore
from shared import bus
from shared.http import health_router, install_problem_handlers


def create_app(settings: DocumentSettings | None = None) -> FastAPI:
    settings = settings or DocumentSettings()
    archive = settings.service_dir("documents")
    anchors = AnchorStore(archive / "anchors.sqlite")
    broker = bus.make_broker(settings, "documents")
    documents_bus.register(broker, anchors, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.connect()
        await bus.ensure_streams(broker, settings)
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
            anchors.close()

    async def archive_ready() -> bool:
        return archive.is_dir() and await asyncio.to_thread(anchors.ping)

    async def bus_ready() -> bool:
        return bool(broker.config.connection_state.connection.is_connected)

    app = FastAPI(title="kriselogg documents", version="1", lifespan=lifespan)
    install_problem_handlers(app)
    app.include_router(health_router({"store": archive_ready, "bus": bus_ready}))
    app.state.anchors = anchors
    return app
