"""The documents service: `create_app(settings)`.

It keeps the anchors of incident heads (tamper evidence outside the event store), renders the
log form as Word and PDF from the verified log, and archives the final form of closed incidents.
It reads incidents over HTTP: `KRISELOGG_INCIDENTS_URL` with `serve`; `up` sets
`app.state.incidents_transport` to reach the incidents app in the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib.resources import files

import httpx
from fastapi import FastAPI

from services.documents import api
from services.documents import bus as documents_bus
from services.documents.settings import DocumentSettings
from services.documents.store import AnchorStore, Archive, IncidentSource, LogForms, PdfConverter
from shared import bus
from shared.apidocs import install_docs
from shared.auth import signing_key
from shared.clock import SYSTEM_CLOCK, Clock
from shared.http import (
    caller_dependency,
    health_router,
    install_hardening,
    install_problem_handlers,
)
from shared.schemas import DocumentFactV1


def create_app(settings: DocumentSettings | None = None, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    settings = settings or DocumentSettings()
    home = settings.service_dir("documents")
    anchors = AnchorStore(home / "anchors.sqlite", clock)
    archive = Archive(home / "archive")
    work = home / "work"
    work.mkdir(exist_ok=True)
    template = (files("services.documents") / "loggskjema.docx").read_bytes()
    key = signing_key(settings)
    broker = bus.make_broker(settings, "documents")
    # Docs: Swagger UI from a package, under the CSP (shared.apidocs), never FastAPI's CDN page.
    app = FastAPI(title="kriselogg documents", version="1", docs_url=None, redoc_url=None)
    app.state.incidents_transport = None
    app.state.forms = None

    def forms() -> LogForms | None:
        issuer: LogForms | None = app.state.forms
        return issuer

    async def publish(fact: DocumentFactV1) -> None:
        await documents_bus.publish_fact(broker, settings, fact)

    documents_bus.register(broker, anchors, archive, forms, settings, key)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        transport = app.state.incidents_transport
        client = None
        if transport is not None or settings.incidents_url:
            client = httpx.AsyncClient(
                transport=transport,
                base_url=settings.incidents_url or "http://incidents",
                timeout=30.0,
            )
            converter = PdfConverter(
                settings.soffice, work, settings.pdf_workers, settings.pdf_timeout_seconds
            )
            app.state.forms = LogForms(
                IncidentSource(client), converter, anchors, template, publish, settings.timezone
            )
        await broker.connect()
        await bus.ensure_streams(broker, settings)
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
            if client is not None:
                await client.aclose()
            anchors.close()

    async def archive_ready() -> bool:
        return home.is_dir() and await asyncio.to_thread(anchors.ping)

    async def bus_ready() -> bool:
        return bool(broker.config.connection_state.connection.is_connected)

    async def incidents_ready() -> bool:
        return app.state.forms is not None

    app.router.lifespan_context = lifespan
    install_problem_handlers(app)
    install_hardening(app, settings.cors_origins)
    install_docs(app)
    app.include_router(
        health_router({"store": archive_ready, "bus": bus_ready, "incidents": incidents_ready})
    )
    app.include_router(api.build_router(forms, archive, caller_dependency(key, clock)))
    app.state.anchors = anchors
    app.state.archive = archive
    return app
