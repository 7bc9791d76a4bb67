"""The incidents service: `create_app(settings)`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.incidents import api
from services.incidents import bus as incident_bus
from services.incidents.settings import IncidentSettings
from services.incidents.store import (
    AccessLog,
    DamagedLog,
    IncidentLog,
    LogKeys,
    OrgLogs,
    StoreClosed,
)
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
    keys = LogKeys(
        settings.service_dir("incidents") / "log-keys", settings.log_name, settings.log_signing_key
    )
    logs = OrgLogs(settings.service_dir("incidents") / "log.sqlite", store, keys, settings.log_name)
    tree_due = threading.Event()

    def saved() -> None:
        relay.wake()
        tree_due.set()

    store.on_saved = saved

    def follow_log(stop: threading.Event) -> None:
        """Takes each committed event into the organisation's tree soon after it is stored, so
        the tree knows every incident even if its rows are later deleted (verify says so)."""
        while not stop.is_set():
            tree_due.wait(timeout=1.0)
            tree_due.clear()
            try:
                logs.catch_up()
            except StoreClosed:
                return
            except Exception as exc:  # the next commit, or the next second, tries again
                logging.getLogger(__name__).warning("log tree: %s", type(exc).__name__)

    incident_bus.register(broker, store, settings)
    access = AccessLog(settings.service_dir("incidents") / "access.sqlite", clock)
    directory = bus.DirectoryWatch()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.connect()
        await bus.ensure_streams(broker, settings)
        await broker.start()
        relay_task = asyncio.create_task(relay.run(), name="incidents-relay")
        stop_tree = threading.Event()
        tree_thread = threading.Thread(
            target=follow_log, args=(stop_tree,), name="incidents-log-tree", daemon=True
        )
        tree_thread.start()
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
            stop_tree.set()
            tree_due.set()
            await asyncio.to_thread(tree_thread.join, 10)
            store.close()
            logs.close()
            access.close()

    async def store_ready() -> bool:
        await asyncio.to_thread(store.recorder.max_notification_id)
        return True

    async def log_ready() -> bool:
        # A halted tree: an event could not be read in order; the log is damaged there.
        await asyncio.to_thread(logs.catch_up)
        return logs.halted is None

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
        health_router(
            {
                "store": store_ready,
                "log": log_ready,
                "bus": bus_ready,
                "directory": directory_ready,
            }
        )
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
            logs,
        )
    )
    app.include_router(
        api.build_log_router(
            store, logs, caller_dependency(signing_key(settings), clock), directory.tree
        )
    )
    app.state.logs = logs
    app.state.clock = clock
    app.state.store = store
    app.state.directory = directory
    app.state.relay = relay
    app.state.broker = broker
    return app
