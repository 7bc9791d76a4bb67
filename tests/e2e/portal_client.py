"""Using the portal over HTTP without a browser, as a logged-in person would.

The portal keeps the person's token in a server-side session and wants the session's CSRF token
and a same-origin `Origin` on every form it takes (services.content.sessions). `logged_in`
opens a session for a token, as the login routes do, and reads the CSRF token from a page the
way a browser gets it; the headers it returns go with every GET and POST of a test.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from services.content.sessions import SESSION_COOKIE
from services.content.store import LocalStore
from shared.auth import signing_key, verify_token
from shared.clock import SYSTEM_CLOCK, Clock
from tests.support import Stack

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def content_store(data_dir: Path, clock: Clock = SYSTEM_CLOCK) -> LocalStore:
    """content's store in a stack's (or a `kriselogg up`'s) data directory. SQLite lets a
    test open it beside the running service."""
    return LocalStore(data_dir / "content" / "content.sqlite", clock)


def open_session(data_dir: Path, key: str, token: str, clock: Clock = SYSTEM_CLOCK) -> str:
    """A portal session for `token`, valid as long as the token; returns its cookie value."""
    expires_at = verify_token(key, token, clock).expires_at
    store = content_store(data_dir, clock)
    try:
        return store.open_session(token, float(expires_at))
    finally:
        store.close()


def csrf_of(html: str) -> str:
    """The CSRF token a portal page carries in its forms."""
    found = CSRF_FIELD.search(html)
    assert found, f"no csrf_token on the page: {html[:500]}"
    return found.group(1)


def origin(client: httpx.AsyncClient) -> str:
    return str(client.base_url).rstrip("/")


async def logged_in(
    client: httpx.AsyncClient,
    data_dir: Path,
    key: str,
    token: str,
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, str]:
    """Headers for the portal as the holder of `token`: the session cookie, the page's CSRF
    token (X-CSRF-Token, as htmx sends it) and the portal's own Origin."""
    cookie = {"Cookie": f"{SESSION_COOKIE}={open_session(data_dir, key, token, clock)}"}
    page = await client.get("/", headers=cookie)
    assert page.status_code == 200, page.text
    return {**cookie, "Origin": origin(client), "X-CSRF-Token": csrf_of(page.text)}


async def as_person(stack: Stack, who: str) -> dict[str, str]:
    """`logged_in` for one of the stack's people (`stack.tokens`: leader, reporter, ...)."""
    return await logged_in(
        stack.client,
        stack.settings.data_dir,
        signing_key(stack.settings),
        stack.tokens[who],
        stack.clock,
    )


async def login_form(client: httpx.AsyncClient) -> dict[str, str]:
    """What a browser has on the login page before logging in: the pre-login cookie (kept in
    `client`'s cookie jar) and the form's CSRF token, returned as the form field."""
    page = await client.get("/logg-inn")
    assert page.status_code == 200, page.text
    return {"csrf_token": csrf_of(page.text)}
