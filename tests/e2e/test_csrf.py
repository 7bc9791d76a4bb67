"""Issue 16, item 5: the portal takes a form only from its own pages, and logout ends a session.

Every state-changing form of the portal is posted cross-site, as another site's page would make
a logged-in browser post it: with that site's Origin (or the browser's Sec-Fetch-Site saying
cross-site), without the session's CSRF token or with a wrong one. Each answers 403 with a
Norwegian page, and nothing is written: the incident's log (read with a bearer token), notify's
alerts, the incident list, the directory and the sessions stay as they were. The same post from
the portal's page, with its token, goes through, so the refusals are not an accident of the
test's data. Then: logging out kills the session on the server, the API takes no cookie, and
the cookies are HttpOnly, SameSite=Lax and, under an https PUBLIC_URL, Secure.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import yaml

from services.cli import demo_directory
from services.content import portal
from services.content.sessions import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from services.gateway import Gateway
from tests.e2e.portal_client import as_person, csrf_of, login_form, origin
from tests.support import OSLO, Stack, running_stack

EVIL = "https://evil.example"
# The portal's state-changing routes, as its source declares them (services/content/portal.py).
STATE_CHANGING = set(
    re.findall(
        r'@router\.(?:post|put|patch|delete)\(\s*"([^"]+)"',
        Path(portal.__file__).read_text("utf-8"),
    )
)
DEMO_PEOPLE = [
    {"person_id": "p-ln", "name": "Lise Nord", "roles": ["leader"], "what": "", "org_id": "demo"}
]


Prepare = Callable[[], Awaitable[tuple[str, dict[str, Any]]]]


@dataclass
class Form:
    """One state-changing form: its route as portal.py declares it, who posts it, and, when its
    turn comes, where exactly and with which fields (some depend on what the forms before
    wrote)."""

    route: str
    who: str  # a key of stack.tokens; "" for the login form, posted without a session
    prepare: Prepare
    files: dict[str, Any] | None = None
    writes: bool = True  # False: a step that shows what would be written (a preview)
    success: int = 303


def fixed(path: str, data: dict[str, Any] | None = None) -> Prepare:
    async def prepare() -> tuple[str, dict[str, Any]]:
        return path, dict(data or {})

    return prepare


class _FormFields(HTMLParser):
    """The fields a form on a page would send (inputs with a value, textareas)."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action, self.inside = action, False
        self.fields: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.inside = found.get("action") == self.action
        elif self.inside and tag == "input" and found.get("name"):
            if found.get("type") not in ("checkbox", "radio", "file", "submit"):
                self.fields[str(found["name"])] = found.get("value") or ""
        elif self.inside and tag == "textarea" and found.get("name"):
            self._textarea = str(found["name"])
            self.fields[self._textarea] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self._textarea = None


def form_fields(html: str, action: str) -> dict[str, str]:
    parser = _FormFields(action)
    parser.feed(html)
    assert parser.fields, f"no form posting to {action} on the page"
    return {k: v for k, v in parser.fields.items() if k != "csrf_token"}


