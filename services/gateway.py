"""One origin for the embedded mode: the four services in one process, routed by path prefix.

Production runs each service alone (`kriselogg serve`) behind any reverse proxy with the same
prefix table (deploy/); this module is only the embedded stand-in for that proxy.

The gateway answers three things itself: the health probes of the whole (`/healthz`,
`/readyz`), one OpenAPI document merged from every service's own (`/openapi.json`, see
`merged_openapi`), and the API docs for it (`/docs`, offline Swagger UI: shared.apidocs). Each
service still serves its own `/openapi.json` and `/docs` when it runs alone.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, unquote

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.apidocs import DOCS_URL, describe_parameters, install_docs
from shared.http import install_hardening, install_problem_handlers

PREFIXES: tuple[tuple[str, str], ...] = (
    ("/api/v1/guidance", "content"),
    ("/api/v1/incidents", "incidents"),
    ("/api/v1/log", "incidents"),  # the organisation's log: checkpoints and proofs
    ("/api/v1/documents", "documents"),
    ("/api/v1/directory", "notify"),
    ("/api/v1/alerts", "notify"),
    ("/api/v1/sms", "notify"),  # the SMS gateway's callback with replies
)
DEFAULT = "content"  # the portal
OWN = ("/healthz", "/readyz", "/openapi.json")  # answered by the gateway itself, with /docs...


def answered_here(path: str) -> bool:
    """Whether the gateway answers `path` itself rather than routing it to a service."""
    return path in OWN or path == DOCS_URL or path.startswith(DOCS_URL + "/")


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


TITLE = "kriselogg"
DESCRIPTION = """\
The whole HTTP API of kriselogg on one origin: guidance and login (content), the incident log
(incidents), log forms and the archive (documents), the directory and alerts (notify).

Every call but the probes and the login takes `Authorization: Bearer <token>`; the
organisation always comes from the token. Errors are RFC 9457 problem+json (`Problem`).
The bus contract between the services is docs/asyncapi.yaml.
"""
_COMPONENT_REF = "#/components/"


def _rewrite_refs(node: Any, renames: Mapping[tuple[str, str], str]) -> Any:
    """A copy of `node` with `#/components/<section>/<name>` refs renamed as `renames` says."""
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith(_COMPONENT_REF):
            section, _, name = value.removeprefix(_COMPONENT_REF).partition("/")
            new = renames.get((section, unquote(name)))
            out[key] = f"{_COMPONENT_REF}{section}/{quote(new)}" if new else value
        else:
            out[key] = _rewrite_refs(value, renames)
    return out


def _health_paths(services: list[str]) -> dict[str, Any]:
    """The gateway's own probes: the whole, and each service's probe under its name."""
    codes = {"type": "object", "additionalProperties": {"type": "integer"}}
    whole = {
        "type": "object",
        "required": ["services"],
        "properties": {
            "services": {
                **codes,
                "description": "Each service's own answer to the probe, as an HTTP status code",
                "examples": [{name: 200 for name in services}],
            }
        },
    }
    service = {
        "name": "service",
        "in": "path",
        "required": True,
        "description": "The service whose own probe to ask",
        "schema": {"type": "string", "enum": services},
    }
    service_answer = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {
                "type": "string",
                "description": "`ok` (healthz); `ready` or `not ready` (readyz)",
                "examples": ["ready"],
            },
            "checks": {
                "type": "object",
                "additionalProperties": {"type": "boolean"},
                "description": "readyz only: each dependency the service checked, and whether "
                "it answered",
                "examples": [{"store": True, "bus": True}],
            },
        },
    }
    json_of = {"application/json": {"schema": whole}}
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    paths: dict[str, Any] = {}
    for probe, what in (("healthz", "runs"), ("readyz", "is ready to serve")):
        paths[f"/{probe}"] = {
            "get": {
                "tags": ["health"],
                "summary": f"Whether every service {what}",
                "operationId": f"gateway_{probe}",
                "responses": {
                    "200": {"description": "Every service answered 200", "content": json_of},
                    "503": {"description": "At least one service did not", "content": json_of},
                },
            }
        }
        answer = {"application/json": {"schema": service_answer}}
        paths[f"/{probe}/{{service}}"] = {
            "get": {
                "tags": ["health"],
                "summary": f"Whether one service {what}",
                "operationId": f"gateway_{probe}_service",
                "parameters": [service],
                "responses": {
                    "200": {"description": "Its answer", "content": answer},
                    "404": {"description": "No such service", "content": problem},
                    "503": {"description": "Not ready: `checks` says why", "content": answer},
                },
            }
        }
    return paths


def merged_openapi(services: Mapping[str, FastAPI]) -> dict[str, Any]:
    """One OpenAPI document for the whole origin, from each service's own `app.openapi()`.

    A path is taken from the service the gateway routes it to (so content's `/healthz` is not
    the gateway's). Components of the same name are kept once when they are identical (the
    Problem schema, the bearer scheme); a different one of the same name is renamed
    `<service>.<name>`, with that service's references to it.
    """
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": "1", "description": DESCRIPTION},
        "paths": _health_paths(list(services)),
        "components": {},
    }
    operation_ids: set[str] = set()
    for name, app in services.items():
        schema = app.openapi()
        components: dict[str, dict[str, Any]] = schema.get("components", {})
        renames: dict[tuple[str, str], str] = {}
        changed = True
        while changed:  # a component that refers to a renamed one may differ only after renaming
            changed = False
            for section, items in components.items():
                existing = merged["components"].get(section, {})
                for key, value in items.items():
                    if (section, key) in renames or key not in existing:
                        continue
                    if _rewrite_refs(value, renames) != existing[key]:
                        renames[(section, key)] = f"{name}.{key}"
                        changed = True
        for section, items in components.items():
            target = merged["components"].setdefault(section, {})
            for key, value in items.items():
                target[renames.get((section, key), key)] = _rewrite_refs(value, renames)
        for path, item in schema.get("paths", {}).items():
            if answered_here(path) or route(path, services)[0] != name:
                continue  # answered by another service, or by the gateway itself
            item = _rewrite_refs(copy.deepcopy(item), renames)
            for operation in item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                operation_id = operation.get("operationId")
                if operation_id in operation_ids:
                    operation["operationId"] = f"{name}_{operation_id}"
                operation_ids.add(operation["operationId"])
            merged["paths"][path] = item
    tags = sorted(
        {t for item in merged["paths"].values() for o in item.values() for t in o.get("tags", ())}
    )
    merged["tags"] = [{"name": tag} for tag in tags]
    describe_parameters(merged)
    return merged


def docs_app(services: Mapping[str, FastAPI]) -> FastAPI:
    """The gateway's `/openapi.json` (merged) and `/docs`, with the services' headers and CSP."""
    app = FastAPI(title=TITLE, openapi_url=None, docs_url=None, redoc_url=None)
    install_problem_handlers(app)
    install_hardening(app, [])
    install_docs(app)
    schema: dict[str, Any] = {}

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        if not schema:
            schema.update(merged_openapi(services))
        return JSONResponse(schema)

    return app


class Gateway:
    def __init__(self, services: Mapping[str, FastAPI]) -> None:
        self.services = dict(services)
        self.docs = docs_app(self.services)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path = scope.get("path", "/")
        if path in ("/healthz", "/readyz"):
            await self._aggregate(path, scope, receive, send)
            return
        if answered_here(path):
            await self.docs(scope, receive, send)
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
