"""The portal's sessions, and its guard against requests forged by other sites (CSRF).

A browser that logs in (the identity provider's callback, or the demo's development login) gets
a session: a random id in an HttpOnly cookie. The person's kriselogg token stays on the server,
in content's store beside the session's expiry (12 hours, as the token), so it never reaches
the browser. Logging out deletes the row: a copied cookie opens nothing afterwards.

Every state-changing request to the portal (POST, PUT, PATCH, DELETE) must

- come from the portal's own pages: `Sec-Fetch-Site` (sent by current browsers) must say
  same-origin, and `Origin`, or else `Referer`, must be the portal's origin when the browser
  sends one (`PUBLIC_URL`'s, or the one the request was addressed to). Our own forms send
  `Origin: null` under the `Referrer-Policy: no-referrer` that every answer carries, so a
  `null` Origin is left to the token;
- carry the session's CSRF token, in the form field `csrf_token` or the header `X-CSRF-Token`
  (htmx): an HMAC of the session id under the instance key, which the pages render and which
  another site can neither read nor compute.

Before there is a session, the login form carries a token bound the same way to a random
pre-login cookie, so another site cannot log a browser in as someone else (login CSRF). A
state-changing request without a session is let through to the page, which has no token to act
with and sends the browser to the login. The cookies are SameSite=Lax, so a link in an e-mail
still opens the portal logged in, and Secure when `PUBLIC_URL` is https.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response

from services.content.store import LocalStore
from shared.auth import Principal, TokenError, TokenVerifier

log = logging.getLogger(__name__)

SESSION_COOKIE = "kriselogg_session"
LOGIN_CSRF_COOKIE = "kriselogg_login_csrf"
SESSION_SECONDS = 12 * 3600  # as long as the token it holds
LOGIN_CSRF_SECONDS = 12 * 3600  # a login page left open all night still works
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MISSING = object()


@dataclass(frozen=True)
class Session:
    id: str
    token: str
    principal: Principal


class CsrfRefused(Exception):
    """A state-changing request that did not come from one of the portal's own pages."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL, lower case and without a default port; None if none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == {"http": 80, "https": 443}[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class Sessions:
    """Opens, finds and ends portal sessions, and guards the portal's state-changing routes."""

    def __init__(self, store: LocalStore, key: str, *, public_url: str) -> None:
        self.store = store
        self.clock = store.clock
        self.verify = TokenVerifier(key, clock=store.clock)
        self._key = hashlib.sha256(b"kriselogg portal csrf\0" + key.encode()).digest()
        self.public_origin = origin_of(public_url)
        self.secure = public_url.lower().startswith("https://")

    # ------------------------------------------------------------ sessions

    def current(self, request: Request) -> Session | None:
        """The request's live session, or None (no cookie, logged out, expired)."""
        cached = getattr(request.state, "portal_session", _MISSING)
        if cached is not _MISSING:
            assert cached is None or isinstance(cached, Session)
            return cached
        found = self._lookup(request.cookies.get(SESSION_COOKIE, ""))
        request.state.portal_session = found
        return found

    def _lookup(self, session_id: str) -> Session | None:
        if not session_id or len(session_id) > 100:
            return None
        token = self.store.session_token(session_id)
        if token is None:
            return None
        try:
            principal = self.verify(token)
        except TokenError:  # the key changed, or the token ran out before the session
            return None
        return Session(session_id, token, principal)

    def start(self, request: Request, response: Response, token: str) -> None:
        """Log the browser in as the holder of `token`: always a new session id (a session
        the browser had before is ended), in the cookie of `response`."""
        principal = self.verify(token)
        previous = request.cookies.get(SESSION_COOKIE)
        if previous:
            self.store.close_session(previous)
        now = self.clock.time()
        expires_at = min(now + SESSION_SECONDS, float(principal.expires_at))
        session_id = self.store.open_session(token, expires_at)
        request.state.portal_session = Session(session_id, token, principal)
        response.set_cookie(
            SESSION_COOKIE, session_id, max_age=max(1, int(expires_at - now)), path="/",
            httponly=True, secure=self.secure, samesite="lax",
        )  # fmt: skip
        self._forget(response, LOGIN_CSRF_COOKIE)

    def end(self, request: Request, response: Response) -> None:
        """Log out: the session is deleted on the server, and its cookie in the browser."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            self.store.close_session(session_id)
        request.state.portal_session = None
        self._forget(response, SESSION_COOKIE)

    def forget(self, response: Response) -> None:
        """Drop a session cookie that opens nothing (expired, refused by the API)."""
        self._forget(response, SESSION_COOKIE)

    def _forget(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="lax")

    # ------------------------------------------------------------ CSRF tokens

    def _mac(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._key, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def csrf_token(self, session: Session) -> str:
        return self._mac("session", session.id)

    def login_csrf(self, request: Request) -> str:
        """Before there is a session: the login form's token, in `request.state.csrf_token`
        for the page, bound to a random pre-login cookie (the browser's own, so other tabs
        showing the login keep working, or a new one). Returns the cookie's value, for
        `keep_login_csrf` on the page's response."""
        value = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not value or len(value) > 100:
            value = secrets.token_urlsafe(32)
        request.state.csrf_token = self._mac("login", value)
        return value

    def keep_login_csrf(self, response: Response, value: str) -> None:
        response.set_cookie(
            LOGIN_CSRF_COOKIE, value, max_age=LOGIN_CSRF_SECONDS, path="/", httponly=True,
            secure=self.secure, samesite="lax",
        )  # fmt: skip

    # ------------------------------------------------------------ the guards

    def own_origins(self, request: Request) -> set[str]:
        own = {origin_of(str(request.base_url)), self.public_origin}
        return {o for o in own if o}

    def cross_site(self, request: Request) -> str | None:
        """Why the request did not come from the portal's own pages, or None if it may have.

        A browser's word is taken where it gives one; a client that sends none of these
        headers (not a browser, or a very old one) is judged by the token alone.
        """
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"Sec-Fetch-Site: {site[:20]}"
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            return None if origin_of(origin) in self.own_origins(request) else "Origin"
        referer = request.headers.get("referer")
        if referer:
            return None if origin_of(referer) in self.own_origins(request) else "Referer"
        return None

    async def _given_token(self, request: Request) -> str:
        given = request.headers.get(CSRF_HEADER)
        if given:
            return given
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""

    def _refuse(self, request: Request, reason: str) -> CsrfRefused:
        log.warning("portal: refused %s %s (%s)", request.method, request.url.path, reason)
        return CsrfRefused(reason)

    async def guard(self, request: Request) -> None:
        """Every portal route: finds the session and renders its token into the page
        (`request.state.csrf_token`); on a state-changing method, refuses with CsrfRefused a
        request from another site, or one with a session but without its token."""
        session = self.current(request)
        request.state.csrf_token = self.csrf_token(session) if session else ""
        if request.method not in UNSAFE_METHODS:
            return
        reason = self.cross_site(request)
        if reason:
            raise self._refuse(request, reason)
        if session is None:
            return  # nothing to act with: the page sends the browser to the login
        if not hmac.compare_digest(
            (await self._given_token(request)).encode(), request.state.csrf_token.encode()
        ):
            raise self._refuse(request, "no valid CSRF token")

    async def guard_login(self, request: Request) -> None:
        """The login form (after `guard`): without a session, the pre-login cookie's token."""
        if self.current(request) is not None:
            return  # checked against the session's token by `guard`
        value = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        expected = self._mac("login", value) if value else ""
        given = await self._given_token(request)
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise self._refuse(request, "no valid login CSRF token")
