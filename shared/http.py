"""What every service's HTTP side shares: problem+json errors, the caller, health probes."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import Principal, TokenError, TokenVerifier
from shared.clock import SYSTEM_CLOCK, Clock

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
    if status == 429 and "retry_after" in extra:
        headers = {"Retry-After": str(extra["retry_after"])}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "affected", 0) -> "affected[0]"; the "body"/"query" prefix says nothing to a user.
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _choices(expected: Any) -> str:
    # pydantic lists the allowed values as "'akutt' or 'oppfolging'".
    return str(expected).replace(" or ", " eller ")


# pydantic's error types -> what the person reads, in Norwegian. `{name}` is taken from the
# error's context (ctx); a type not listed here reads as "har en ugyldig verdi".
FIELD_MESSAGES: dict[str, str] = {
    "missing": "må fylles ut",
    "string_type": "må være tekst",
    "string_too_short": "må ha minst {min_length} tegn",
    "string_too_long": "kan ha høyst {max_length} tegn",
    "string_pattern_mismatch": "har feil form",
    "too_short": "må ha minst {min_length} elementer",
    "too_long": "kan ha høyst {max_length} elementer",
    "int_parsing": "må være et heltall",
    "int_type": "må være et heltall",
    "int_from_float": "må være et heltall",
    "float_parsing": "må være et tall",
    "float_type": "må være et tall",
    "bool_parsing": "må være true eller false",
    "bool_type": "må være true eller false",
    "greater_than": "må være større enn {gt}",
    "greater_than_equal": "må være minst {ge}",
    "less_than": "må være mindre enn {lt}",
    "less_than_equal": "kan være høyst {le}",
    "enum": "må være en av {expected}",
    "literal_error": "må være en av {expected}",
    "datetime_parsing": "må være et tidspunkt som 2026-03-09T14:02:00+01:00",
    "datetime_from_date_parsing": "må være et tidspunkt som 2026-03-09T14:02:00+01:00",
    "datetime_type": "må være et tidspunkt som 2026-03-09T14:02:00+01:00",
    "timezone_aware": "må ha tidssone, f.eks. 2026-03-09T14:02:00+01:00",
    "date_parsing": "må være en dato som 2026-03-09",
    "date_from_datetime_parsing": "må være en dato som 2026-03-09",
    "date_from_datetime_inexact": "må være en dato uten klokkeslett",
    "date_type": "må være en dato som 2026-03-09",
    "uuid_parsing": "må være en UUID",
    "uuid_type": "må være en UUID",
    "extra_forbidden": "er ikke et kjent felt",
    "json_invalid": "er ikke gyldig JSON",
    "json_type": "er ikke gyldig JSON",
    "dict_type": "må være et objekt",
    "model_type": "må være et objekt",
    "model_attributes_type": "må være et objekt",
    "list_type": "må være en liste",
    "url_parsing": "må være en gyldig adresse (URL)",
    "url_scheme": "må være en http- eller https-adresse",
    "union_tag_invalid": "har ukjent type",
}


def field_message(error: Mapping[str, Any]) -> str:
    """One pydantic error, in Norwegian: the standard types from the table, and our own
    validators' messages (value_error) as they are written, in Norwegian, without pydantic's
    English "Value error, " in front."""
    kind = str(error.get("type", ""))
    ctx = dict(error.get("ctx") or {})
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    template = FIELD_MESSAGES.get(kind)
    if template is None:
        return "har en ugyldig verdi"
    if "expected" in ctx:
        ctx["expected"] = _choices(ctx["expected"])
    try:
        return template.format(**ctx)
    except (KeyError, IndexError, ValueError):
        return template.split(" {", 1)[0]


def stack_without_messages(exc: BaseException, depth: int = 5) -> str:
    """Where `exc` and the exceptions that led to it were raised: types and frames, no messages."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < depth:
        seen.add(id(current))
        frames = "".join(traceback.format_tb(current.__traceback__)).rstrip()
        parts.append(f"{type(current).__name__} raised at:\n{frames}")
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return "\ncaused by ".join(parts)


ErrorPage = Callable[[Request, int, str, str, Mapping[str, Any]], Response]
"""(request, status, title, detail, the problem's other fields) -> an HTML page; see
`error_answer`."""

