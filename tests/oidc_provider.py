"""A small but real OpenID Connect provider for the tests (issue 7's local test identity provider).

It serves discovery, /authorize, /token and /jwks over real HTTP on loopback, signs id_tokens with
an RSA key generated at start (RS256, kid in the JWKS), checks client, redirect URI and PKCE, and
auto-approves a configured user, so a test can do the whole authorization-code flow with httpx
and no browser. `fault` makes it issue one kind of bad id_token for the negative tests, and
`rotate_key` replaces its signing key as a real IdP's key rotation does.

    with run_provider(users={"lise": {...}}, clients={"portal": Client(...)}) as idp:
        idp.issuer  # http://127.0.0.1:<port>
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.support import ListeningServer

Fault = Literal[
    "expired", "wrong_audience", "wrong_issuer", "wrong_nonce", "foreign_key", "forged_signature"
]

DEFAULT_CLIENT_ID = "kriselogg-portal"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8080/api/v1/auth/callback"

DEFAULT_USERS: dict[str, dict[str, Any]] = {
    "lise": {
        "preferred_username": "p-ln",
        "name": "Lise Nord",
        "email": "lise.nord@example.no",
        # "superuser" is no kriselogg role and must be dropped; "org" must be ignored.
        "roles": ["leader", "hr", "superuser"],
        "org": "some-other-org",
    },
}


@dataclass(frozen=True)
class Client:
    redirect_uris: tuple[str, ...]
    secret: str | None = None  # None: a public client, which must use PKCE


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    user: str
    nonce: str | None
    code_challenge: str
    issued: float


@dataclass
class Provider:
    """The provider's state; tests read and change it while the server thread serves."""

    issuer: str
    users: dict[str, dict[str, Any]]
    clients: dict[str, Client]
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    approve_as: str = ""  # the user /authorize logs in; default: the first one
    fault: Fault | None = None
    token_ttl: int = 300
    key: RSAKey = field(default_factory=_new_key)
    codes: dict[str, _Grant] = field(default_factory=dict)
    # What the tests check: how often the JWKS was fetched, how clients authenticated.
    jwks_requests: int = 0
    token_requests: int = 0
    client_auth_used: list[str] = field(default_factory=list)

    def rotate_key(self) -> None:
        """Sign with a new key from now on and publish only that one, as after a rotation."""
        self.key = _new_key()

    def metadata(self) -> dict[str, Any]:
        base = self.issuer.rstrip("/")
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [*self.auth_methods, "none"],
        }

    def id_token(self, grant: _Grant, access_token: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": f"sub-{grant.user}",
            "aud": grant.client_id,
            "iat": now,
            "exp": now + self.token_ttl,
            "auth_time": now,
            # at_hash (OIDC Core §3.3.2.11) binds the access token to this id_token.
            "at_hash": _b64(hashlib.sha256(access_token.encode()).digest()[:16]),
            **self.users[grant.user],
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        key = self.key
        header = {"alg": "RS256", "kid": key.kid}
        match self.fault:
            case "expired":
                claims["iat"], claims["exp"] = now - 3600, now - 1800
            case "wrong_audience":
                claims["aud"] = "some-other-app"
            case "wrong_issuer":
                claims["iss"] = "https://idp.example.invalid"
            case "wrong_nonce":
                claims["nonce"] = "not-the-nonce-of-this-login"
            case "foreign_key":
                # A key the JWKS never lists, under its own kid.
                key = _new_key()
                header["kid"] = key.kid
            case "forged_signature":
                # Another key's signature under the published key's kid.
                key = _new_key()
            case None:
                pass
        return jwt.encode(header, claims, key, algorithms=["RS256"])


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str | None, str]:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        raw = base64.b64decode(auth[6:]).decode()
        client_id, _, secret = raw.partition(":")
        return unquote(client_id), unquote(secret), "client_secret_basic"
    if "client_secret" in form:
        return form.get("client_id", ""), form["client_secret"], "client_secret_post"
    return form.get("client_id", ""), None, "none"


