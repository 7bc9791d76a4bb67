"""The incidents service: `create_app(settings)`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.incidents import api
from services.incidents import bus as incident_bus
from services.incidents.settings import IncidentSettings
from services.incidents.store import AccessLog, DamagedLog, IncidentLog, StoreClosed
from shared import bus
from shared.apidocs import install_docs
from shared.auth import signing_key
from shared.clock import SYSTEM_CLOCK, Clock
from shared.http import (
    caller_dependency,
    health_router,
    install_hardening,
    install_problem_handlers,
    problem_response,
)


def create_app(settings: IncidentSettings | None = None, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    settings = settings or IncidentSettings()
    store = IncidentLog(settings, clock)
    broker = bus.make_broker(settings, "incidents")
    relay = incident_bus.Relay(store, broker, settings.subjects)
    store.on_saved = relay.wake
    incident_bus.register(broker, store, settings)
    access = AccessLog(settings.service_dir("incidents") / "access.sqlite", clock)
    directory = bus.DirectoryWatch()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.connect()
        await bus.ensure_streams(broker, settings)
        await broker.start()
        relay_task = asyncio.create_task(relay.run(), name="incidents-relay")
        watch_task = asyncio.create_task(
            directory.run(broker, settings), name="incidents-directory"
        )
        # Start (and say "ready") once the organisations' trees are read, so that the first
        # requests are not judged against empty scopes; /readyz tells if it takes longer.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await directory.ready.wait()
        try:
            yield
        finally:
            for task in (relay_task, watch_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await broker.stop()
            store.close()
            access.close()

    async def store_ready() -> bool:
        await asyncio.to_thread(store.recorder.max_notification_id)
        return True

    async def bus_ready() -> bool:
        return bool(broker.config.connection_state.connection.is_connected)

    # Docs: Swagger UI from a package, under the CSP (shared.apidocs), never FastAPI's CDN page.
    app = FastAPI(
        title="kriselogg incidents", version="1", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    install_problem_handlers(app)
    install_hardening(app, settings.cors_origins)
    install_docs(app)

    async def on_damaged(_: Request, exc: Exception) -> JSONResponse:
        return problem_response(
            409,
            "Hendelsesloggen er skadet",
            "Lagrede oppføringer i denne hendelsen kan ikke lenger leses; be en revisor om å "
            "kontrollere den.",
        )

    async def on_closing(_: Request, exc: Exception) -> JSONResponse:
        response = problem_response(
            503, "Starter på nytt", "Hendelsestjenesten starter på nytt; prøv igjen om et øyeblikk."
        )
        response.headers["Retry-After"] = "5"
        return response

    app.add_exception_handler(DamagedLog, on_damaged)
    app.add_exception_handler(StoreClosed, on_closing)

    async def directory_ready() -> bool:
        # Until the organisations' trees are read, leaders' scopes would look empty.
        return directory.ready.is_set()

    app.include_router(
        health_router({"store": store_ready, "bus": bus_ready, "directory": directory_ready})
    )

    async def anchor_lookup(org_id: str, incident_id: str) -> tuple[int, str] | None:
        return await incident_bus.lookup_anchor(broker, settings.subjects, org_id, incident_id)

    app.include_router(
        api.build_router(
            store,
            caller_dependency(signing_key(settings), clock),
            anchor_lookup,
            directory.tree,
            access,
        )
    )
    app.state.clock = clock
    app.state.store = store
    app.state.directory = directory
    app.state.relay = relay
    app.state.broker = broker
    return app
