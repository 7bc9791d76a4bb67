"""Login with the organisation's own identity provider through OpenID Connect (issue 7).

The portal sends the person to the identity provider (IdP) with the authorization-code flow, PKCE,
state and nonce. On the way back, `OidcClient.finish` exchanges the code, checks the IdP's
id_token against the IdP's published keys, and turns it into an `Identity`; `kriselogg_token`
then issues kriselogg's own bearer token for that person. The services keep verifying one kind of
token (shared.auth) and never talk to the IdP themselves.

JWT and JWK handling is joserfc, which authlib builds on from 1.6 on (`authlib.jose` is
deprecated); the id_token's OpenID claim rules (nonce, azp, at_hash) are authlib's `CodeIDToken`.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

# authlib ships no type information (no py.typed, no stubs): these three imports are untyped.
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
)
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from pydantic import BaseModel, Field, field_validator

from shared.auth import ROLES, issue_token

__all__ = [
    "Identity",
    "LoginState",
    "OidcClient",
    "OidcConfig",
    "OidcError",
    "kriselogg_token",
    "oidc_config_from_env",
]

# Only asymmetric signatures: an IdP's key set is public, so an HS* token "signed" with a public
# key, or an unsigned "none" token, must never pass.
ID_TOKEN_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
# Clock skew between kriselogg and the IdP; an id_token is used seconds after it is issued.
LEEWAY_SECONDS = 60
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class OidcError(Exception):
    """A login through the identity provider failed.

    `message` is for the person logging in (show it as is); `detail` is the technical reason,
    for the log only, because it may name claims, endpoints or the IdP's own error text.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or message


def _url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute http(s) URL")
    # OpenID Connect requires TLS; plain http is for a test IdP on this machine only.
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError(f"{what} must use https (http only for localhost)")
    if parts.query or parts.fragment:
        raise ValueError(f"{what} must not have a query or fragment")
    return value


class OidcConfig(BaseModel):
    """How kriselogg logs people in with one organisation's IdP (KRISELOGG_OIDC_* variables)."""

    # Kept as the exact string, not a normalised URL: the id_token's "iss" must match it
    # character for character, trailing slash included (OpenID Connect Discovery §4.3).
    issuer: str = Field(description="The IdP's issuer URL, exactly as in its id_tokens")
    client_id: str = Field(min_length=1)
    client_secret: str | None = Field(default=None, description="Unset: a public client (PKCE)")
    redirect_uri: str = Field(description="kriselogg's callback URL, as registered at the IdP")
    scopes: str = "openid profile email"
    org_id: str = Field(min_length=1, description="The kriselogg organisation these logins are in")
    person_claim: str = Field(
        default="preferred_username", description="Claim that becomes the kriselogg person id"
    )
    name_claim: str = "name"
    roles_claim: str = Field(
        default="roles", description="Claim listing kriselogg roles; other values are dropped"
    )
    jwks_cache_seconds: int = Field(default=600, ge=0)

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        return _url(value, "the OIDC issuer")

    @field_validator("redirect_uri")
    @classmethod
    def _redirect_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
            raise ValueError("the OIDC redirect URI must be an absolute http(s) URL, no fragment")
        return value

    @field_validator("scopes")
    @classmethod
    def _has_openid(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError("the OIDC scopes must include 'openid'")
        return value


def oidc_config_from_env(environ: dict[str, str] | None = None) -> OidcConfig | None:
    """The OIDC login configured by KRISELOGG_OIDC_*; None when KRISELOGG_OIDC_ISSUER is unset.

    Raises pydantic.ValidationError naming the variable's field when the rest is incomplete, so a
    half-configured login stops the service at start instead of failing at the first login.
    """
    env = os.environ if environ is None else environ
    issuer = env.get("KRISELOGG_OIDC_ISSUER")
    if not issuer:
        return None
    values: dict[str, Any] = {"issuer": issuer}
    for field, var in (
        ("client_id", "CLIENT_ID"),
        ("client_secret", "CLIENT_SECRET"),
        ("redirect_uri", "REDIRECT_URI"),
        ("org_id", "ORG"),
        ("scopes", "SCOPES"),
        ("person_claim", "PERSON_CLAIM"),
        ("name_claim", "NAME_CLAIM"),
        ("roles_claim", "ROLES_CLAIM"),
        ("jwks_cache_seconds", "JWKS_CACHE_SECONDS"),
    ):
        value = env.get(f"KRISELOGG_OIDC_{var}")
        # An empty variable means "not set" (compose files often pass VAR= through).
        if value:
            values[field] = value
    return OidcConfig.model_validate(values)


@dataclass(frozen=True)
class LoginState:
    """What the caller keeps between login_url and finish (a signed, short-lived cookie).

    All three are secrets of this one login attempt: state ties the callback to it (CSRF), nonce
    ties the id_token to it (replay), code_verifier proves the code was asked for by us (PKCE).
    """

    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class Identity:
    """A person as the IdP vouched for them, placed in the configured kriselogg organisation."""

    person_id: str
    name: str
    email: str | None
    roles: frozenset[str]
    org_id: str


def _claim(claims: dict[str, Any], name: str) -> Any:
    # A name with dots is first taken literally (Auth0 namespaces claims as URLs), then as a path
    # into nested objects (Keycloak puts roles under "realm_access.roles").
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _roles(value: Any) -> frozenset[str]:
    # Some IdPs send one space-separated string instead of a list.
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list):
        return frozenset()
    return frozenset(r for r in items if isinstance(r, str)) & ROLES


