"""What every service's HTTP side shares: problem+json errors, the caller, health probes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.auth import Principal, TokenError, TokenVerifier

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


class Problem(Exception):
    """An error a person can act on, answered as RFC 9457 problem+json."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.extra = extra


def problem_response(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "affected", 0) -> "affected[0]"; the "body"/"query" prefix says nothing to a user.
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc.status, exc.title, exc.detail, **exc.extra)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": _field(err.get("loc", ())), "message": err.get("msg", "invalid")}
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(422, "Invalid request", detail, errors=errors)

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(exc.status_code, "Request failed", str(exc.detail))

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Logged by type only: exception messages may carry personal data from a request.
        log.error("unhandled %s", type(exc).__name__, exc_info=exc)
        return problem_response(500, "Internal error", "The service failed; the error is logged.")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


_bearer = HTTPBearer(auto_error=False)


def caller_dependency(key: str) -> Callable[..., Awaitable[Principal]]:
    """The authenticated caller; the organisation always comes from here, never from the request."""
    verify = TokenVerifier(key)

    async def caller(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if creds is None or creds.scheme.lower() != "bearer":
            raise Problem(401, "Not signed in", "Send 'Authorization: Bearer <token>'.")
        try:
            return verify(creds.credentials)
        except TokenError as exc:
            raise Problem(401, "Not signed in", str(exc)) from exc

    return caller


def health_router(checks: dict[str, Callable[[], Awaitable[bool]]]) -> APIRouter:
    """`/healthz` answers while the process runs; `/readyz` only when every check passes."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                results[name] = await check()
            except Exception:
                results[name] = False
        ok = all(results.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": results},
            status_code=200 if ok else 503,
        )

    return router