# What the services answer on their own (Starlette's routing and our generic handlers), per
# status: a Norwegian title and detail in place of Starlette's English reason phrase.
STATUS_TEXTS: dict[int, tuple[str, str]] = {
    400: ("Ugyldig forespørsel", "Forespørselen kunne ikke leses."),
    401: ("Ikke logget inn", "Logg inn og prøv igjen."),
    403: ("Ingen tilgang", "Rollen din gir ikke tilgang til dette."),
    404: ("Finnes ikke", "Adressen finnes ikke."),
    405: ("Ikke tillatt her", "Denne adressen tar ikke imot en slik forespørsel."),
    406: ("Kan ikke svare i det formatet", "Be om JSON (application/json)."),
    409: ("Avvist", "Forespørselen passer ikke med tilstanden nå."),
    413: ("For stor forespørsel", "Send mindre om gangen."),
    415: ("Ukjent innholdstype", "Send JSON (application/json)."),
    422: ("Ugyldig forespørsel", "Noe i forespørselen er ikke gyldig."),
    429: ("For mange forsøk", "Vent litt og prøv igjen."),
    500: ("Intern feil", "Tjenesten feilet; feilen er logget."),
    503: ("Ikke tilgjengelig nå", "Prøv igjen om litt."),
}


# Paths for programs (the API, health checks, the API's docs): problem+json unless a browser asks
# for a page.
MACHINE_PATHS = ("/api/", "/healthz", "/readyz", "/openapi.json", "/docs")


def error_answer(request: Request, status: int, title: str, detail: str, **extra: Any) -> Response:
    """problem+json, or a page for a person in a browser where the app has one.

    An app that people use in a browser (the portal, content) sets `app.state.error_page`.
    There, a path outside MACHINE_PATHS, or any request that asks for HTML (a browser's
    navigation sends `Accept: text/html`), gets that page; programs get problem+json.
    """
    state = getattr(request.scope.get("app"), "state", None)
    page: ErrorPage | None = getattr(state, "error_page", None)
    machine = request.url.path.startswith(MACHINE_PATHS)
    wants_page = not machine or "text/html" in request.headers.get("accept", "")
    if page is None or not wants_page:
        return problem_response(status, title, detail, **extra)
    answer = page(request, status, title, detail, extra)
    if status == 429 and "retry_after" in extra:
        answer.headers["Retry-After"] = str(extra["retry_after"])
    return answer


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return error_answer(request, exc.status, exc.title, exc.detail, **exc.extra)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "field": _field(err.get("loc", ())),
                "message": field_message(err),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return error_answer(request, 422, "Ugyldig forespørsel", detail, errors=errors)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        title, detail = STATUS_TEXTS.get(
            exc.status_code, ("Forespørselen ble avvist", "Prøv igjen, eller gå til forsiden.")
        )
        answer = error_answer(request, exc.status_code, title, detail)
        if exc.headers:  # e.g. Allow on 405
            answer.headers.update(exc.headers)
        return answer

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Logged by type and place only: exception messages may carry personal data from a
        # request (a KeyError of a name, a ValueError quoting a title), and a traceback ends
        # with the message, so the stack is logged without it.
        log.error("unhandled %s\n%s", type(exc).__name__, stack_without_messages(exc))
        return error_answer(request, 500, *STATUS_TEXTS[500])

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


_bearer = HTTPBearer(auto_error=False)
WITNESS_PATH = "/api/v1/log/"


