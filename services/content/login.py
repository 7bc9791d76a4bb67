"""Login: the organisation's identity provider (OpenID Connect) and the demo's development login.

Both end in a kriselogg token for the person: in the body for scripts, or, for a browser coming
back from the provider, in a portal session (services.content.sessions) that keeps the token on
the server. `safe_return` guards where a login may lead back to.
"""

import logging
import re
import time
from collections.abc import Callable
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field, StringConstraints

from services.content.sessions import Sessions
from shared.http import Problem, RateLimit
from shared.oidc import Identity, LoginState, OidcClient, OidcError, kriselogg_token

log = logging.getLogger(__name__)


# The portal's own pages a login may return to. Anything else (another host, `//evil`,
# `/\\evil`, a scheme, the API) goes to the start page instead: no open redirect.
_RETURN_PATH = re.compile(r"^(/[A-Za-z0-9._~%-]+)+/?(\?[A-Za-z0-9._~%&=+-]*)?$")


def safe_return(path: str | None) -> str:
    """`path` if it is one of the portal's own pages, else "/"."""
    if not path or len(path) > 500 or not _RETURN_PATH.match(path):
        return "/"
    if path.startswith(("//", "/api/", "/logg-inn", "/logg-ut")) or "/.." in path:
        return "/"
    return path


LOGIN_COOKIE = "kriselogg_login"
LOGIN_AUDIENCE = "kriselogg-login"


class DevLoginIn(BaseModel):
    person_id: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="One of the demo people (GET /api/v1/auth/dev)", examples=["p-ln"]
    )


TOKEN_EXAMPLE = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwLWxuIn0.c2lnbmF0dXJl"  # noqa: S105 - a made-up example


class LoggedIn(BaseModel):
    """A kriselogg token for the person (a script's; a browser gets a portal session)."""

    token: str = Field(
        description="Send it as 'Authorization: Bearer <token>'; valid 12 hours",
        examples=[TOKEN_EXAMPLE],
    )
    person_id: str = Field(description="Who is logged in", examples=["p-ln"])
    name: str = Field(description="Their name", examples=["Lise Nord"])
    org_id: str = Field(description="Their organisation", examples=["demo"])
    roles: list[str] = Field(
        description="reporter, leader, safety_rep, hr, auditor and/or admin", examples=[["leader"]]
    )


class DevLoggedIn(LoggedIn):
    development_login: bool = Field(
        description="Always true: a demo login without a password", examples=[True]
    )


class DemoPerson(BaseModel):
    person_id: str = Field(description="Log in as this (POST /api/v1/auth/dev)", examples=["p-ln"])
    name: str = Field(description="Their name", examples=["Lise Nord"])
    roles: list[str] = Field(description="Their roles", examples=[["leader"]])
    what: str = Field(
        description="Who they are in the demo", examples=["leader of Hjemmetjenesten nord"]
    )
    org_id: str = Field(description="The demo organisation", examples=["demo"])


class DemoPeople(BaseModel):
    warning: str = Field(
        description="That this is for the demo only",
        examples=["Utviklingsinnlogging: bare for demoen, aldri i drift."],
    )
    people: list[DemoPerson] = Field(description="Everyone one may log in as")