# What the person logging in reads (OidcError.message), in Norwegian; `detail` stays technical.
_AGAIN = "Start innloggingen på nytt."
_MISCONFIGURED = (
    "Innloggingen via identitetsleverandøren er feil satt opp. Si fra til administratoren."
)
_UNREACHABLE = "Identitetsleverandøren svarer ikke akkurat nå. Prøv igjen senere."
_UNUSABLE = "Identitetsleverandøren ga et svar som ikke kan brukes. Prøv igjen senere."


class OidcClient:
    """The relying-party side of the OpenID Connect authorization-code flow.

    Uses the httpx client it is given (timeouts, proxies, TLS settings and closing are the
    caller's) and is safe to share between concurrent requests: it keeps only the IdP's
    discovery document and key set, and no per-login state.
    """

    def __init__(self, config: OidcConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        # Counts key-set fetches, so a refetch after an unknown kid can tell whether a concurrent
        # login has refetched already (no second request) and whether its own set is brand new.
        self._keys_generation = 0
        self._lock = asyncio.Lock()

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            resp = await self.http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OidcError(_UNREACHABLE, f"GET {url} ({what}): {exc!r}") from exc
        try:
            data = resp.json() if resp.status_code == 200 else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise OidcError(
                _UNUSABLE, f"GET {url} ({what}): HTTP {resp.status_code}, not a JSON object"
            )
        return data

    async def discover(self) -> dict[str, Any]:
        """The IdP's discovery document, fetched once and kept for the client's lifetime."""
        if self._metadata is not None:
            return self._metadata
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        metadata = await self._get_json(url, "discovery")
        # Discovery §4.3: a document naming another issuer must not be used, or a compromised or
        # misconfigured endpoint could point us at someone else's keys.
        if metadata.get("issuer") != self.config.issuer:
            raise OidcError(
                _MISCONFIGURED,
                f"discovery names issuer {metadata.get('issuer')!r}, "
                f"configured {self.config.issuer!r}",
            )
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(metadata.get(key), str):
                raise OidcError(_MISCONFIGURED, f"discovery document has no {key}")
        self._metadata = metadata
        return metadata

    async def login_url(self) -> tuple[str, LoginState]:
        """Where to send the person, and the state to keep until they come back."""
        metadata = await self.discover()
        # 43-128 unreserved characters (RFC 7636 §4.1); letters and digits only are a subset.
        login = LoginState(
            state=generate_token(32), nonce=generate_token(32), code_verifier=generate_token(64)
        )
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri,
            "scope": self.config.scopes,
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": create_s256_code_challenge(login.code_verifier),
            "code_challenge_method": "S256",
        }
        # copy_merge_params keeps a query the endpoint already has (Azure B2C's ?p=policy).
        url = httpx.URL(metadata["authorization_endpoint"]).copy_merge_params(params)
        return str(url), login

    async def finish(self, code: str, state: str, expected: LoginState) -> Identity:
        """Check the callback, exchange the code and return who logged in.

        `code` and `state` are the callback's query parameters; `expected` is what login_url
        returned for this browser. An `error` parameter on the callback (the person cancelled at
        the IdP) is the caller's to handle before this is called.
        """
        # Before any request: a callback that is not ours must not spend the code.
        if not state or not hmac.compare_digest(state.encode(), expected.state.encode()):
            raise OidcError(
                f"Dette svaret hører ikke til innloggingen du startet. {_AGAIN}",
                "state mismatch",
            )
        if not code:
            raise OidcError(
                f"Identitetsleverandøren sendte ingen innloggingskode. {_AGAIN}", "no code"
            )
        tokens = await self._exchange(code, expected.code_verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError(
                f"Identitetsleverandøren bekreftet ikke hvem du er. {_AGAIN}",
                "token response has no id_token",
            )
        access_token = tokens.get("access_token")
        claims = await self._validate(
            id_token, expected.nonce, access_token if isinstance(access_token, str) else None
        )
        return self._identity(claims)

    async def _exchange(self, code: str, code_verifier: str) -> dict[str, Any]:
        metadata = await self.discover()
        url: str = metadata["token_endpoint"]
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {"Accept": "application/json"}
        secret = self.config.client_secret
        # The default is client_secret_basic when the IdP lists no methods (Discovery §3).
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if secret is None:
            data["client_id"] = self.config.client_id
        elif "client_secret_basic" in methods:
            # RFC 6749 §2.3.1: id and secret are form-encoded before base64; quote() output is
            # read back correctly by servers that unquote with or without "+" for space.
            pair = f"{quote(self.config.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif "client_secret_post" in methods:
            data["client_id"] = self.config.client_id
            data["client_secret"] = secret
        else:
            raise OidcError(
                _MISCONFIGURED,
                f"token endpoint supports none of client_secret_basic/post: {methods}",
            )
        try:
            resp = await self.http.post(url, data=data, headers=headers)
        except httpx.HTTPError as exc:
            raise OidcError(_UNREACHABLE, f"POST {url}: {exc!r}") from exc
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            desc = body.get("error_description") if isinstance(body, dict) else None
            raise OidcError(
                f"Identitetsleverandøren avviste innloggingen. {_AGAIN}",
                f"token endpoint HTTP {resp.status_code}: {error or resp.text[:200]!r}"
                + (f" ({desc})" if desc else ""),
            )
        return body

    async def _key_set(self, newer_than: int = -1) -> tuple[KeySet, int]:
        """The IdP's keys: cached for jwks_cache_seconds, fetched anew if older than newer_than."""
        async with self._lock:
            now = asyncio.get_running_loop().time()
            if (
                self._keys is not None
                and self._keys_generation > newer_than
                and now - self._keys_at < self.config.jwks_cache_seconds
            ):
                return self._keys, self._keys_generation
            metadata = await self.discover()
            data = await self._get_json(metadata["jwks_uri"], "JWKS")
            listed = data.get("keys")
            try:
                if not isinstance(listed, list):
                    raise ValueError("no 'keys' list")
                keys = KeySet.import_key_set({"keys": listed})
            except (JoseError, KeyError, TypeError, ValueError) as exc:
                raise OidcError(_UNUSABLE, f"JWKS not usable: {exc!r}") from exc
            self._keys, self._keys_at = keys, now
            self._keys_generation += 1
            return keys, self._keys_generation

    async def _validate(
        self, id_token: str, nonce: str, access_token: str | None
    ) -> dict[str, Any]:
        metadata = await self.discover()
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in ID_TOKEN_ALGORITHMS]
        # strict_check_header=False: IdPs add header fields of their own (x5t, Azure's "nonce");
        # they carry no authority, the algorithm allow-list and the key set do.
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        before = self._keys_generation
        keys, generation = await self._key_set()
        try:
            try:
                token = jwt.decode(id_token, keys, registry=registry)
            except InvalidKeyIdError:
                # Key rotation: the IdP signs with a key published after our copy was fetched.
                # Fetch once more, unless our copy is itself brand new. No rate limit is needed:
                # id_tokens come straight from the token endpoint, not from the browser.
                if generation != before:
                    raise
                keys, _ = await self._key_set(newer_than=generation)
                token = jwt.decode(id_token, keys, registry=registry)
            claims = CodeIDToken(
                token.claims,
                token.header,
                {
                    "iss": {"essential": True, "value": self.config.issuer},
                    "aud": {"essential": True, "value": self.config.client_id},
                },
                {"nonce": nonce, "client_id": self.config.client_id, "access_token": access_token},
            )
            claims.validate(leeway=LEEWAY_SECONDS)
        except InvalidKeyIdError as exc:
            raise OidcError(
                f"Svaret fra identitetsleverandøren kunne ikke kontrolleres. {_AGAIN}",
                f"id_token signed with a key not in the JWKS: {exc.description}",
            ) from exc
        except BadSignatureError as exc:
            raise OidcError(
                f"Svaret fra identitetsleverandøren kunne ikke kontrolleres. {_AGAIN}",
                "id_token signature does not verify",
            ) from exc
        except ExpiredTokenError as exc:
            raise OidcError(
                f"Innloggingen hos identitetsleverandøren er utløpt. {_AGAIN}", "id_token expired"
            ) from exc
        except ClaimError as exc:
            raise OidcError(_claim_message(exc.claim), f"id_token: {exc}") from exc
        except JoseError as exc:
            raise OidcError(
                f"Svaret fra identitetsleverandøren kunne ikke leses. {_AGAIN}",
                f"id_token: {exc!r}",
            ) from exc
        return dict(token.claims)

    def _identity(self, claims: dict[str, Any]) -> Identity:
        cfg = self.config
        person = _claim(claims, cfg.person_claim)
        if not isinstance(person, str) or not person.strip():
            raise OidcError(
                "Kontoen din hos identitetsleverandøren har ikke noe brukernavn kriselogg kan "
                "bruke. Si fra til administratoren.",
                f"id_token has no string claim {cfg.person_claim!r}",
            )
        name = _claim(claims, cfg.name_claim)
        email = claims.get("email")
        return Identity(
            person_id=person.strip(),
            name=name.strip() if isinstance(name, str) and name.strip() else person.strip(),
            email=email if isinstance(email, str) and email else None,
            roles=_roles(_claim(claims, cfg.roles_claim)),
            # The organisation is kriselogg's configuration, never a claim: an IdP (or a person
            # able to edit their own profile there) must not place anyone in another organisation.
            org_id=cfg.org_id,
        )


def _claim_message(claim: str) -> str:
    reasons = {
        "iss": "kommer fra en annen identitetsleverandør",
        "aud": "er ment for en annen applikasjon",
        "azp": "er ment for en annen applikasjon",
        "nonce": "hører til en annen innlogging",
        "iat": "er datert frem i tid (sjekk klokkene på tjenerne)",
        "nbf": "gjelder ikke ennå (sjekk klokkene på tjenerne)",
    }
    reason = reasons.get(claim.split(",")[0], "er ufullstendig eller har feil form")
    return f"Svaret fra identitetsleverandøren {reason}. {_AGAIN}"


def kriselogg_token(identity: Identity, key: str, hours: int = 12) -> str:
    """kriselogg's own bearer token for a person the IdP vouched for (shared.auth.issue_token)."""
    return issue_token(
        key,
        org_id=identity.org_id,
        person_id=identity.person_id,
        name=identity.name,
        roles=identity.roles,
        ttl=timedelta(hours=hours),
    )
