"""The notify service: `create_app(settings)`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI

from services.notify import api
from services.notify import bus as notify_bus
from services.notify.domain import Directory, sms
from services.notify.settings import NotifySettings
from services.notify.store import NotifyStore
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


def create_app(settings: NotifySettings | None = None, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    settings = settings or NotifySettings()
    store = NotifyStore(settings.service_dir("notify") / "notify.sqlite", clock)
    broker = bus.make_broker(settings, "notify")
    key = signing_key(settings)
    channels = notify_bus.Channels(settings, key, clock)
    dispatcher = notify_bus.Dispatcher(store, broker, settings, channels)
    notify_bus.register(broker, store, dispatcher, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.connect()
        await bus.ensure_streams(broker, settings)
        await broker.start()
        # Share every stored directory at start: a tree saved while the bus was down, or a
        # bucket lost with a NATS store, is put right here.
        for directory in await asyncio.to_thread(store.directories):
            await bus.share_directory(broker, settings, directory.tree())
        task = asyncio.create_task(dispatcher.run(), name="notify-dispatcher")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await broker.stop()
            await channels.close()
            store.close()

    async def store_ready() -> bool:
        return await asyncio.to_thread(store.ping)

    async def bus_ready() -> bool:
        return bool(broker.config.connection_state.connection.is_connected)

    async def share(directory: Directory) -> None:
        await bus.share_directory(broker, settings, directory.tree())

    # Docs: Swagger UI from a package, under the CSP (shared.apidocs), never FastAPI's CDN page.
    app = FastAPI(
        title="kriselogg notify", version="1", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    install_problem_handlers(app)
    install_hardening(app, settings.cors_origins)
    install_docs(app, api.FIELD_DOCS)
    app.include_router(health_router({"store": store_ready, "bus": bus_ready}))
    app.include_router(
        api.build_router(
            store,
            caller_dependency(key, clock),
            settings.timezone,
            settings.subjects,
            channels.ack_key,
            dispatcher.wake,
            share,
            channels.available,
            sms.SmsReplies(
                secret=(
                    settings.sms_inbound_secret.encode() if settings.sms_inbound_secret else None
                ),
                code_key=channels.sms_code_key,
                send=channels.sms_reply,
                incident_link=channels.incident_link,
                # A reply counts as long as the alert's link does (ACK_LINK_DAYS).
                window=timedelta(days=settings.ack_link_days),
                timezone=settings.timezone,
            ),
        )
    )
    app.state.clock = clock
    app.state.store = store
    app.state.dispatcher = dispatcher
    app.state.broker = broker
    return app
