"""Issue 7, acceptance 4: log in with the organisation's identity provider, end to end.

A real OpenID provider (tests/oidc_provider.py) on a loopback port issues RS256 tokens and a
JWKS; kriselogg runs its services in this process behind the gateway.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from services.content.sessions import SESSION_COOKIE
from tests.oidc_provider import DEFAULT_CLIENT_ID, Client, run_provider
from tests.support import running_stack

CALLBACK = "http://kriselogg/api/v1/auth/callback"


async def test_a_leader_logs_in_with_the_identity_provider_and_uses_kriselogg(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clients = {DEFAULT_CLIENT_ID: Client(redirect_uris=(CALLBACK,))}
    with run_provider(clients=clients) as idp:
        monkeypatch.setenv("KRISELOGG_OIDC_ISSUER", idp.issuer)
        monkeypatch.setenv("KRISELOGG_OIDC_CLIENT_ID", DEFAULT_CLIENT_ID)
        monkeypatch.setenv("KRISELOGG_OIDC_REDIRECT_URI", CALLBACK)
        monkeypatch.setenv("KRISELOGG_OIDC_ORG", "demo")
        async with running_stack(nats_url, tmp_path) as stack:
            # 1. kriselogg sends the browser to the provider, with state, nonce and PKCE.
            start = await stack.client.get("/api/v1/auth/login")
            assert start.status_code == 302
            authorize = start.headers["location"]
            assert authorize.startswith(idp.issuer)
            query = parse_qs(urlsplit(authorize).query)
            assert query["code_challenge_method"] == ["S256"] and query["nonce"]

            # 2. The provider signs the person in and sends the browser back with a code.
            async with httpx.AsyncClient() as browser:
                back = await browser.get(authorize)
            assert back.status_code in (302, 303)
            callback = back.headers["location"]
            assert callback.startswith(CALLBACK)

            # 3. kriselogg verifies the provider's id_token and issues its own token.
            done = await stack.client.get(callback.removeprefix("http://kriselogg"))
            assert done.status_code == 200, done.text
            body = done.json()
            assert body["person_id"] == "p-ln" and body["org_id"] == "demo"
            assert body["roles"] == ["hr", "leader"]  # the unknown "superuser" dropped
            assert not done.cookies  # a script gets the token in the body, no session

            # 4. The token works for what a leader does.
            headers = {"Authorization": f"Bearer {body['token']}"}
            themes = await stack.client.get("/api/v1/guidance/themes", headers=headers)
            assert themes.status_code == 200
            report = await stack.report()
            timeline = await stack.client.get(
                f"/api/v1/incidents/{report['id']}/timeline", headers=headers
            )
            assert timeline.status_code == 200

            # A replayed callback (the code is spent, the login cookie gone) logs nobody in.
            again = await stack.client.get(callback.removeprefix("http://kriselogg"))
            assert again.status_code == 400


async def test_without_an_identity_provider_login_says_how_to_configure_one(
    nats_url: str, tmp_path: Path
) -> None:
    async with running_stack(nats_url, tmp_path) as stack:
        response = await stack.client.get("/api/v1/auth/login")
        assert response.status_code == 404
        assert "KRISELOGG_OIDC_ISSUER" in response.json()["detail"]


async def test_the_login_is_rate_limited(nats_url: str, tmp_path: Path) -> None:
    async with running_stack(nats_url, tmp_path) as stack:
        codes = [(await stack.client.get("/api/v1/auth/callback")).status_code for _ in range(25)]
        assert codes[:20] == [404] * 20  # not configured, but counted
        assert codes[20:] == [429] * 5
        limited = await stack.client.get("/api/v1/auth/callback")
        assert int(limited.headers["Retry-After"]) > 0


async def test_the_development_login_exists_only_in_the_demo(nats_url: str, tmp_path: Path) -> None:
    async with running_stack(nats_url, tmp_path) as stack:
        assert (await stack.client.get("/api/v1/auth/dev")).status_code == 404
        refused = await stack.client.post("/api/v1/auth/dev", json={"person_id": "p-ln"})
        assert refused.status_code == 404

        # What `kriselogg up` does when it seeds the demo organisation:
        stack.apps["content"].state.dev_people = [
            {"person_id": "p-ln", "name": "Lise Nord", "roles": ["leader"], "what": "leder",
             "org_id": "demo"},
        ]  # fmt: skip
        listed = (await stack.client.get("/api/v1/auth/dev")).json()
        assert "aldri i drift" in listed["warning"]  # clearly marked
        assert [p["person_id"] for p in listed["people"]] == ["p-ln"]
        login = await stack.client.post("/api/v1/auth/dev", json={"person_id": "p-ln"})
        assert login.status_code == 200 and login.json()["development_login"] is True
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        assert (await stack.client.get("/api/v1/incidents", headers=headers)).status_code == 200
        unknown = await stack.client.post("/api/v1/auth/dev", json={"person_id": "p-admin"})
        assert unknown.status_code == 404


async def test_a_browser_returning_from_the_provider_lands_in_the_portal(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clients = {DEFAULT_CLIENT_ID: Client(redirect_uris=(CALLBACK,))}
    with run_provider(clients=clients) as idp:
        for name, value in (("ISSUER", idp.issuer), ("CLIENT_ID", DEFAULT_CLIENT_ID),
                            ("REDIRECT_URI", CALLBACK), ("ORG", "demo")):  # fmt: skip
            monkeypatch.setenv(f"KRISELOGG_OIDC_{name}", value)
        async with running_stack(nats_url, tmp_path) as stack:
            start = await stack.client.get("/api/v1/auth/login")
            async with httpx.AsyncClient() as browser:
                back = await browser.get(start.headers["location"])
            done = await stack.client.get(
                back.headers["location"].removeprefix("http://kriselogg"),
                headers={"Accept": "text/html,application/xhtml+xml"},
            )
            assert done.status_code == 303 and done.headers["location"] == "/"
            # A portal session: its id in the cookie, the token itself stays on the server.
            session = done.cookies[SESSION_COOKIE]
            assert "eyJ" not in done.headers["set-cookie"] and "." not in session
            cookie = {"Cookie": f"{SESSION_COOKIE}={session}"}
            page = await stack.client.get("/hendelser", headers=cookie)
            assert page.status_code == 200 and "Lise Nord" in page.text
