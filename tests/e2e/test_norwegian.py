"""Issue 16, acceptance 4: Norwegian everywhere, and names where the log has them.

Every role of the demo walks the whole portal: every GET route of the portal (from the app's
own routes) and every same-origin link and htmx URL found on the pages, breadth first, plus the
known error cases (an unknown path, an incident that is not theirs, a body too large, a form the
portal refuses, an API rate limit, the API not answering, a PDF without a converter). A page
fails on an English error text, and on a raw id in its visible text (tags stripped, attribute
values and URLs ignored) where a name exists: a person (p-…), a unit (u-…), a law provision
(aml-5-1), a duty (hovedverneombud-varslet), a measure or category id, an event type, a
snake_case code, or a UUID.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from starlette.routing import Route

from services.content.portal import EVENT_TITLES
from shared.auth import issue_token, signing_key
from shared.infra import free_port
from shared.law import registry
from tests.e2e.portal_client import csrf_of, logged_in, login_form
from tests.support import TOKEN_TTL, Stack, running_stack

# Every role of the demo organisation, as the person who has it.
PEOPLE = {
    "leader": ("p-ln", "Lise Nord"),
    "reporter": ("p-ansatt", "Ali Ansatt"),
    "safety_rep": ("p-vo", "Vera Verneombud"),
    "hr": ("p-hr", "Per Personal"),
    "auditor": ("p-kd", "Kari Direktør"),
    "admin": ("p-admin", "Astrid Admin"),
}
MAX_PAGES = 250  # per person: the guidance is some 60 pages, the incident pages a dozen

ENGLISH = re.compile(
    r"\b(not found|internal|error|errors|method not allowed|unauthori[sz]ed|forbidden|invalid|"
    r"failed|fails|not allowed|request|requests|too many|too large|please|try again|"
    r"field required|input should|value error|service unavailable|bad gateway|"
    r"unprocessable|not signed in|server|exception|traceback)\b",
    re.IGNORECASE,
)
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
PERSON_OR_UNIT = re.compile(r"(?<![\w-])[pu]-[a-z0-9]")
SNAKE = re.compile(r"\b[a-z]+_[a-z_]+\b")  # role, status and channel codes: safety_rep, no_channel
PROVISION = re.compile(
    r"(?<![\w-])(?:"
    + "|".join(sorted({re.escape(p.id.split("-")[0]) for p in registry().provisions}))
    + r")-\d"
)


class VisibleText(HTMLParser):
    """What a person reads on a page: text outside <script>/<style>, no attributes. Also the
    links (<a href>, htmx's hx-get) to follow."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[tuple[str, bool]] = []  # (url, is an htmx fragment)
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.links.append((str(found["href"]), False))
        if found.get("hx-get"):
            self.links.append((str(found["hx-get"]), True))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def read(html: str) -> VisibleText:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return parser


@dataclass
class Findings:
    """What is wrong on which page, collected over the whole crawl and reported at once."""

    raw_ids: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def check(self, where: str, html: str) -> VisibleText:
        page = read(html)
        for bad in self.offences(page.text):
            self.problems.append(f"{where}: {bad}")
        return page

    def offences(self, text: str) -> list[str]:
        found = [f"English {m.group(0)!r}" for m in ENGLISH.finditer(text)]
        for pattern, what in (
            (UUID, "a UUID"),
            (PERSON_OR_UNIT, "a person or unit id"),
            (PROVISION, "a provision id"),
            (SNAKE, "a code"),
        ):
            found += [f"{what} {_around(text, m)!r}" for m in pattern.finditer(text)]
        for raw in self.raw_ids:
            for m in re.finditer(rf"(?<![\w-]){re.escape(raw)}(?![\w-])", text):
                found.append(f"the id {raw!r} in {_around(text, m)!r}")
        return found


def _around(text: str, match: re.Match[str]) -> str:
    return text[max(0, match.start() - 40) : match.end() + 40]


def test_the_checks_flag_what_they_are_for() -> None:
    """The crawl below can fail: each kind of leak in a page is caught, a clean page is not."""
    findings = Findings(raw_ids={"hovedverneombud-varslet", "vold-fysisk"})
    bad = [
        '<p>{"detail":"Not Found"}</p>',
        "<h1>Internal Server Error</h1>",
        "<p>Invalid request: title: Field required</p>",
        "<p>Method Not Allowed</p>",
        "<li>Varsel til p-ansatt</li>",
        "<dd>u-nord</dd>",
        "<li>Frist (aml-5-1)</li>",
        "<li>Frist oppfylt hovedverneombud-varslet</li>",
        "<li>Type vold-fysisk</li>",
        "<p>Hendelse 0b6f6a52-4a3e-4c9e-9f7e-2d1c1f0e8a11</p>",
        "<span>safety_rep</span>",
    ]
    for html in bad:
        assert findings.offences(read(html).text), html
    good = (
        '<a href="/hendelser/0b6f6a52-4a3e-4c9e-9f7e-2d1c1f0e8a11" data-person="p-ansatt">'
        "Slått av bruker</a><p>Frist oppfylt: Hovedverneombudet er varslet (aml § 5-1), "
        "Lise Nord, Hjemmetjenesten nord.</p><script>var error = 'p-x';</script>"
        '<input name="unit_id" value="u-nord">'
    )
    assert findings.offences(read(good).text) == []


# ---------------------------------------------------------------- the crawl


def portal_get_routes(stack: Stack) -> list[str]:
    """The portal's GET pages, from content's own routes (the API, static files and the docs
    are not pages)."""
    paths: list[str] = []
    for route in routes_of(stack.apps["content"].routes):
        if "GET" not in (route.methods or set()):
            continue
        if route.path.startswith(("/api/", "/static", "/docs", "/openapi")) or route.path in (
            "/healthz",
            "/readyz",
        ):
            continue
        paths.append(route.path)
    return paths


def routes_of(routes: Iterable[Any], prefix: str = "") -> Iterator[Route]:
    """Every route of an app with its full path, inside included routers too (FastAPI keeps an
    included router as one entry that holds the original router)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from routes_of(inner.routes, prefix + str(getattr(context, "prefix", "")))
        elif isinstance(route, Route):
            yield Route(prefix + route.path, route.endpoint, methods=list(route.methods or ()))


def fill(path: str, values: dict[str, str]) -> str:
    """A route's path with its parameters filled in; an unknown one gets a value that matches
    nothing, so its page is the portal's 404, which is checked like any other."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "1"), path)


def same_origin(base: str, href: str) -> str | None:
    """The path (and query) of a link into the portal, or None for anything else."""
    url = urlsplit(urljoin(base, href))
    if url.scheme not in ("http", "") or url.netloc not in ("kriselogg", ""):
        return None
    if url.path.startswith(("/api/", "/static/", "/docs")) or url.path == "/logg-ut":
        return None
    return url.path + (f"?{url.query}" if url.query else "")


async def crawl(
    stack: Stack, headers: dict[str, str], start: Iterable[str], findings: Findings, who: str
) -> set[str]:
    """Every page reachable from `start`, breadth first; returns the paths visited."""
    queue: deque[tuple[str, bool]] = deque((path, False) for path in start)
    seen: set[str] = set()
    while queue and len(seen) < MAX_PAGES:
        path, htmx = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        if re.search(r"/logg\.(docx|pdf)$", path):
            # A file, not a page (the PDF's refusal is checked on its own below).
            response = await stack.client.get(path, headers=headers)
            assert response.status_code in (200, 503), (who, path, response.status_code)
            if "text/html" in response.headers.get("content-type", ""):
                findings.check(f"{who} {path}", response.text)
            continue
        extra = {"HX-Request": "true"} if htmx else {}
        response = await stack.client.get(path, headers={**headers, **extra})
        assert response.status_code < 500, (who, path, response.status_code, response.text[:300])
        if response.status_code in (301, 302, 303, 307):
            target = same_origin(path, response.headers["location"])
            if target:
                queue.append((target, False))
            continue
        if "text/html" not in response.headers["content-type"]:
            assert response.status_code == 200, (who, path, response.text[:300])
            continue  # a file to download (the directory as YAML), not a page
        page = findings.check(f"{who} {path}", response.text)
        for href, is_htmx in page.links:
            target = same_origin(path, href)
            if target and target not in seen:
                queue.append((target, is_htmx))
    assert len(seen) < MAX_PAGES, f"{who}: more than {MAX_PAGES} pages; raise the bound"
    return seen


async def fill_the_incident(stack: Stack) -> tuple[str, str, set[str]]:
    """A reported incident with what a leader does to it: acknowledged alerts, measures, a
    note, a correction, facts, a deadline met. Returns it, an incident the reporter may not
    see, and the ids shown nowhere as such (deadlines, measures, the category)."""
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    leader = stack.auth("leader")

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await stack.client.post(
            f"/api/v1/incidents/{incident_id}/{path}", json=body, headers=leader
        )
        assert response.status_code == 201, (path, response.text)
        result: dict[str, Any] = response.json()
        return result

    guidance = await stack.client.get("/api/v1/guidance/subthemes/vold-fysisk", headers=leader)
    acute = next(p for p in guidance.json()["phases"] if p["id"] == "akutt")
    for measure in acute["measures"][:2]:
        await post(
            "measures", {"measure_id": measure["id"], "title": measure["title"], "status": "done"}
        )
    # A measure logged by its id alone: the portal must still show its title.
    third = acute["measures"][2]
    await post("measures", {"measure_id": third["id"], "status": "done"})
    note = await post("notes", {"text": "Ali er sendt til legevakten; kollega følger ham."})
    await post("corrections", {"seq": note["seq"], "reason": "Feil legevakt", "note": "Tromsø"})
    await post("facts", {"facts": {"sick_leave_full": True}})
    alerts = await stack.client.get(
        "/api/v1/alerts", params={"incident_id": incident_id}, headers=leader
    )
    mine = next(a for a in alerts.json() if a["person_id"] == "p-ln" and a["kind"] == "alert")
    acked = await stack.client.post(f"/api/v1/alerts/{mine['id']}/ack", headers=leader)
    assert acked.status_code == 200, acked.text
    deadlines = await stack.client.get(f"/api/v1/alerts/deadlines/{incident_id}", headers=leader)
    assert deadlines.status_code == 200, deadlines.text
    rows = deadlines.json()
    for row in rows[:2]:  # a duty of the law and a routine: DeadlineMet names each by its id
        await post(f"deadlines/{row['deadline_id']}/met", {})

    others = await stack.client.post(
        "/api/v1/incidents",
        json={
            "category": "trusler-personlig",
            "title": "Truet på telefon",
            "unit_id": "u-skole",
            "affected": [],
            "severity": "medium",
            "facts": {},
        },
        headers=leader,
    )
    assert others.status_code == 201, others.text
    raw = {str(r["deadline_id"]) for r in rows}
    raw |= {str(m["id"]) for p in guidance.json()["phases"] for m in p["measures"]}
    # An id of one word ("politi") is also a word; those of several words are ids only.
    raw = {r for r in raw if "-" in r} | {"vold-fysisk", "trusler-personlig", *EVENT_TITLES}
    return incident_id, others.json()["id"], raw


async def person(stack: Stack, role: str) -> dict[str, str]:
    person_id, name = PEOPLE[role]
    token = issue_token(
        signing_key(stack.settings),
        org_id="demo",
        person_id=person_id,
        name=name,
        roles=[role],
        ttl=TOKEN_TTL,
        clock=stack.clock,
    )
    return await logged_in(
        stack.client, stack.settings.data_dir, signing_key(stack.settings), token, stack.clock
    )


def assert_clean(findings: Findings) -> None:
    shown = "\n".join(sorted(set(findings.problems))[:60])
    assert not findings.problems, f"{len(findings.problems)} findings:\n{shown}"


@pytest.fixture
async def no_pdf_stack(nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # As on a machine without LibreOffice: documents cannot make a PDF.
    monkeypatch.setenv("KRISELOGG_SOFFICE", "soffice-is-not-installed")
    async with running_stack(nats_url, tmp_path) as stack:
        yield stack


async def test_every_role_sees_the_whole_portal_in_norwegian_with_names(
    no_pdf_stack: Stack,
) -> None:
    stack = no_pdf_stack
    incident_id, not_theirs, raw = await fill_the_incident(stack)
    findings = Findings(raw_ids=raw)
    values = {
        "incident_id": incident_id,
        "subtheme_id": "vold-fysisk",
        "article_id": "den-nodvendige-samtalen",
    }
    routes = [fill(path, values) for path in portal_get_routes(stack)]
    assert "/hendelser/{incident_id}".replace("{incident_id}", incident_id) in routes

    logged_out = await crawl(stack, {}, ["/", "/logg-inn", *routes], findings, "logged out")
    assert "/logg-inn" in logged_out
    for role in PEOPLE:
        headers = await person(stack, role)
        seen = await crawl(
            stack, headers, ["/", f"/hendelser/{incident_id}", *routes], findings, role
        )
        assert len(seen) > 10, (role, sorted(seen))
        await error_cases(stack, headers, role, incident_id, not_theirs, findings)
    assert_clean(findings)


async def error_cases(
    stack: Stack,
    headers: dict[str, str],
    role: str,
    incident_id: str,
    not_theirs: str,
    findings: Findings,
) -> None:
    """The refusals and failures a person can meet, each a Norwegian page with its status."""
    client = stack.client

    async def page(response: httpx.Response, status: int, what: str) -> str:
        assert response.status_code == status, (role, what, response.status_code, response.text)
        assert "text/html" in response.headers["content-type"], (role, what, response.text)
        findings.check(f"{role} {what}", response.text)
        assert 'href="/"' in response.text, (role, what)  # a way on: the front page
        return response.text

    await page(await client.get("/finnes-ikke", headers=headers), 404, "unknown path")
    await page(await client.get("/static/finnes-ikke.css", headers=headers), 404, "unknown file")
    await page(await client.get(f"/hendelser/{uuid.uuid4()}", headers=headers), 404, "no incident")
    await page(await client.get("/hendelser/ikke-en-id", headers=headers), 404, "malformed id")
    foreign = await client.get(f"/hendelser/{not_theirs}", headers=headers)
    if role in ("reporter", "safety_rep", "admin"):
        text = await page(foreign, 403, "someone else's incident")
        assert "Ingen tilgang" in text
    await page(await client.post("/sok", headers=headers), 405, "POST to a page")
    huge = await client.post(
        f"/hendelser/{incident_id}/notater",
        content=b"text=" + b"x" * (2 * 1024 * 1024),
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "For stor" in await page(huge, 413, "too large a note")
    refused = await client.post(
        f"/hendelser/{incident_id}/notater",
        data={"text": "x" * 10_001, "csrf_token": headers["X-CSRF-Token"]},
        headers=headers,
    )
    text = await page(refused, 422, "too long a note")
    assert "Notat: kan ha høyst 10000 tegn" in text, text

    # The PDF: no button without a converter, and a way to the Word file when asked anyway.
    screen = await client.get(f"/hendelser/{incident_id}", headers=headers)
    if screen.status_code == 200:
        assert 'data-testid="download-pdf"' not in screen.text, role
        pdf = await client.get(f"/hendelser/{incident_id}/logg.pdf", headers=headers)
        text = await page(pdf, 503, "PDF without a converter")
        assert "PDF er ikke tilgjengelig" in text
        assert f'href="/hendelser/{incident_id}/logg.docx"' in text


async def test_an_api_rate_limit_and_an_api_that_does_not_answer_are_pages(
    stack: Stack,
) -> None:
    findings = Findings()
    content = stack.apps["content"]
    content.state.dev_people = [
        {
            "person_id": "p-ln",
            "name": "Lise Nord",
            "roles": ["leader"],
            "what": "",
            "org_id": "demo",
        }
    ]
    form = await login_form(stack.client)
    codes = []
    for _ in range(21):  # the development login allows 20 a minute per address
        answer = await stack.client.post(
            "/logg-inn/utvikler", data={**form, "person_id": "p-ukjent"}
        )
        codes.append(answer.status_code)
    assert codes[:20] == [404] * 20
    limited = answer
    assert limited.status_code == 429, limited.text  # not a 502
    assert int(limited.headers["Retry-After"]) > 0
    assert "text/html" in limited.headers["content-type"]
    findings.check("rate limit", limited.text)
    assert "For mange forsøk" in limited.text and "Vent" in limited.text

    headers = await person(stack, "leader")
    # The API behind the portal goes away (KRISELOGG_API_URL pointing at nothing).
    inside = content.state.api_client
    content.state.api_client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{free_port()}")
    try:
        down = await stack.client.get("/hendelser", headers=headers)
    finally:
        await content.state.api_client.aclose()
        content.state.api_client = inside
    assert down.status_code == 503, down.text
    assert "text/html" in down.headers["content-type"]
    findings.check("API down", down.text)
    assert "kriselogg svarer ikke" in down.text and "112" in down.text
    assert csrf_of(down.text) == headers["X-CSRF-Token"]  # still logged in: the menu works
    assert_clean(findings)


async def test_the_api_answers_problem_json_in_norwegian(stack: Stack) -> None:
    """The same origin's API: problem+json with Norwegian titles and details, and the
    machine-readable parts (field, type) as they were."""
    leader = stack.auth("leader")
    cases = [
        (await stack.client.get("/api/v1/finnes-ikke", headers=leader), 404, "Finnes ikke"),
        (await stack.client.delete("/api/v1/incidents", headers=leader), 405, "Ikke tillatt her"),
        (await stack.client.get("/api/v1/incidents"), 401, "Ikke logget inn"),
        (
            await stack.client.get(f"/api/v1/incidents/{uuid.uuid4()}", headers=leader),
            404,
            "Hendelsen finnes ikke",
        ),
        (
            await stack.client.post(
                "/api/v1/incidents",
                json={"category": "vold-fysisk", "severity": "apokalyptisk", "extra": 1},
                headers=stack.auth("reporter"),
            ),
            422,
            "Ugyldig forespørsel",
        ),
        (
            await stack.client.post(
                "/api/v1/incidents",
                content=b"x" * (2 * 1024 * 1024),
                headers={**leader, "Content-Type": "application/json"},
            ),
            413,
            "For stor forespørsel",
        ),
    ]
    findings = Findings()
    for response, status, title in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json", response.text
        body = response.json()
        assert body["title"] == title, body
        # The API names ids and fields as they are (for programs); only its words are checked.
        english = [m.group(0) for m in ENGLISH.finditer(f"{body['title']} {body['detail']}")]
        findings.problems += [f"{title}: English {word!r}" for word in english]
    invalid = cases[4][0].json()
    by_field = {e["field"]: e for e in invalid["errors"]}
    assert by_field["title"] == {"field": "title", "message": "må fylles ut", "type": "missing"}
    assert by_field["severity"]["type"] == "literal_error"
    assert by_field["severity"]["message"].startswith("må være en av 'low'")
    assert " eller " in by_field["severity"]["message"]
    assert by_field["extra"]["message"] == "er ikke et kjent felt"
    assert "Retry-After" in (await rate_limited(stack)).headers
    assert_clean(findings)


async def rate_limited(stack: Stack) -> httpx.Response:
    """The API's own 429: problem+json in Norwegian with Retry-After."""
    for _ in range(21):
        answer = await stack.client.get("/api/v1/auth/dev")
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["title"] == "For mange forsøk"
    assert answer.json()["detail"].startswith("Vent ")
    return answer