def caller_dependency(key: str, clock: Clock = SYSTEM_CLOCK) -> Callable[..., Awaitable[Principal]]:
    """The authenticated caller; the organisation always comes from here, never from the request."""
    verify = TokenVerifier(key, clock=clock)

    async def caller(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if creds is None or creds.scheme.lower() != "bearer":
            raise Problem(
                401, "Ikke logget inn", "Send 'Authorization: Bearer <token>', eller logg inn."
            )
        try:
            who = verify(creds.credentials)
        except TokenError as exc:
            raise Problem(401, "Ikke logget inn", str(exc)) from exc
        # A witness (a safety rep's own checker, a court's) sees hashes and counts, nothing else:
        # checked here, where every service takes its tokens, so no endpoint can forget it.
        if who.roles == {"witness"} and not request.url.path.startswith(WITNESS_PATH):
            raise Problem(
                403,
                "Ingen tilgang",
                "Et vitnetoken gir bare tilgang til organisasjonens kontrollsummer "
                f"({WITNESS_PATH}).",
            )
        return who

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


class RateLimit:
    """At most `per_minute` requests per client address to one group of routes, else 429.

    For the doors an attacker knocks on without a token: the login and the acknowledgement
    links. In memory, per process: a few replicas each allow their share, which is still a limit.
    The address is the real client's: uvicorn takes it from X-Forwarded-For only when the
    direct peer is one of KRISELOGG_TRUSTED_PROXIES, so nobody can pick their own bucket, and
    behind a proxy everyone does not share the proxy's one.
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, list[float]] = {}

    def __call__(self, request: Request) -> None:
        retry = self.blocked(client_address(request))
        if retry is not None:
            raise Problem(
                429,
                "For mange forsøk",
                f"Vent {retry} sekunder og prøv igjen.",
                retry_after=retry,
            )
        self.hit(client_address(request))

    def blocked(self, key: str) -> int | None:
        """Seconds until `key` may try again, or None when it may now."""
        now = time.monotonic()
        recent = [t for t in self._hits.get(key, []) if now - t < 60.0]
        if len(recent) < self.per_minute:
            return None
        return int(60.0 - (now - recent[0])) + 1

    def hit(self, key: str) -> None:
        """Count one request (or, for a limit on failures only, one failure) of `key`."""
        now = time.monotonic()
        recent = [t for t in self._hits.get(key, []) if now - t < 60.0]
        recent.append(now)
        self._hits[key] = recent
        if len(self._hits) > 10_000:  # forget idle clients rather than grow without end
            for k in [k for k, v in self._hits.items() if now - v[-1] >= 60.0]:
                del self._hits[k]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


MAX_BODY_BYTES = 1024 * 1024  # the largest thing anyone sends is a directory of a big municipality
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    # Pages load nothing from elsewhere and may not be framed; forms post back to us only.
    (
        b"content-security-policy",
        b"default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class Hardening:
    """ASGI middleware: security headers on every answer, and a limit on request bodies.

    A body over the limit is refused with 413 problem+json before any of it is parsed, whether
    it announces its length or not.
    """

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def headered(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")

        async def too_big(scope: Scope, receive: Receive, send: Send) -> None:
            answer = error_answer(
                Request(scope),
                413,
                "For stor forespørsel",
                f"Send høyst {self.max_body // 1024} KiB om gangen.",
            )
            await answer(scope, receive, send)

        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await too_big(scope, receive, headered)
            return
        received = 0
        overflow = False

        async def limited_receive() -> Message:
            nonlocal received, overflow
            message = await receive()
            if message["type"] == "http.request" and not overflow:
                received += len(message.get("body", b""))
                if received > self.max_body:
                    # Stop reading here: the app gets an empty end, and its answer is replaced.
                    overflow = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        replaced = False

        async def secure_send(message: Message) -> None:
            nonlocal replaced
            if overflow:
                if not replaced:
                    replaced = True
                    await too_big(scope, receive, headered)
                return
            await headered(message)

        await self.app(scope, limited_receive, secure_send)


def install_hardening(app: FastAPI, cors_origins: list[str]) -> None:
    """Security headers, a body limit, and CORS only for the origins configured (none: off)."""
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
        )
    app.add_middleware(Hardening)
    document_problems(app)


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
PROBLEMS = {
    "400": "Malformed request (e.g. a body that is not JSON)",
    "401": "No valid token",
    "403": "The token's roles do not allow this",
    "404": "Not found in your organisation",
    "409": "Refused in the current state",
    "413": "Request too large",
    "422": "Invalid input; `errors` names each field",
    "429": "Too many requests",
    "503": "A dependency is unavailable; try again",
}


def document_problems(app: FastAPI) -> None:
    """Make the OpenAPI say what the service really answers on errors: problem+json.

    FastAPI documents its own validation error shape, which these services never send; a client
    generated from the schema, and the schemathesis run in CI, must see the real one.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = PROBLEM_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        ref = {"schema": {"$ref": "#/components/schemas/Problem"}}
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                for code, description in PROBLEMS.items():
                    responses[code] = {"description": description, "content": {PROBLEM: ref}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
