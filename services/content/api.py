"""HTTP API of the guidance catalogue (DESIGN §8) and the portal's start page.

Every answer carries the content version (body and `Content-Version` header), so an incident can
record exactly which guidance it followed. National content is resolved once at start-up; a
request only adds the caller's organisation's local additions.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from html import escape
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, StringConstraints

from services.content.domain import Catalogue, LocalAddition, SearchIndex
from services.content.store import LocalStore
from shared.auth import Principal
from shared.http import Problem, RateLimit
from shared.oidc import Identity, LoginState, OidcClient, OidcError, kriselogg_token

log = logging.getLogger(__name__)


def not_found(kind: str, item_id: str) -> Problem:
    return Problem(404, "Finnes ikke", f"{kind} {item_id} finnes ikke i veiledningen.")


def build_router(
    catalogue: Catalogue,
    index: SearchIndex,
    local: LocalStore,
    caller: Callable[..., Awaitable[Principal]],
) -> APIRouter:
    router = APIRouter(prefix="/api/v1/guidance", tags=["guidance"])
    Caller = Annotated[Principal, Depends(caller)]
    version = catalogue.version
    headers = {"Content-Version": version}
    # Resolved once: the national content never changes while the service runs.
    tree = {"content_version": version, **catalogue.tree()}
    subthemes = {sid: catalogue.subtheme_view(sid) for sid in catalogue.subthemes}
    articles = {aid: catalogue.article_view(aid) for aid in catalogue.articles}

    def answer(body: dict[str, Any], status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=headers)

    @router.get("/themes", summary="Themes with their sub-themes, and the resources")
    def themes(_: Caller) -> JSONResponse:
        return answer(tree)

    @router.get("/subthemes/{subtheme_id}", summary="Phases with prioritised measures and aids")
    async def subtheme(subtheme_id: str, who: Caller) -> JSONResponse:
        view = subthemes.get(subtheme_id)
        if view is None:
            raise not_found("Deltemaet", subtheme_id)
        additions = await asyncio.to_thread(local.for_subtheme, who.org_id, subtheme_id)
        return answer({"content_version": version, **view, "local": additions})

    @router.get("/resources/{article_id}", summary="A resource article (first aid, plans, ...)")
    def resource(article_id: str, _: Caller) -> JSONResponse:
        view = articles.get(article_id)
        if view is None:
            raise not_found("Ressursen", article_id)
        return answer({"content_version": version, **view})

    @router.get("/search", summary="Sub-themes, measures and articles matching the words")
    def search(
        _: Caller,
        q: Annotated[str, Query(min_length=1, max_length=200, description="Search words")],
        limit: Annotated[int, Query(ge=1, le=50)] = 20,
    ) -> JSONResponse:
        groups: dict[str, list[dict[str, Any]]] = {"subthemes": [], "articles": [], "measures": []}
        for hit in index.search(q, limit):
            item = {k: v for k, v in hit.__dict__.items() if v is not None and k != "kind"}
            groups[f"{hit.kind}s"].append(item)
        return answer({"content_version": version, "query": q, **groups})

    @router.post(
        "/subthemes/{subtheme_id}/local",
        status_code=201,
        summary="Add the organisation's own article, aid or contact to a sub-theme (admin)",
    )
    async def add_local(subtheme_id: str, addition: LocalAddition, who: Caller) -> JSONResponse:
        if not who.has_any("admin"):
            raise Problem(403, "Ingen tilgang", "Bare administrator kan legge til lokalt innhold.")
        if subtheme_id not in subthemes:
            raise not_found("Deltemaet", subtheme_id)
        row = await asyncio.to_thread(
            local.add,
            who.org_id,
            subtheme_id,
            addition.kind,
            addition.model_dump(exclude_none=True, exclude={"kind"}),
            who.person_id,
        )
        return answer(row, status=201)

    @router.delete(
        "/local/{addition_id}", status_code=204, summary="Remove a local addition (admin)"
    )
    async def delete_local(addition_id: str, who: Caller) -> Response:
        if not who.has_any("admin"):
            raise Problem(403, "Ingen tilgang", "Bare administrator kan fjerne lokalt innhold.")
        if not await asyncio.to_thread(local.delete, who.org_id, addition_id):
            raise not_found("Det lokale innholdet", addition_id)
        return Response(status_code=204, headers=headers)

    return router


def portal_router(catalogue: Catalogue) -> APIRouter:
    router = APIRouter(tags=["portal"])

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def start_page() -> str:
        items = "".join(
            f"<li>{escape(t.title)} ({len(t.subthemes)} deltemaer)</li>" for t in catalogue.themes
        )
        return (
            "<!doctype html><html lang='nb'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<title>kriselogg</title></head><body><main>"
            "<h1>kriselogg</h1><p>Veiledning og hendelseslogg for ledere i krise.</p>"
            f"<h2>Temaer</h2><ul>{items}</ul></main></body></html>"
        )

    return router


LOGIN_COOKIE = "kriselogg_login"
TOKEN_COOKIE = "kriselogg_token"  # noqa: S105 - a cookie name, not a secret
LOGIN_AUDIENCE = "kriselogg-login"


class DevLoginIn(BaseModel):
    person_id: Annotated[str, StringConstraints(max_length=64)]


def auth_router(
    oidc: OidcClient | None,
    key: str,
    secure_cookies: bool,
    dev_people: Callable[[], list[dict[str, Any]] | None] = lambda: None,
) -> APIRouter:
    """Login with the organisation's identity provider (OpenID Connect, code flow with PKCE).

    The login state (state, nonce, PKCE verifier) travels in a short-lived signed cookie, so no
    server-side session is kept. On return, the provider's id_token is verified and kriselogg
    issues its own token for the person: in an HttpOnly cookie for the portal, and in the body
    for scripts.
    """
    router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
    limit = RateLimit(per_minute=20)

    def client() -> OidcClient:
        if oidc is None:
            raise Problem(
                404,
                "Login not configured",
                "This installation has no identity provider: set KRISELOGG_OIDC_ISSUER, "
                "KRISELOGG_OIDC_CLIENT_ID, KRISELOGG_OIDC_REDIRECT_URI and KRISELOGG_OIDC_ORG.",
            )
        return oidc

    @router.get("/login", status_code=302, dependencies=[Depends(limit)])
    async def login() -> Response:
        url, state = await client().login_url()
        signed = jwt.encode(
            {
                "aud": LOGIN_AUDIENCE,
                "exp": int(time.time()) + 600,
                "state": state.state,
                "nonce": state.nonce,
                "verifier": state.code_verifier,
            },
            key,
            algorithm="HS256",
        )
        response = RedirectResponse(url, status_code=302)
        # Lax, not Strict: the return from the provider is a cross-site navigation.
        response.set_cookie(
            LOGIN_COOKIE, signed, max_age=600, httponly=True, secure=secure_cookies,
            samesite="lax", path="/api/v1/auth",
        )  # fmt: skip
        return response

    @router.get("/callback", dependencies=[Depends(limit)])
    async def callback(
        request: Request,
        code: Annotated[str | None, Query(max_length=2000)] = None,
        state: Annotated[str | None, Query(max_length=500)] = None,
        error: Annotated[str | None, Query(max_length=200)] = None,
    ) -> JSONResponse:
        oidc_client = client()
        if error is not None:
            raise Problem(400, "Login refused", f"The identity provider answered: {error}.")
        if code is None or state is None:
            raise Problem(400, "Login incomplete", "The identity provider sent no code.")
        try:
            claims = jwt.decode(
                request.cookies.get(LOGIN_COOKIE, ""), key, algorithms=["HS256"],
                audience=LOGIN_AUDIENCE,
            )  # fmt: skip
        except jwt.PyJWTError:
            raise Problem(
                400, "Login expired", "Start the login again from the beginning."
            ) from None
        expected = LoginState(claims["state"], claims["nonce"], claims["verifier"])
        try:
            identity = await oidc_client.finish(code, state, expected)
        except OidcError as exc:
            log.warning("OIDC login failed: %s", exc.detail or exc.message)
            raise Problem(400, "Login failed", exc.message) from None
        if not identity.roles:
            raise Problem(
                403, "No role", "You are known, but have no role in kriselogg; ask your admin."
            )
        token = kriselogg_token(identity, key)
        response = JSONResponse(
            {
                "token": token,
                "person_id": identity.person_id,
                "name": identity.name,
                "org_id": identity.org_id,
                "roles": sorted(identity.roles),
            }
        )
        response.delete_cookie(LOGIN_COOKIE, path="/api/v1/auth")
        response.set_cookie(
            TOKEN_COOKIE, token, max_age=12 * 3600, httponly=True, secure=secure_cookies,
            samesite="lax", path="/",
        )  # fmt: skip
        return response

    def demo() -> list[dict[str, Any]]:
        people = dev_people()
        if people is None:
            raise Problem(
                404,
                "No development login",
                "The development login exists only in the demo of `kriselogg up`.",
            )
        return people

    @router.get("/dev", dependencies=[Depends(limit)])
    def dev_login_people() -> dict[str, Any]:
        """DEVELOPMENT ONLY: the demo people anyone may log in as (embedded demo mode)."""
        return {
            "warning": "Utviklingsinnlogging: bare for demoen, aldri i drift.",
            "people": demo(),
        }

    @router.post("/dev", dependencies=[Depends(limit)])
    def dev_login(body: DevLoginIn) -> JSONResponse:
        """DEVELOPMENT ONLY: a token for one of the demo people, without a password."""
        person = next((p for p in demo() if p["person_id"] == body.person_id), None)
        if person is None:
            raise Problem(404, "Unknown demo person", f"No demo person {body.person_id}.")
        identity = Identity(
            person_id=person["person_id"],
            name=person["name"],
            email=None,
            roles=frozenset(person["roles"]),
            org_id=person["org_id"],
        )
        token = kriselogg_token(identity, key)
        response = JSONResponse(
            {"token": token, "development_login": True, **{k: person[k] for k in ("person_id",
             "name", "org_id", "roles")}}
        )  # fmt: skip
        response.set_cookie(
            TOKEN_COOKIE, token, max_age=12 * 3600, httponly=True, secure=secure_cookies,
            samesite="lax", path="/",
        )  # fmt: skip
        return response

    return router
