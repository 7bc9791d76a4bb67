"""OpenID Connect login end to end against a real provider on loopback (issue 7).

Each test runs the whole authorization-code flow over HTTP: login_url, the provider's /authorize
(it auto-approves and redirects), the code and state from the redirect, finish.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import ValidationError

from shared.auth import verify_token
from shared.oidc import (
    Identity,
    LoginState,
    OidcClient,
    OidcConfig,
    OidcError,
    kriselogg_token,
    oidc_config_from_env,
)
from tests.oidc_provider import (
    DEFAULT_CLIENT_ID,
    DEFAULT_REDIRECT_URI,
    Client,
    Fault,
    ProviderHandle,
    run_provider,
)

KEY = "k" * 32


@pytest.fixture
def idp() -> Iterator[ProviderHandle]:
    with run_provider() as handle:
        yield handle


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # No redirects followed: the redirect to kriselogg's callback is what the test reads.
    async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
        yield client


def config(idp: ProviderHandle, **overrides: Any) -> OidcConfig:
    values: dict[str, Any] = {
        "issuer": idp.issuer,
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": DEFAULT_REDIRECT_URI,
        "org_id": "demo",
        **overrides,
    }
    return OidcConfig(**values)


async def authorize(client: OidcClient, http: httpx.AsyncClient) -> tuple[str, str, LoginState]:
    """What the browser does: follow the login URL to the IdP and back to the callback."""
    url, login = await client.login_url()
    resp = await http.get(url)
    assert resp.status_code == 302, resp.text
    location = resp.headers["location"]
    assert location.startswith(DEFAULT_REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert "error" not in query, query
    return query["code"][0], query["state"][0], login


async def login(client: OidcClient, http: httpx.AsyncClient) -> Identity:
    code, state, expected = await authorize(client, http)
    return await client.finish(code, state, expected)


async def test_login_end_to_end_gives_a_kriselogg_token(
    idp: ProviderHandle, http: httpx.AsyncClient
) -> None:
    client = OidcClient(config(idp), http)
    url, login_state = await client.login_url()
    query = parse_qs(urlsplit(url).query)
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"] == [login_state.state]
    assert query["nonce"] == [login_state.nonce]
    assert login_state.code_verifier not in url  # only its hash travels through the browser

    identity = await login(client, http)
    assert identity == Identity(
        person_id="p-ln",
        name="Lise Nord",
        email="lise.nord@example.no",
        roles=frozenset({"leader", "hr"}),  # "superuser" is no kriselogg role
        org_id="demo",
    )
    principal = verify_token(KEY, kriselogg_token(identity, KEY, hours=1))
    assert (principal.person_id, principal.name) == ("p-ln", "Lise Nord")
    assert principal.roles == frozenset({"leader", "hr"})
    # The organisation comes from kriselogg's configuration, not from the IdP's "org" claim.
    assert principal.org_id == "demo"
    assert idp.provider.client_auth_used == ["none"]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_confidential_client_authenticates_as_the_idp_allows(
    http: httpx.AsyncClient, method: str
) -> None:
    secret = "s3cret with spaces:and+signs"
    clients = {DEFAULT_CLIENT_ID: Client(redirect_uris=(DEFAULT_REDIRECT_URI,), secret=secret)}
    with run_provider(clients=clients, auth_methods=(method,)) as idp:
        identity = await login(OidcClient(config(idp, client_secret=secret), http), http)
        assert identity.person_id == "p-ln"
        assert idp.provider.client_auth_used == [method]
        with pytest.raises(OidcError, match="avviste") as err:
            await login(OidcClient(config(idp, client_secret="wrong"), http), http)
        assert "invalid_client" in err.value.detail


async def test_claims_are_configurable_and_nested_roles_are_found(
    http: httpx.AsyncClient,
) -> None:
    users = {
        "ola": {
            "email": "ola@example.no",
            "given": "Ola Sør",
            "realm_access": {"roles": ["reporter", "offline_access"]},
        }
    }
    with run_provider(users=users) as idp:
        cfg = config(
            idp, person_claim="email", name_claim="given", roles_claim="realm_access.roles"
        )
        identity = await login(OidcClient(cfg, http), http)
    assert (identity.person_id, identity.name) == ("ola@example.no", "Ola Sør")
    assert identity.roles == frozenset({"reporter"})


async def test_wrong_state_is_refused_before_the_code_is_spent(
    idp: ProviderHandle, http: httpx.AsyncClient
) -> None:
    client = OidcClient(config(idp), http)
    code, _, expected = await authorize(client, http)
    with pytest.raises(OidcError, match="hører ikke til innloggingen du startet"):
        await client.finish(code, "forged-state", expected)
    assert idp.provider.token_requests == 0
    assert (await client.finish(code, expected.state, expected)).person_id == "p-ln"


async def test_wrong_nonce_is_refused(idp: ProviderHandle, http: httpx.AsyncClient) -> None:
    client = OidcClient(config(idp), http)
    # A nonce from another login (the id_token carries the nonce sent to /authorize).
    code, state, expected = await authorize(client, http)
    with pytest.raises(OidcError, match="hører til en annen innlogging") as err:
        await client.finish(code, state, dataclasses.replace(expected, nonce="another-login"))
    assert "nonce" in err.value.detail
    # The IdP put a different nonce into the token.
    idp.provider.fault = "wrong_nonce"
    with pytest.raises(OidcError, match="hører til en annen innlogging"):
        await login(client, http)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("expired", "er utløpt"),
        ("wrong_audience", "ment for en annen applikasjon"),
        ("wrong_issuer", "kommer fra en annen identitetsleverandør"),
        ("forged_signature", "kunne ikke kontrolleres"),
    ],
)
async def test_bad_id_tokens_are_refused(
    idp: ProviderHandle, http: httpx.AsyncClient, fault: Fault, message: str
) -> None:
    client = OidcClient(config(idp), http)
    idp.provider.fault = fault
    with pytest.raises(OidcError, match=message):
        await login(client, http)
    idp.provider.fault = None
    assert (await login(client, http)).person_id == "p-ln"


async def test_key_not_in_the_jwks_is_refused_after_one_refetch(
    idp: ProviderHandle, http: httpx.AsyncClient
) -> None:
    client = OidcClient(config(idp), http)
    await login(client, http)
    assert idp.provider.jwks_requests == 1
    idp.provider.fault = "foreign_key"
    with pytest.raises(OidcError, match="kunne ikke kontrolleres") as err:
        await login(client, http)
    assert "not in the JWKS" in err.value.detail
    assert idp.provider.jwks_requests == 2  # refetched once, in case the key was new


async def test_unknown_key_right_after_fetching_the_jwks_is_not_fetched_twice(
    idp: ProviderHandle, http: httpx.AsyncClient
) -> None:
    idp.provider.fault = "foreign_key"
    with pytest.raises(OidcError, match="kunne ikke kontrolleres"):
        await login(OidcClient(config(idp), http), http)
    assert idp.provider.jwks_requests == 1


async def test_key_rotation_is_followed_by_refetching_the_jwks_once(
    idp: ProviderHandle, http: httpx.AsyncClient
) -> None:
    client = OidcClient(config(idp), http)
    await login(client, http)
    await login(client, http)
    assert idp.provider.jwks_requests == 1  # cached
    idp.provider.rotate_key()
    assert (await login(client, http)).person_id == "p-ln"
    assert idp.provider.jwks_requests == 2
    await login(client, http)
    assert idp.provider.jwks_requests == 2


async def test_jwks_cache_expires(idp: ProviderHandle, http: httpx.AsyncClient) -> None:
    client = OidcClient(config(idp, jwks_cache_seconds=0), http)
    await login(client, http)
    await login(client, http)
    assert idp.provider.jwks_requests == 2


async def test_pkce_verifier_mismatch_is_refused_by_the_token_endpoint(
    idp: ProviderHandle, http: httpx.AsyncClient
) -> None:
    client = OidcClient(config(idp), http)
    code, state, expected = await authorize(client, http)
    wrong = dataclasses.replace(expected, code_verifier="x" * 64)
    with pytest.raises(OidcError, match="avviste innloggingen") as err:
        await client.finish(code, state, wrong)
    assert "PKCE" in err.value.detail
    # The code is spent: a second try with the right verifier is refused too.
    with pytest.raises(OidcError, match="avviste"):
        await client.finish(code, state, expected)


async def test_discovery_naming_another_issuer_is_refused(
    idp: ProviderHandle, http: httpx.AsyncClient
) -> None:
    # Same server, but the configured issuer differs (trailing slash) from what the IdP says.
    client = OidcClient(config(idp, issuer=idp.issuer + "/"), http)
    with pytest.raises(OidcError, match="feil satt opp") as err:
        await client.login_url()
    assert "issuer" in err.value.detail


async def test_missing_person_claim_is_refused(http: httpx.AsyncClient) -> None:
    users = {"anon": {"name": "No Username"}}
    with (
        run_provider(users=users) as idp,
        pytest.raises(OidcError, match="ikke noe brukernavn") as err,
    ):
        await login(OidcClient(config(idp), http), http)
    assert "preferred_username" in err.value.detail


async def test_unreachable_idp_gives_a_readable_error(http: httpx.AsyncClient) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = OidcConfig(
        issuer=f"http://127.0.0.1:{port}",
        client_id="c",
        redirect_uri=DEFAULT_REDIRECT_URI,
        org_id="demo",
    )
    with pytest.raises(OidcError, match="svarer ikke"):
        await OidcClient(cfg, http).login_url()


def test_config_from_env() -> None:
    assert oidc_config_from_env({}) is None
    cfg = oidc_config_from_env(
        {
            "KRISELOGG_OIDC_ISSUER": "https://login.example.no/realms/acme",
            "KRISELOGG_OIDC_CLIENT_ID": "kriselogg",
            "KRISELOGG_OIDC_CLIENT_SECRET": "",
            "KRISELOGG_OIDC_REDIRECT_URI": "https://kriselogg.acme.no/api/v1/auth/callback",
            "KRISELOGG_OIDC_ORG": "acme",
            "KRISELOGG_OIDC_PERSON_CLAIM": "email",
            "KRISELOGG_OIDC_ROLES_CLAIM": "realm_access.roles",
        }
    )
    assert cfg is not None
    assert (cfg.client_id, cfg.client_secret, cfg.org_id) == ("kriselogg", None, "acme")
    assert (cfg.person_claim, cfg.name_claim, cfg.roles_claim) == (
        "email",
        "name",
        "realm_access.roles",
    )
    assert cfg.scopes == "openid profile email"
    assert cfg.jwks_cache_seconds == 600
    with pytest.raises(ValidationError, match="client_id"):
        oidc_config_from_env({"KRISELOGG_OIDC_ISSUER": "https://login.example.no"})
    with pytest.raises(ValidationError, match="https"):
        OidcConfig(
            issuer="http://login.example.no",
            client_id="c",
            redirect_uri=DEFAULT_REDIRECT_URI,
            org_id="o",
        )