def auth_router(
    oidc: OidcClient | None,
    key: str,
    sessions: Sessions,
    dev_people: Callable[[], list[dict[str, Any]] | None] = lambda: None,
) -> APIRouter:
    """Login with the organisation's identity provider (OpenID Connect, code flow with PKCE).

    The login state (state, nonce, PKCE verifier) travels in a short-lived signed cookie, so
    nothing is kept on the server until the person is back. On return, the provider's id_token
    is verified and kriselogg issues its own token for the person: a browser gets a portal
    session holding it (the token stays on the server), a script gets it in the body.
    """
    secure_cookies = sessions.secure
    router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
    limit = RateLimit(per_minute=20)

    def client() -> OidcClient:
        if oidc is None:
            raise Problem(
                404,
                "Innlogging er ikke satt opp",
                "Denne installasjonen har ingen identitetsleverandør: sett KRISELOGG_OIDC_ISSUER, "
                "KRISELOGG_OIDC_CLIENT_ID, KRISELOGG_OIDC_REDIRECT_URI og KRISELOGG_OIDC_ORG.",
            )
        return oidc

    @router.get(
        "/login",
        status_code=302,
        dependencies=[Depends(limit)],
        summary="Start the login at the organisation's identity provider (a redirect)",
        response_description="To the identity provider",
    )
    async def login(
        neste: Annotated[str | None, Query(max_length=500)] = None,
    ) -> Response:
        url, state = await client().login_url()
        signed = jwt.encode(
            {
                "aud": LOGIN_AUDIENCE,
                "neste": safe_return(neste),
                # The system clock, not the service's: this ten-minute round trip ends in the
                # identity provider's id_token, whose times authlib checks on the system clock.
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

    @router.get(
        "/callback",
        dependencies=[Depends(limit)],
        summary="Where the identity provider sends the person back",
        response_model=LoggedIn,
        response_description="The token (a browser is sent on to the portal instead, 303)",
    )
    async def callback(
        request: Request,
        code: Annotated[str | None, Query(max_length=2000)] = None,
        state: Annotated[str | None, Query(max_length=500)] = None,
        error: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        oidc_client = client()
        if error is not None:
            raise Problem(
                400, "Innloggingen ble avvist", f"Identitetsleverandøren svarte: {error}."
            )
        if code is None or state is None:
            raise Problem(
                400, "Innloggingen er ufullstendig", "Identitetsleverandøren sendte ingen kode."
            )
        try:
            claims = jwt.decode(
                request.cookies.get(LOGIN_COOKIE, ""), key, algorithms=["HS256"],
                audience=LOGIN_AUDIENCE,
            )  # fmt: skip
        except jwt.PyJWTError:
            raise Problem(
                400, "Innloggingen er utløpt", "Start innloggingen på nytt fra begynnelsen."
            ) from None
        expected = LoginState(claims["state"], claims["nonce"], claims["verifier"])
        try:
            identity = await oidc_client.finish(code, state, expected)
        except OidcError as exc:
            log.warning("OIDC login failed: %s", exc.detail or exc.message)
            raise Problem(400, "Innloggingen mislyktes", exc.message) from None
        if not identity.roles:
            raise Problem(
                403,
                "Ingen rolle",
                "Du er kjent, men har ingen rolle i kriselogg; spør administratoren.",
            )
        token = kriselogg_token(identity, key)
        response: Response
        if "text/html" in request.headers.get("accept", ""):
            # A browser coming back from the provider goes on to the portal, logged in.
            response = RedirectResponse(safe_return(claims.get("neste")), status_code=303)
            sessions.start(request, response, token)
        else:
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
        return response

    def demo() -> list[dict[str, Any]]:
        people = dev_people()
        if people is None:
            raise Problem(
                404,
                "Ingen utviklingsinnlogging",
                "Utviklingsinnloggingen finnes bare i demoen til `kriselogg up`.",
            )
        return people

    @router.get(
        "/dev",
        dependencies=[Depends(limit)],
        response_model=None,
        responses={200: {"model": DemoPeople, "description": "The demo people"}},
    )
    def dev_login_people() -> dict[str, Any]:
        """DEVELOPMENT ONLY: the demo people anyone may log in as (embedded demo mode)."""
        return {
            "warning": "Utviklingsinnlogging: bare for demoen, aldri i drift.",
            "people": demo(),
        }

    @router.post("/dev", dependencies=[Depends(limit)], response_model=DevLoggedIn)
    def dev_login(body: DevLoginIn) -> JSONResponse:
        """DEVELOPMENT ONLY: a token for one of the demo people, without a password (in the
        body only: the portal's login form opens its own session with it)."""
        person = next((p for p in demo() if p["person_id"] == body.person_id), None)
        if person is None:
            raise Problem(404, "Ukjent demoperson", f"Ingen demoperson med id {body.person_id}.")
        identity = Identity(
            person_id=person["person_id"],
            name=person["name"],
            email=None,
            roles=frozenset(person["roles"]),
            org_id=person["org_id"],
        )
        token = kriselogg_token(identity, key)
        return JSONResponse(
            {"token": token, "development_login": True, **{k: person[k] for k in ("person_id",
             "name", "org_id", "roles")}}
        )  # fmt: skip

    return router
