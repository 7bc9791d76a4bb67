"""One origin for the embedded mode: the four services in one process, routed by path prefix.

Production runs each service alone (`kriselogg serve`) behind any reverse proxy with the same
prefix table (deploy/); this module is only the embedded stand-in for that proxy.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

PREFIXES: tuple[tuple[str, str], ...] = (
    ("/api/v1/guidance", "content"),
    ("/api/v1/incidents", "incidents"),
    ("/api/v1/documents", "documents"),
    ("/api/v1/directory", "notify"),
    ("/api/v1/alerts", "notify"),
)
DEFAULT = "content"  # the portal


def route(path: str, services: Mapping[str, Any]) -> tuple[str, str]:
    """(service, path as the service sees it) for a request path."""
    for probe in ("/healthz/", "/readyz/"):
        if path.startswith(probe):
            name = path[len(probe) :].strip("/")
            if name in services:
                return name, probe.rstrip("/")
    for prefix, name in PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return name, path
    return DEFAULT, path


class Gateway:
    def __init__(self, services: Mapping[str, FastAPI]) -> None:
        self.services = dict(services)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path = scope.get("path", "/")
        if path in ("/healthz", "/readyz"):
            await self._aggregate(path, scope, receive, send)
            return
        name, inner = route(path, self.services)
        app: ASGIApp = self.services[name]
        await app({**scope, "path": inner, "raw_path": inner.encode()}, receive, send)

    async def _aggregate(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        results: dict[str, int] = {}
        for name, app in self.services.items():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                results[name] = (await client.get(path)).status_code
        ok = all(code == 200 for code in results.values())
        response = JSONResponse({"services": results}, status_code=200 if ok else 503)
        await response(scope, receive, send)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for app in self.services.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        started = False
        try:
            async with self.running():
                started = True
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
                assert message["type"] == "lifespan.shutdown"
        except Exception as exc:
            phase = "shutdown" if started else "startup"
            await send({"type": f"lifespan.{phase}.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})