def refusals(headers: dict[str, str]) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(what, headers, extra form fields) of posts another site can make a browser send."""
    cookie = {k: v for k, v in headers.items() if k == "Cookie"}
    token = headers.get("X-CSRF-Token", "")
    own = headers.get("Origin", "")
    return [
        ("another site, no token", {**cookie, "Origin": EVIL}, {}),
        ("another site, the right token", {**cookie, "Origin": EVIL}, {"csrf_token": token}),
        (
            "Sec-Fetch-Site cross-site, Origin null",
            {**cookie, "Origin": "null", "Sec-Fetch-Site": "cross-site"},
            {"csrf_token": token},
        ),
        (
            "a sibling site (same-site)",
            {**cookie, "Sec-Fetch-Site": "same-site"},
            {"csrf_token": token},
        ),
        ("another site's Referer", {**cookie, "Referer": f"{EVIL}/side"}, {"csrf_token": token}),
        ("our origin, no token", {**cookie, "Origin": own}, {}),
        ("our origin, a wrong token", {**cookie, "Origin": own}, {"csrf_token": "A" * 43}),
    ]


def assert_refused(response: httpx.Response, what: str) -> None:
    assert response.status_code == 403, (what, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html"), what
    assert '<html lang="nb">' in response.text and "Skjemaet ble avvist" in response.text, what
    assert "ingenting ble lagret" in response.text, what
    assert SESSION_COOKIE not in response.headers.get("set-cookie", ""), what


async def test_every_portal_form_refuses_a_cross_site_post_and_writes_nothing(
    stack: Stack,
) -> None:
    stack.apps["content"].state.dev_people = DEMO_PEOPLE
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    people = {who: await as_person(stack, who) for who in ("leader", "reporter", "admin")}
    state = (await stack.timeline(incident_id))["incident"]
    alert_id = next(
        a["alert_id"] for a in state["alerts"].values() if a["role"] == "nearest_leader"
    )
    deadline_id = next(iter(state["deadlines"]))
    changed = demo_directory()
    changed["org"]["name"] = "Demo kommune (ny)"
    at = f"/hendelser/{incident_id}"
    when = (stack.clock.now() - timedelta(minutes=5)).astimezone(OSLO).strftime("%Y-%m-%dT%H:%M")
    pages: dict[str, httpx.Response] = {}  # each form's answer, for the forms after it

    async def written() -> dict[str, Any]:
        """Everything a form could write: the people's entries in the log, notify's alerts,
        the incidents, the directory's version, and whether the leader's session lives."""
        log = (await stack.timeline(incident_id))["events"]
        alerts = await stack.client.get(
            "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
        )
        incidents = await stack.client.get("/api/v1/incidents", headers=stack.auth())
        versions = await stack.client.get("/api/v1/directory/versions", headers=stack.auth("admin"))
        session = await stack.client.get(
            "/hendelser", headers={"Cookie": people["leader"]["Cookie"]}
        )
        return {
            "log": [e["seq"] for e in log if not e["actor"]["id"].startswith("system:")],
            "acknowledged": sorted(a["id"] for a in alerts.json() if a.get("acknowledged_at")),
            "incidents": sorted(i["id"] for i in incidents.json()),
            "directory": versions.json()["current"],
            "session": session.status_code,
        }

    async def last_of(kind: str) -> int:
        log = (await stack.timeline(incident_id))["events"]
        return int(next(e["seq"] for e in reversed(log) if e["type"] == kind))

    async def undo() -> tuple[str, dict[str, Any]]:
        return f"{at}/angre", {"seq": str(await last_of("MeasureLogged"))}

    async def correction() -> tuple[str, dict[str, Any]]:
        return f"{at}/rettelser", {"seq": str(await last_of("NoteAdded")), "reason": "Feil tid"}

    async def apply_preview() -> tuple[str, dict[str, Any]]:
        return "/admin/katalog/bruk", form_fields(
            pages["/admin/katalog"].text, "/admin/katalog/bruk"
        )

    async def restore() -> tuple[str, dict[str, Any]]:
        versions = await stack.client.get("/api/v1/directory/versions", headers=stack.auth("admin"))
        version = min(v["version"] for v in versions.json()["versions"])
        path = f"/admin/katalog/versjoner/{version}/gjenopprett"
        page = await stack.client.get(
            f"/admin/katalog/versjoner/{version}", headers=people["admin"]
        )
        return path, form_fields(page.text, path)

    report = {
        "title": "Truet i gangen", "category": "trusler-personlig", "occurred_at": when,
        "unit_id": "u-nord", "severity": "high", "affected_me": "true",
    }  # fmt: skip
    directory_file = {"file": ("katalog.yaml", yaml.safe_dump(changed, allow_unicode=True))}
    forms = [
        Form("/hendelser/{incident_id}/tiltak", "leader",
             fixed(f"{at}/tiltak", {"title": "Ringte politiet"})),
        Form("/hendelser/{incident_id}/angre", "leader", undo),
        Form("/hendelser/{incident_id}/varsler/{alert_id}/bekreft", "leader",
             fixed(f"{at}/varsler/{alert_id}/bekreft")),
        Form("/hendelser/{incident_id}/notater", "leader",
             fixed(f"{at}/notater", {"text": "Snakket med den ansatte"})),
        Form("/hendelser/{incident_id}/rettelser", "leader", correction),
        Form("/hendelser/{incident_id}/fakta", "leader",
             fixed(f"{at}/fakta", {"fact_police_involved": "true"})),
        Form("/hendelser/{incident_id}/frister/{deadline_id}", "leader",
             fixed(f"{at}/frister/{deadline_id}")),
        Form("/hendelser/{incident_id}/fase", "leader",
             fixed(f"{at}/fase", {"phase": "oppfolging"})),
        Form("/hendelser/{incident_id}/avslutt", "leader",
             fixed(f"{at}/avslutt", {"summary": "Fulgt opp.", "bekreftet": "ja"})),
        Form("/meld", "reporter", fixed("/meld", report)),
        # The upload only shows what would change; the next form applies it.
        Form("/admin/katalog", "admin", fixed("/admin/katalog"), files=directory_file,
             writes=False, success=200),
        Form("/admin/katalog/bruk", "admin", apply_preview),
        Form("/admin/katalog/versjoner/{version}/gjenopprett", "admin", restore),
        Form("/logg-inn/utvikler", "", fixed("/logg-inn/utvikler", {"person_id": "p-ln"})),
        Form("/logg-ut", "leader", fixed("/logg-ut")),
    ]  # fmt: skip
    # Every state-changing route of the portal is here: a new one must be added.
    assert {form.route for form in forms} == STATE_CHANGING, STATE_CHANGING ^ {
        form.route for form in forms
    }

    for form in forms:
        path, data = await form.prepare()
        if form.who:
            headers = people[form.who]
        else:  # the login form, in a browser that is not logged in
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=Gateway(stack.apps)),
                base_url=stack.client.base_url,
            ) as browser:
                token = (await login_form(browser))["csrf_token"]
                pre = browser.cookies[LOGIN_CSRF_COOKIE]
            headers = {
                "Cookie": f"{LOGIN_CSRF_COOKIE}={pre}",
                "Origin": origin(stack.client),
                "X-CSRF-Token": token,
            }
        before = await written()
        for what, sent, extra in refusals(headers):
            response = await stack.client.post(
                path, data={**data, **extra}, files=form.files, headers=sent
            )
            assert_refused(response, f"{form.route}: {what}")
        # The attacker's page in a browser with no cookie of ours at all.
        bare = await stack.client.post(path, data=data, files=form.files, headers={"Origin": EVIL})
        assert bare.status_code == 403, (form.route, bare.status_code)
        assert await written() == before, form.route

        # From the portal's own page, with its token in the form: it goes through.
        own = {k: v for k, v in headers.items() if k != "X-CSRF-Token"}
        done = await stack.client.post(
            path,
            data={**data, "csrf_token": headers["X-CSRF-Token"]},
            files=form.files,
            headers={**own, "Sec-Fetch-Site": "same-origin"},
        )
        assert done.status_code == form.success, (form.route, done.status_code, done.text[:800])
        pages[form.route] = done
        after = await written()
        if form.route == "/logg-inn/utvikler":
            assert SESSION_COOKIE in done.headers["set-cookie"]
        else:
            assert (after != before) is form.writes, (form.route, before, after)
        if "bekreft" in form.route:  # notify logs the acknowledgement a moment later
            await stack.alerts.wait_for_events(
                lambda events: any(e["type"] == "AlertAcknowledged" for e in events[incident_id])
            )
    assert (await written())["session"] == 303  # the last form was the logout


async def test_htmx_sends_the_token_as_a_header(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    leader = await as_person(stack, "leader")
    logged = await stack.client.post(
        f"/hendelser/{incident_id}/tiltak",
        data={"title": "Ringte politiet"},
        headers={**leader, "HX-Request": "true", "Origin": origin(stack.client)},
    )
    assert logged.status_code == 200, logged.text
    assert [e["type"] for e in (await stack.timeline(incident_id))["events"]].count(
        "MeasureLogged"
    ) == 1
    # A real browser's own form: Origin null (Referrer-Policy no-referrer), Sec-Fetch-Site.
    browser = {"Cookie": leader["Cookie"], "Origin": "null", "Sec-Fetch-Site": "same-origin"}
    noted = await stack.client.post(
        f"/hendelser/{incident_id}/notater",
        data={"text": "Notat", "csrf_token": leader["X-CSRF-Token"]},
        headers=browser,
    )
    assert noted.status_code == 303, noted.text


async def test_logout_ends_the_session_on_the_server(stack: Stack) -> None:
    leader = await as_person(stack, "leader")
    cookie = {"Cookie": leader["Cookie"]}
    assert (await stack.client.get("/hendelser", headers=cookie)).status_code == 200

    # A GET changes nothing: a page with the button.
    page = await stack.client.get("/logg-ut", headers=cookie)
    assert page.status_code == 200 and 'data-testid="logout-confirm"' in page.text
    assert csrf_of(page.text) == leader["X-CSRF-Token"]
    assert (await stack.client.get("/hendelser", headers=cookie)).status_code == 200

    out = await stack.client.post("/logg-ut", data={"csrf_token": leader["X-CSRF-Token"]},
                                  headers={**cookie, "Origin": leader["Origin"]})  # fmt: skip
    assert out.status_code == 303 and out.headers["location"] == "/logg-inn"
    assert f'{SESSION_COOKIE}=""' in out.headers["set-cookie"]  # deleted in the browser too

    # The old cookie, kept or copied, opens nothing now, and its token writes nothing.
    again = await stack.client.get("/hendelser", headers=cookie)
    assert again.status_code == 303 and again.headers["location"] == "/logg-inn?neste=%2Fhendelser"
    incident_id = (await stack.report())["id"]
    before = len((await stack.timeline(incident_id))["events"])
    stale = await stack.client.post(
        f"/hendelser/{incident_id}/notater", data={"text": "Etter utlogging"}, headers=leader
    )
    assert stale.status_code == 303 and stale.headers["location"].startswith("/logg-inn")
    after = (await stack.timeline(incident_id))["events"]
    assert "NoteAdded" not in [e["type"] for e in after[before:]]
    assert (await stack.client.get("/logg-ut", headers=cookie)).status_code == 303


async def test_the_api_trusts_no_cookie_and_its_logins_set_none(stack: Stack) -> None:
    stack.apps["content"].state.dev_people = DEMO_PEOPLE
    incident_id = (await stack.report())["id"]
    leader = await as_person(stack, "leader")
    note = await stack.client.post(
        f"/api/v1/incidents/{incident_id}/notes", json={"text": "Notat"}, headers=leader
    )
    assert note.status_code == 401  # bearer tokens only: a cookie is nobody
    login = await stack.client.post("/api/v1/auth/dev", json={"person_id": "p-ln"})
    assert login.status_code == 200 and "set-cookie" not in login.headers


def cookie_attributes(response: httpx.Response, name: str) -> dict[str, str]:
    for line in response.headers.get_list("set-cookie"):
        first, *rest = [part.strip() for part in line.split(";")]
        if first.startswith(f"{name}="):
            attributes = {"value": first.split("=", 1)[1]}
            for part in rest:
                key, _, value = part.partition("=")
                attributes[key.lower()] = value
            return attributes
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


async def test_cookies_are_httponly_lax_and_secure_behind_tls(
    nats_url: str, tmp_path: Path
) -> None:
    for public_url, secure in (("https://kriselogg.example", True), ("http://kriselogg", False)):
        async with running_stack(nats_url, tmp_path / str(secure), public_url=public_url) as stack:
            stack.apps["content"].state.dev_people = DEMO_PEOPLE
            page = await stack.client.get("/logg-inn")
            pre = cookie_attributes(page, LOGIN_CSRF_COOKIE)
            # From the public origin (the request itself came to http://kriselogg).
            done = await stack.client.post(
                "/logg-inn/utvikler",
                data={"person_id": "p-ln", "csrf_token": csrf_of(page.text)},
                headers={"Cookie": f"{LOGIN_CSRF_COOKIE}={pre['value']}", "Origin": public_url},
            )
            assert done.status_code == 303, done.text
            session = cookie_attributes(done, SESSION_COOKIE)
            for cookie in (pre, session):
                assert "httponly" in cookie and cookie["samesite"] == "lax", cookie
                assert cookie["path"] == "/" and ("secure" in cookie) is secure, cookie
            assert 0 < int(session["max-age"]) <= 12 * 3600
            assert "eyJ" not in session["value"]  # an id, not the token