def build_app(provider: Provider) -> FastAPI:
    app = FastAPI(title="test OpenID provider")

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return provider.metadata()

    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        provider.jwks_requests += 1
        return {"keys": [provider.key.as_dict(private=False)]}

    @app.get("/authorize")
    async def authorize(request: Request) -> Response:
        q = request.query_params
        client = provider.clients.get(q.get("client_id", ""))
        redirect_uri = q.get("redirect_uri", "")
        # Never redirect to an unregistered URI (RFC 6749 §4.1.2.1): answer here instead.
        if client is None or redirect_uri not in client.redirect_uris:
            return PlainTextResponse("unknown client or redirect_uri", status_code=400)
        problem = None
        if q.get("response_type") != "code":
            problem = ("unsupported_response_type", "only code")
        elif "openid" not in q.get("scope", "").split():
            problem = ("invalid_scope", "openid is required")
        elif q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            problem = ("invalid_request", "PKCE with S256 is required")
        state = q.get("state")
        params: dict[str, str] = {"state": state} if state else {}
        if problem:
            params.update(error=problem[0], error_description=problem[1])
        else:
            code = secrets.token_urlsafe(24)
            provider.codes[code] = _Grant(
                client_id=q["client_id"],
                redirect_uri=redirect_uri,
                user=provider.approve_as or next(iter(provider.users)),
                nonce=q.get("nonce"),
                code_challenge=q["code_challenge"],
                issued=time.time(),
            )
            params["code"] = code
        location = str(httpx.URL(redirect_uri).copy_merge_params(params))
        return RedirectResponse(location, status_code=302)

    @app.post("/token")
    async def token(request: Request) -> Response:
        provider.token_requests += 1
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        client_id, secret, method = _client_credentials(request, form)
        client = provider.clients.get(client_id)
        if client is None:
            return _oauth_error(401, "invalid_client", "unknown client")
        if client.secret is not None:
            if method not in provider.auth_methods:
                return _oauth_error(401, "invalid_client", f"{method} not allowed")
            if secret is None or not hmac.compare_digest(secret, client.secret):
                return _oauth_error(401, "invalid_client", "wrong client secret")
        provider.client_auth_used.append(method)
        if form.get("grant_type") != "authorization_code":
            return _oauth_error(400, "unsupported_grant_type", "only authorization_code")
        # A code is good once (RFC 6749 §4.1.2), and for one minute.
        grant = provider.codes.pop(form.get("code", ""), None)
        if grant is None or time.time() - grant.issued > 60 or grant.client_id != client_id:
            return _oauth_error(400, "invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _oauth_error(400, "invalid_grant", "redirect_uri differs from /authorize")
        verifier = form.get("code_verifier", "")
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        if not hmac.compare_digest(challenge, grant.code_challenge):
            return _oauth_error(400, "invalid_grant", "PKCE verification failed")
        access_token = secrets.token_urlsafe(32)
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": provider.token_ttl,
                "scope": "openid profile email",
                "id_token": provider.id_token(grant, access_token),
            },
            headers={"Cache-Control": "no-store"},
        )

    return app


@dataclass
class ProviderHandle:
    provider: Provider
    thread: threading.Thread

    @property
    def issuer(self) -> str:
        return self.provider.issuer


@contextmanager
def run_provider(
    users: dict[str, dict[str, Any]] | None = None,
    clients: dict[str, Client] | None = None,
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post"),
) -> Iterator[ProviderHandle]:
    """Serve a provider on a free loopback port in a background thread while the block runs."""
    # Bind first, so the issuer URL (which goes into every token) is known before serving.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    provider = Provider(
        issuer=f"http://127.0.0.1:{port}",
        users=dict(DEFAULT_USERS if users is None else users),
        clients=clients or {DEFAULT_CLIENT_ID: Client(redirect_uris=(DEFAULT_REDIRECT_URI,))},
        auth_methods=auth_methods,
    )
    config = uvicorn.Config(
        build_app(provider), log_level="warning", lifespan="off", access_log=False
    )
    server = ListeningServer(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="oidc-provider", daemon=True
    )
    thread.start()
    try:
        if not server.up.wait(10) or not server.started:
            raise RuntimeError("the test OpenID provider did not start")
        yield ProviderHandle(provider, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
