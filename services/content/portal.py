"""The portal: the web interface, server-rendered in Norwegian bokmål, over the public API."""

import asyncio
import functools
import hashlib
import hmac
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx
import yaml
from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from markupsafe import Markup, escape

from services.content.assets import StaticAssets
from services.content.domain import directory_file
from services.content.domain import incident_screen as screen
from services.content.domain import report_form as reporting
from services.content.login import safe_return
from services.content.sessions import SESSION_COOKIE, CsrfRefused, Sessions
from shared.auth import Principal
from shared.clock import Clock
from shared.labels import (
    CHANNEL_TITLES,
    PHASE_TITLES,
    ROLE_TITLES,
    SEVERITY_TITLES,
    fact_answer,
)
from shared.labels import MEASURE_STATUS_TITLES as STATUS_TITLES
from shared.law import registry as law_registry
from shared.policy import OrgTree, allowed

log = logging.getLogger(__name__)


# --- the portal: the leader's web interface (issue 8) ---------------------------------------
#
# The portal: the leader's web interface, server-rendered in Norwegian bokmål (issue 8).
#
# The portal holds no data of its own. Every page reads and writes through the services' public
# HTTP API with the logged-in person's own token, so every access rule of the API applies to the
# portal too. The token stays on the server, in the person's portal session; the browser holds
# only the session's id, and every form carries the session's CSRF token
# (services.content.sessions).
#
# Where the API is:
# - `kriselogg up` (one process) sets `app.state.api_transport` to an in-process transport to the
#   whole origin (`services.cli.connect_in_process`);
# - `kriselogg serve content` reads `KRISELOGG_API_URL`: the base URL of the origin (the reverse
#   proxy in front of the four services), e.g. `http://kriselogg-proxy:8080`.

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
API_URL_ENV = "KRISELOGG_API_URL"  # ContentSettings.api_url

SEVERITIES = tuple(SEVERITY_TITLES.items())
# The violence and threat sub-themes the report form offers (guidance ids).
REPORT_CATEGORIES = (
    "vold-fysisk",
    "trusler-personlig",
    "trusler-digitale",
    "gisseltaking",
    "bombetrussel",
)
EVENT_TITLES = {
    "IncidentReported": "Hendelsen meldt",
    "FactsRecorded": "Opplysninger lagt til",
    "MeasureLogged": "Tiltak logget",
    "NoteAdded": "Notat",
    "EntryCorrected": "Rettelse",
    "RecipientAlerted": "Varsel sendt",
    "AlertAcknowledged": "Varsel bekreftet",
    "AlertEscalated": "Varsel eskalert",
    "DeadlineSet": "Frist satt",
    "DeadlineMet": "Frist oppfylt",
    "PhaseChanged": "Fase endret",
    "DocumentIssued": "Dokument utstedt",
    "IncidentClosed": "Hendelsen avsluttet",
}
# How long after a report the receipt page waits for notify's first word before it tells the
# reporter to phone: notify plans a report within milliseconds when it is up.
RECEIPT_GRACE = timedelta(seconds=60)
# The alert's delivery (notify's `delivery`), as an overseer reads it on the incident page.
DELIVERY_TITLES = {
    "sent": "Sendt",
    "no_channel": "Ikke sendt – ingen kanal satt opp",
    "pending": "Sendes",
    "failed": "Feilet – prøver igjen",
    "cancelled": "Ikke sendt – ikke lenger nødvendig",
}
ATTEMPT_OUTCOMES = {
    "delivered": "sendt",
    "failed": "feilet",
    "not_sent": "ikke sendt – ingen kanal satt opp",
}
ALERT_STATUS = {
    "pending": "Venter",
    "sending": "Sendes",
    "sent": "Sendt",
    "delivered": "Levert",
    "failed": "Feilet",
    "acknowledged": "Bekreftet",
    "escalated": "Eskalert",
}
MEDIA = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}


PLAIN_REFUSALS: dict[int, tuple[str, str]] = {
    403: (
        "Ingen tilgang",
        "Du er logget inn, men rollen din gir ikke tilgang til dette. Gjelder det en hendelse du "
        "er varslet om, kontakt lederen som har ansvaret, eller administratoren.",
    ),
    404: (
        "Finnes ikke",
        "Siden eller hendelsen finnes ikke, eller den hører til en annen virksomhet enn den du "
        "er logget inn for.",
    ),
}


# The statuses of an API answer the portal passes on as they are; any other failure of the API
# (a 500, a 405 that means the portal asked wrongly) is the portal's 502.
PASSED_ON = frozenset({400, 403, 404, 409, 410, 413, 422, 429, 503})
# Pages whose text is always the portal's own: what the API (or Starlette) says there is written
# for programs (an id, an exception's name) and would not tell a person what to do.
PORTAL_TEXTS: dict[int, tuple[str, str]] = {
    **PLAIN_REFUSALS,
    405: (
        "Siden kan ikke brukes slik",
        "Adressen finnes, men ikke for dette. Gå tilbake og bruk knappene på siden.",
    ),
    413: (
        "For stor til å sendes",
        "Teksten eller filen er større enn 1 MiB, som er det kriselogg tar imot om gangen. Del "
        "opp teksten, eller last opp en mindre fil.",
    ),
    500: (
        "Noe gikk galt",
        "Det oppstod en feil i kriselogg, og ingenting ble lagret. Feilen er logget, uten det du "
        "skrev. Prøv igjen om litt.",
    ),
    502: (
        "Noe gikk galt",
        "En del av kriselogg svarte med en feil, og det er ikke sikkert at noe ble lagret. Se "
        "etter på siden før du prøver igjen.",
    ),
    503: (
        "kriselogg svarer ikke akkurat nå",
        "En del av kriselogg er ikke tilgjengelig, eller starter på nytt. Prøv igjen om litt.",
    ),
}
URGENT = "Haster det? Ring nærmeste leder. Er noen i fare nå, ring 112."
# The portal's form fields as the person knows them, for a form the portal itself refused (422).
FIELD_LABELS = {
    "title": "Hva skjedde",
    "category": "Type",
    "place": "Hvor",
    "occurred_at": "Når",
    "unit_id": "Enhet",
    "affected_text": "Hvem ble rammet",
    "affected_me": "Det gjaldt meg",
    "severity": "Alvorlighet",
    "description": "Mer om hendelsen",
    "measure_id": "Tiltaket",
    "performed_at": "Tidspunkt",
    "status": "Status",
    "note": "Merknad",
    "text": "Notat",
    "seq": "Oppføring",
    "reason": "Hvorfor er den feil",
    "phase": "Fase",
    "summary": "Oppsummering",
    "person_id": "Hvem du vil være",
    "neste": "Siden du kom fra",
    "file": "Katalogfil",
    "q": "Søkeord",
}


def portal_problem(
    status: int, title: str, detail: str, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """What error.html shows for a status and what the API or the portal said about it."""
    own = PORTAL_TEXTS.get(status) or (PORTAL_TEXTS[500] if status >= 500 else None)
    problem: dict[str, Any] = {"title": title, "detail": detail, "hint": "", "fixes": []}
    if own is not None:
        problem.update(title=own[0], detail=own[1])
    if status >= 500:
        problem["hint"] = URGENT
    if status == 422 and extra.get("errors"):
        problem.update(title="Skjemaet er ikke riktig fylt ut", detail="Rett dette og send igjen:")
        problem["fixes"] = [
            f"{FIELD_LABELS.get(str(e.get('field')), str(e.get('field')))}: {e.get('message')}"
            for e in extra["errors"]
        ]
    return problem


# A form another site made the browser post, or one from a page older than the session.
CSRF_REFUSAL: dict[str, Any] = {
    "title": "Skjemaet ble avvist",
    "detail": "Skjemaet kom ikke fra en side i kriselogg, eller siden var for gammel, så ingenting "
    "ble lagret. Gå tilbake, last inn siden på nytt og prøv igjen.",
    "hint": "",
    "fixes": [],
    "links": [],
}


# The directory admin pages (directory_page and those after it).
ADMIN_ONLY = "Bare en administrator kan se og endre organisasjonskatalogen."
STALE_PREVIEW = (
    "Forhåndsvisningen kan ikke brukes lenger (du er logget inn på nytt, eller skjemaet er "
    "endret). Last opp filen på nytt."
)
CHANGED_MEANWHILE = (
    "Katalogen ble endret av noen andre etter at du så forhåndsvisningen, så ingenting er "
    "endret nå. Last opp filen på nytt for å se hva den endrer mot katalogen som gjelder nå."
)


class LoginRequired(Exception):
    """No valid login: the page answers with a redirect to /logg-inn."""


class ApiFailure(Exception):
    def __init__(self, status: int, title: str, detail: str, body: dict[str, Any]) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.body = status, title, detail, body


def _problem(response: httpx.Response) -> ApiFailure:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return ApiFailure(
        response.status_code,
        str(body.get("title") or "Feil"),
        str(body.get("detail") or response.reason_phrase),
        body,
    )


def _local_time(value: Any, zone: ZoneInfo) -> str:
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        return moment.strftime("%d.%m.%Y kl. %H:%M")
    return moment.astimezone(zone).strftime("%d.%m.%Y kl. %H:%M")


@pass_context
def csrf_field(context: Mapping[str, Any]) -> Markup:
    """The hidden CSRF field every state-changing form carries (the page's `csrf_token`)."""
    token = escape(str(context.get("csrf_token") or ""))
    return Markup(f'<input type="hidden" name="csrf_token" value="{token}">')  # noqa: S704


@functools.cache
def static_files() -> StaticAssets:
    """The static folder, hashed once per process (services.content.assets)."""
    return StaticAssets(STATIC)


def static_url(name: str) -> str:
    """The URL of one of the portal's static files: its hashed name, cached for good."""
    return static_files().url(name)


def build_environment(zone: ZoneInfo) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tid"] = lambda value: _local_time(value, zone)
    env.filters["rolle"] = lambda roles: ", ".join(ROLE_TITLES.get(r, r) for r in sorted(roles))
    env.globals.update(
        ROLE_TITLES=ROLE_TITLES,
        EVENT_TITLES=EVENT_TITLES,
        ALERT_STATUS=ALERT_STATUS,
        DELIVERY_TITLES=DELIVERY_TITLES,
        ATTEMPT_OUTCOMES=ATTEMPT_OUTCOMES,
        STATUS_TITLES=STATUS_TITLES,
        PHASE_TITLES=PHASE_TITLES,
        SEVERITIES=dict(SEVERITIES),
        LAW_FACTS=law_registry().facts,
        LAW=law_registry().provision,
        FACT_ANSWER=fact_answer,
        CHANNEL_TITLES=CHANNEL_TITLES,
        FACT_QUESTIONS={f.id: f.question for f in law_registry().facts},
        csrf_field=csrf_field,
        static_url=static_url,
    )
    return env


def facts_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The registry's facts from a form's `fact_<id>` fields: "true", "false" or "" (unknown)
    for yes/no, a date or "" for dates. A field not on the form is left out."""
    found: dict[str, Any] = {}
    for fact in law_registry().facts:
        raw = form.get(f"fact_{fact.id}")
        if raw is None:
            continue
        raw = str(raw).strip()
        if fact.type == "bool":
            found[fact.id] = {"true": True, "false": False}.get(raw)
        elif raw:
            found[fact.id] = raw
    return found


class Api:
    """The API as the logged-in person: their token on every call."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, path, headers=self.headers, **kwargs)
        if response.status_code == 401:
            raise LoginRequired
        return response

    async def json(self, path: str, **params: Any) -> Any:
        response = await self.call("GET", path, params=params or None)
        if response.status_code != 200:
            raise _problem(response)
        return response.json()

    async def optional(self, path: str, **params: Any) -> Any:
        """The answer, or None when the caller's role may not see it (403)."""
        try:
            return await self.json(path, **params)
        except ApiFailure as exc:
            if exc.status == 403:
                return None
            raise

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self.call("POST", path, json=body)
        if response.status_code not in (200, 201):
            raise _problem(response)
        return response.json()


def _client(app: FastAPI) -> httpx.AsyncClient:
    client: httpx.AsyncClient | None = getattr(app.state, "api_client", None)
    if client is None:
        transport = getattr(app.state, "api_transport", None)
        if transport is not None:
            # In process nothing crosses a network: gzip would only compress to decompress.
            client = httpx.AsyncClient(
                transport=transport,
                base_url="http://kriselogg",
                timeout=120.0,
                headers={"Accept-Encoding": "identity"},
            )
        else:
            url = (getattr(app.state, "api_url", None) or "").strip()
            if not url:
                # The page shows the person the general 503; the operator reads this.
                log.warning("the portal has no API: set %s", API_URL_ENV)
                raise ApiFailure(
                    503,
                    "Portalen er ikke koblet til",
                    f"Sett {API_URL_ENV} til adressen til kriselogg (f.eks. http://proxy:8080).",
                    {},
                )
            client = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=120.0)
        app.state.api_client = client
    return client


async def close_client(app: FastAPI) -> None:
    client: httpx.AsyncClient | None = getattr(app.state, "api_client", None)
    if client is not None:
        app.state.api_client = None
        await client.aclose()


def _now_local(clock: Clock, zone: ZoneInfo) -> str:
    return clock.now().astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def _aware(value: str, zone: ZoneInfo) -> str | None:
    """A datetime-local value (wall clock in the organisation's zone) as RFC 3339."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat()


def _themes_of(tree: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["title"] for t in tree.get("themes", []) for s in t.get("subthemes", [])}


def name_ids(
    state: dict[str, Any], measure_titles: Mapping[str, str], units: Mapping[str, str]
) -> dict[str, Any]:
    """The incident with a name beside every id the log holds where it has none: a measure
    logged by its id alone gets the guidance's title, a deadline met the duty's title, the unit
    its name. The log itself keeps the ids; this is only what the pages show."""
    deadlines = state.get("deadlines") or {}

    def duty_title(deadline_id: str) -> str | None:
        found = deadlines.get(deadline_id) or {}
        provision = law_registry().provision(deadline_id)
        return found.get("title") or (provision.title if provision else None)

    for measure in state.get("measures", []):
        if not measure.get("title") and measure.get("measure_id") in measure_titles:
            measure["title"] = measure_titles[measure["measure_id"]]
    for event in state.get("events", []):
        data = event.get("data") or {}
        if event.get("type") == "MeasureLogged" and not data.get("title"):
            if data.get("measure_id") in measure_titles:
                data["title"] = measure_titles[data["measure_id"]]
        elif event.get("type") == "DeadlineMet" and not data.get("title"):
            data["title"] = duty_title(str(data.get("deadline_id")))
    unit = str(state.get("unit_id") or "")
    if unit in units:
        state["unit_name"] = units[unit]
    return state


def portal_router(
    app: FastAPI,
    *,
    sessions: Sessions,
    oidc_configured: bool,
    timezone: str,
    clock: Clock,
) -> APIRouter:
    # Every route finds the session first, and a state-changing one is refused (403) unless it
    # comes from one of these pages with the session's CSRF token (services.content.sessions).
    router = APIRouter(include_in_schema=False, dependencies=[Depends(sessions.guard)])
    zone = ZoneInfo(timezone)
    env = build_environment(zone)
    # A deadline's day as one says it ("fredag 4. desember kl. 16:00"): the year only when it is
    # not this year by the portal's clock.
    env.filters["dag"] = lambda value: screen.day_label(value, zone, clock.now())
    env.filters["kl"] = lambda value: screen.clock_label(value, zone)

    def who(request: Request) -> tuple[Principal, Api]:
        session = sessions.current(request)
        if session is None:
            raise LoginRequired
        return session.principal, Api(_client(app), session.token)

    def render(
        request: Request,
        name: str,
        status: int = 200,
        me: Principal | None = None,
        **context: Any,
    ) -> HTMLResponse:
        csrf_token = getattr(request.state, "csrf_token", "")
        html = env.get_template(name).render(
            request=request, me=me, csrf_token=csrf_token, **context
        )
        # Pages show incidents and names: never kept in a shared phone's or a proxy's cache.
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def problem_page(
        request: Request,
        status: int,
        title: str,
        detail: str,
        extra: Mapping[str, Any] | None = None,
        me: Principal | None = None,
    ) -> HTMLResponse:
        """error.html in Norwegian, with what to do next; the navigation when logged in."""
        if me is None:
            try:
                session = sessions.current(request)
            except Exception:  # the page for a failure must not fail too (a store that broke)
                session = None
            me = session.principal if session else None
            if session and not getattr(request.state, "csrf_token", ""):
                # An unknown path runs no route, so no guard set the token the menu's logout
                # form needs.
                request.state.csrf_token = sessions.csrf_token(session)
        problem = portal_problem(status, title, detail, extra or {})
        return render(request, "error.html", status=status, me=me, problem=problem)

    def error_page(request: Request, exc: ApiFailure, me: Principal | None = None) -> HTMLResponse:
        """The page for an API refusal or failure, with a status the browser can act on: a rate
        limit stays 429 (with Retry-After), never a 502."""
        status = exc.status if exc.status in PASSED_ON else 502
        if status == 422 and request.method == "GET":
            # The API refused the id in the page's own address (not a UUID): no such page.
            status = 404
        page = problem_page(request, status, exc.title, exc.detail, exc.body, me)
        retry = exc.body.get("retry_after")
        if status == 429 and retry is not None:
            page.headers["Retry-After"] = str(retry)
        return page

    def unreachable_page(request: Request, exc: Exception) -> Response:
        # The API did not answer at all (KRISELOGG_API_URL down, a timeout): not the portal's 500.
        log.warning("the API did not answer: %s", type(exc).__name__)
        return problem_page(request, 503, *PORTAL_TEXTS[503])

    # Starlette's 404 and 405, validation errors, a too-large body and anything unexpected on
    # the portal's paths come out as this page (shared.http.error_answer); the API keeps
    # problem+json.
    app.state.error_page = lambda request, status, title, detail, extra: problem_page(
        request, status, title, detail, extra
    )

    def fragment(request: Request) -> bool:
        return request.headers.get("hx-request") == "true"

    def to_login(back: str | None = None) -> RedirectResponse:
        target = "/logg-inn"
        if back and safe_return(back) != "/":
            target += "?" + urlencode({"neste": back})
        response = RedirectResponse(target, status_code=303)
        sessions.forget(response)
        return response

    # Every page: no valid login → the login page, then straight back to the page asked for
    # (a link in an alert); an API refusal → a page that explains it.
    async def on_login_required(request: Request, __: Exception) -> Response:
        back = None
        if fragment(request):
            # A live part asking again after the login ran out: the whole page goes to the
            # login and then back to that page, instead of the login swapped into the page.
            page = urlsplit(request.headers.get("hx-current-url", ""))
            back = page.path + (f"?{page.query}" if page.query else "")
            target = to_login(back or None).headers["location"]
            answer = Response(status_code=204, headers={"HX-Redirect": target})
            sessions.forget(answer)
            return answer
        if request.method == "GET":
            back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return to_login(back)

    async def on_api_failure(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiFailure)
        return error_page(request, exc)

    async def on_csrf_refused(request: Request, _: Exception) -> Response:
        # Nothing was written: the guard runs before the page's handler.
        session = sessions.current(request)
        me = session.principal if session else None
        return render(request, "error.html", status=403, me=me, problem=CSRF_REFUSAL)

    app.add_exception_handler(LoginRequired, on_login_required)
    app.add_exception_handler(ApiFailure, on_api_failure)
    app.add_exception_handler(httpx.TransportError, unreachable_page)
    app.add_exception_handler(CsrfRefused, on_csrf_refused)

    # ---------------------------------------------------------------- login

    @router.get("/logg-inn", response_class=HTMLResponse)
    async def login_page(
        request: Request, neste: Annotated[str | None, Query(max_length=500)] = None
    ) -> HTMLResponse:
        # The demo people are this service's own state (set by `kriselogg up`), so the list is
        # read here rather than through the rate-limited GET /api/v1/auth/dev.
        people: list[dict[str, Any]] = list(getattr(app.state, "dev_people", None) or [])
        warning = "Utviklingsinnlogging: bare for demoen, aldri i drift." if people else ""
        back = safe_return(neste)
        # Logged in already, the form carries the session's token; else the pre-login one.
        pre_login = None if sessions.current(request) else sessions.login_csrf(request)
        page = render(
            request,
            "login.html",
            oidc=oidc_configured,
            people=people,
            warning=warning,
            neste=back if back != "/" else "",
        )
        if pre_login is not None:
            sessions.keep_login_csrf(page, pre_login)
        return page

    @router.post("/logg-inn/utvikler", dependencies=[Depends(sessions.guard_login)])
    async def dev_login(
        request: Request,
        person_id: Annotated[str, Form(max_length=64)],
        neste: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        response = await _client(app).post("/api/v1/auth/dev", json={"person_id": person_id})
        if response.status_code != 200:
            return error_page(request, _problem(response))
        done = RedirectResponse(safe_return(neste), status_code=303)
        sessions.start(request, done, response.json()["token"])
        return done

    @router.get("/logg-ut", response_class=HTMLResponse)
    def logout_page(request: Request) -> Response:
        """A bookmarked or typed /logg-ut: a button, since a GET changes nothing."""
        session = sessions.current(request)
        if session is None:
            return to_login()
        return render(request, "logout.html", me=session.principal)

    @router.post("/logg-ut")
    def logout(request: Request) -> Response:
        """The session ends on the server: its cookie, copied or not, opens nothing after."""
        done = RedirectResponse("/logg-inn", status_code=303)
        sessions.end(request, done)
        return done

    # ---------------------------------------------------------------- guidance

    @router.get("/", response_class=HTMLResponse)
    async def start(request: Request) -> Response:
        try:
            me, api = who(request)
            tree = await api.json("/api/v1/guidance/themes")
            incidents = await api.optional("/api/v1/incidents", status="open")
        except LoginRequired:
            # The front door shows the login itself (200) instead of redirecting.
            page = await login_page(request)
            if request.cookies.get(SESSION_COOKIE):
                sessions.forget(page)
            return page
        except ApiFailure as exc:
            return error_page(request, exc)
        shown = None if incidents is None else incidents[:5]  # None: the role lists none
        return render(
            request,
            "start.html",
            me=me,
            tree=tree,
            incidents=shown,
            # Tap 1 of a report: its type, one button each (issue 16).
            report_types=reporting.categories(tree, REPORT_CATEGORIES).common
            if allowed(me, "report", None, OrgTree())
            else [],
            draft_scope=reporting.draft_scope(me),
        )

    @router.get("/sok", response_class=HTMLResponse)
    async def search(request: Request, q: Annotated[str, Query(max_length=200)] = "") -> Response:
        me, api = who(request)
        results = await api.json("/api/v1/guidance/search", q=q) if q.strip() else None
        return render(request, "search.html", me=me, q=q, results=results)

    @router.get("/veiledning/{subtheme_id}", response_class=HTMLResponse)
    async def guidance(request: Request, subtheme_id: str) -> Response:
        me, api = who(request)
        sub = await api.json(f"/api/v1/guidance/subthemes/{quote(subtheme_id, safe='')}")
        return render(request, "guidance.html", me=me, sub=sub)

    @router.get("/ressurser/{article_id}", response_class=HTMLResponse)
    async def resource(request: Request, article_id: str) -> Response:
        me, api = who(request)
        article = await api.json(f"/api/v1/guidance/resources/{quote(article_id, safe='')}")
        return render(request, "resource.html", me=me, article=article)

    # ---------------------------------------------------------------- report
    # Two taps from the start page (issue 16): the type (a button there), then "Send". The unit
    # comes from the directory, "when" is now, the facts are "vet ikke" until told, the title
    # is the type's name unless typed, and the severity follows the type and the answers.

    async def report_context(api: Api) -> tuple[reporting.Categories, dict[str, Any]]:
        tree = await api.json("/api/v1/guidance/themes")
        try:
            units = await api.json("/api/v1/directory/me")
        except ApiFailure:
            # notify down must not stop a report: the form asks for the unit's code instead.
            units = {"units": [], "all_units": []}
        return reporting.categories(tree, REPORT_CATEGORIES), units

    def report_page(
        request: Request,
        me: Principal,
        choices: reporting.Categories,
        units: dict[str, Any],
        form: dict[str, Any],
        errors: list[str],
    ) -> HTMLResponse:
        category = str(form.get("category") or "")
        return render(
            request,
            "report.html",
            status=422 if errors else 200,
            me=me,
            choices=choices,
            chosen=choices.title(category) if category else None,
            units=units,
            form=form,
            errors=errors,
            report_facts=reporting.report_facts(category),
            draft_scope=reporting.draft_scope(me),
            severity_rule=reporting.severity_rule(choices),
        )

    @router.get("/meld", response_class=HTMLResponse)
    async def report_form(
        request: Request, kategori: Annotated[str, Query(max_length=100)] = ""
    ) -> Response:
        me, api = who(request)
        choices, units = await report_context(api)
        mine = units.get("units") or []
        form: dict[str, Any] = {
            # Only a type tapped on the start page is chosen: never one by default.
            "category": kategori if choices.title(kategori) else "",
            "occurred_at": _now_local(clock, zone),
            "unit_id": mine[0]["id"] if len(mine) == 1 else "",
            "severity": "",
            "affected_me": me.has_any("reporter"),
            "facts": {},
            # The incident's id, chosen here: a form sent twice (a double tap, or again by the
            # page's script once the network is back) opens one incident.
            "report_id": str(uuid.uuid4()),
        }
        return report_page(request, me, choices, units, form, [])

    @router.post("/meld")
    async def report(
        request: Request,
        title: Annotated[str, Form(max_length=200)] = "",
        category: Annotated[str, Form(max_length=100)] = "",
        place: Annotated[str, Form(max_length=200)] = "",
        occurred_at: Annotated[str, Form(max_length=40)] = "",
        unit_id: Annotated[str, Form(max_length=100)] = "",
        affected_text: Annotated[str, Form(max_length=500)] = "",
        affected_me: Annotated[bool, Form()] = False,
        severity: Annotated[str, Form(max_length=20)] = "",
        description: Annotated[str, Form(max_length=10_000)] = "",
        report_id: Annotated[str, Form(max_length=40)] = "",
    ) -> Response:
        facts = facts_from_form(await request.form())
        form = {
            "title": title, "category": category, "place": place, "occurred_at": occurred_at,
            "unit_id": unit_id, "affected_text": affected_text, "affected_me": affected_me,
            "severity": severity, "description": description, "facts": facts,
            "report_id": report_id,
        }  # fmt: skip
        me, api = who(request)
        choices, units = await report_context(api)
        errors: list[str] = []
        chosen = choices.title(category)
        if not category:
            errors.append("Velg hva slags hendelse det er.")
        elif chosen is None:
            errors.append("Ukjent type hendelse. Velg en av typene i listen.")
            form["category"] = ""
        # Left empty, "when" is the time of the report (as the API takes it).
        when = _aware(occurred_at, zone) if occurred_at.strip() else None
        if occurred_at.strip() and when is None:
            errors.append("Oppgi når det skjedde som dato og klokkeslett.")
        if not unit_id.strip():
            errors.append("Velg enheten der det skjedde.")
        if severity and severity not in SEVERITY_TITLES:
            errors.append("Ukjent alvorlighetsgrad. Velg lav, middels, høy eller kritisk.")
        try:
            incident_id = str(uuid.UUID(report_id)) if report_id else None
        except ValueError:
            errors.append("Skjemaet er ødelagt. Last inn siden på nytt og send igjen.")
        if errors:
            return report_page(request, me, choices, units, form, errors)
        body: dict[str, Any] = {
            "category": category,
            "title": title.strip() or chosen,
            "unit_id": unit_id.strip(),
            "severity": severity or reporting.derived_severity(category, facts),
            "affected": [me.person_id] if affected_me else [],
            "facts": dict(facts),
        }
        if when:
            body["occurred_at"] = when
        if incident_id:
            body["id"] = incident_id
        if place.strip():
            body["place"] = place.strip()
        if affected_text.strip():
            body["facts"]["affected_description"] = affected_text.strip()
        if description.strip():
            body["description"] = description.strip()
        try:
            written = await api.post("/api/v1/incidents", body)
        except ApiFailure as exc:
            errors.append(exc.detail)
            errors.extend(
                f"{e.get('field', '')}: {e.get('message', '')}" for e in exc.body.get("errors", [])
            )
            return report_page(request, me, choices, units, form, errors)
        # The reporter's receipt first: who was alerted, and whether anyone answered.
        return RedirectResponse(f"/hendelser/{written['id']}/kvittering", status_code=303)

    # ---------------------------------------------------------------- incidents

    async def lists_context(api: Api) -> dict[str, Any]:
        open_, closed, tree = await asyncio.gather(
            api.json("/api/v1/incidents", status="open"),
            api.json("/api/v1/incidents", status="closed"),
            api.json("/api/v1/guidance/themes"),
        )
        return {"open": open_, "closed": closed, "titles": _themes_of(tree)}

    @router.get("/hendelser", response_class=HTMLResponse)
    async def incident_lists(request: Request) -> Response:
        me, api = who(request)
        return render(request, "incidents.html", me=me, **await lists_context(api))

    # The lists' live parts, asked for by htmx every 10 s so a new incident shows without a
    # reload. Declared before /hendelser/{incident_id}, which would take "liste" for an id.
    @router.get("/hendelser/liste", response_class=HTMLResponse)
    async def incident_lists_live(request: Request) -> Response:
        me, api = who(request)
        return render(request, "fragments/incident_lists.html", me=me, **await lists_context(api))

    @router.get("/forside/hendelser", response_class=HTMLResponse)
    async def start_incidents_live(request: Request) -> Response:
        me, api = who(request)
        incidents = await api.optional("/api/v1/incidents", status="open")
        shown = None if incidents is None else incidents[:5]
        return render(request, "fragments/start_incidents.html", me=me, incidents=shown)

    async def alerts_of(api: Api, incident_id: str, state: dict[str, Any]) -> dict[str, Any]:
        """Alerts with delivery status from notify, or (for a role that may not see them
        there) the alerts recorded in the incident's own log."""
        rows = await api.optional("/api/v1/alerts", incident_id=incident_id)
        if rows is None:
            recorded = [
                {
                    "id": a.get("alert_id"),
                    "kind": "alert",
                    "role": a.get("role"),
                    "person_id": (a.get("recipient") or {}).get("id"),
                    "person_name": (a.get("recipient") or {}).get("name"),
                    "channel": a.get("channel"),
                    "status": a.get("status"),
                    "sent_at": a.get("alerted_at"),
                    "acknowledged_at": a.get("acknowledged_at"),
                }
                for a in state.get("alerts", {}).values()
            ]
            return {"alerts": recorded, "live": False}
        return {"alerts": [r for r in rows if r.get("kind") == "alert"], "live": True}

    async def deadlines_of(api: Api, incident_id: str, state: dict[str, Any]) -> list[Any]:
        rows = await api.optional(f"/api/v1/alerts/deadlines/{incident_id}")
        if rows is not None:
            return list(rows)
        return sorted(state.get("deadlines", {}).values(), key=lambda d: str(d.get("due_at")))

    async def checklist_context(
        api: Api, state: dict[str, Any], me: Principal | None
    ) -> dict[str, Any]:
        """The guidance's measures with what the log says of each: the next one of the
        incident's phase, those started, and the caller's own entries still to be undone."""
        category = str(state.get("category", ""))
        try:
            sub = await api.json(f"/api/v1/guidance/subthemes/{quote(category, safe='')}")
        except ApiFailure:
            sub = None
        own = str(state.get("phase", ""))
        # The incident's own phase first: in follow-up, the acute list is history.
        phases = screen.ordered_phases((sub or {}).get("phases", []), own)
        done = screen.current_entries(state)
        return {
            "sub": sub,
            "phases": phases,
            "done": done,
            "board": screen.board(phases, done, own),
            "undoable": screen.undoable(state, me.person_id, clock.now()) if me else [],
        }

    def head_context(incident: dict[str, Any], alerts: list[Any]) -> dict[str, Any]:
        """The sticky header's live part: how long since the report, who acknowledged, and
        when each unanswered track escalates, by the portal's clock."""
        now = clock.now()
        return {
            "head": screen.head(alerts, zone, now),
            "reported_ago": screen.since(incident.get("reported_at"), now),
        }

    async def named(api: Api, state: dict[str, Any]) -> dict[str, Any]:
        """`name_ids` with the guidance's measure titles and the directory's unit names; a
        source that does not answer leaves its ids as they are."""
        category = quote(str(state.get("category", "")), safe="")

        async def guidance() -> dict[str, str]:
            try:
                sub = await api.json(f"/api/v1/guidance/subthemes/{category}")
            except ApiFailure:
                return {}
            return {m["id"]: m["title"] for p in sub.get("phases", []) for m in p["measures"]}

        async def units() -> dict[str, str]:
            try:
                found = await api.optional("/api/v1/directory/me")
            except ApiFailure:
                return {}
            return {u["id"]: u["name"] for u in (found or {}).get("all_units", [])}

        titles, names = await asyncio.gather(guidance(), units())
        return name_ids(state, titles, names)

    async def incident_state(api: Api, incident_id: str) -> dict[str, Any]:
        timeline = await api.json(f"/api/v1/incidents/{incident_id}/timeline")
        state: dict[str, Any] = timeline["incident"]
        state["events"] = timeline["events"]
        return await named(api, state)

    def replay_context(state: dict[str, Any], seq: int) -> dict[str, Any]:
        return {"at": state, "seq": seq, "length": state.get("length", 0)}

    @router.get("/hendelser/{incident_id}", response_class=HTMLResponse)
    async def incident_page(request: Request, incident_id: str) -> Response:
        try:
            me, api = who(request)
            state = await incident_state(api, incident_id)
            checklist, alerts, deadlines, integrity, formats = await asyncio.gather(
                checklist_context(api, state, me),
                alerts_of(api, incident_id, state),
                deadlines_of(api, incident_id, state),
                api.optional(f"/api/v1/incidents/{incident_id}/verify"),
                formats_of(api),
            )
        except LoginRequired:
            return to_login(request.url.path)
        except ApiFailure as exc:
            return error_page(request, exc, me=None)
        return render(
            request,
            "incident.html",
            me=me,
            incident=state,
            deadlines=deadlines,
            unmet=screen.unmet_duties(deadlines),
            integrity=integrity,
            formats=formats,
            **alerts,
            **checklist,
            **head_context(state, alerts["alerts"]),
            **replay_context(state, int(state.get("length", 0))),
        )

    @router.post("/hendelser/{incident_id}/tiltak")
    async def log_measure(
        request: Request,
        incident_id: str,
        measure_id: Annotated[str, Form(max_length=100)] = "",
        title: Annotated[str, Form(max_length=200)] = "",
        note: Annotated[str, Form(max_length=10_000)] = "",
        performed_at: Annotated[str, Form(max_length=40)] = "",
        status: Annotated[str, Form(max_length=20)] = "done",
        fra: Annotated[str, Form(max_length=10)] = "neste",
    ) -> Response:
        """Done, started or not applicable (with the reason, in the note)."""
        me, api = who(request)
        error, code = "", 200
        if status not in STATUS_TITLES:
            error, code = "Velg utført, startet eller ikke aktuelt.", 422
        elif status == "not_applicable" and not note.strip():
            error, code = "Skriv kort hvorfor tiltaket ikke er aktuelt.", 422
        else:
            body: dict[str, Any] = {"status": status}
            if measure_id:
                body["measure_id"] = measure_id
            if title:
                body["title"] = title
            if note.strip():
                body["note"] = note.strip()
            when = _aware(performed_at, zone)
            if when:
                body["performed_at"] = when
            try:
                await api.post(f"/api/v1/incidents/{incident_id}/measures", body)
            except ApiFailure as exc:
                error, code = exc.detail, exc.status
        return await measures_answer(
            request, me, api, incident_id, error, code, fra, "Tiltaket er ikke logget"
        )

    @router.post("/hendelser/{incident_id}/angre")
    async def undo_measure(
        request: Request,
        incident_id: str,
        seq: Annotated[int, Form(ge=1)],
        fra: Annotated[str, Form(max_length=10)] = "neste",
    ) -> Response:
        """Take back one's own tap within a minute: a correction "Angret" of the entry, so the
        log stays append-only and the measure is open again. The server's clock decides."""
        me, api = who(request)
        state = await api.json(f"/api/v1/incidents/{quote(incident_id, safe='')}")
        entry = next((m for m in state.get("measures", []) if m.get("seq") == seq), None)
        error, code = "", 200
        if entry is None:
            error, code = f"Det finnes ikke noe tiltak nr. {seq} i loggen.", 404
        elif entry.get("corrections"):
            error, code = "Tiltaket er allerede angret eller rettet.", 409
        elif (entry.get("actor") or {}).get("id") != me.person_id:
            error, code = "Bare den som førte tiltaket, kan angre det. Før en rettelse.", 403
        elif not screen.undo_left(entry, me.person_id, clock.now()):
            error = "Angrefristen på ett minutt er ute. Før en rettelse med begrunnelse i stedet."
            code = 409
        else:
            try:
                await api.post(
                    f"/api/v1/incidents/{incident_id}/corrections",
                    {"seq": seq, "reason": screen.UNDO_REASON},
                )
            except ApiFailure as exc:
                error, code = exc.detail, exc.status
        return await measures_answer(
            request, me, api, incident_id, error, code, fra, "Tiltaket er ikke angret"
        )

    @router.get("/hendelser/{incident_id}/angre/{seq}", response_class=HTMLResponse)
    async def undo_offer(request: Request, incident_id: str, seq: int) -> Response:
        """One just-logged entry again, asked for by htmx when its minute should be over: with
        the undo button while the server's clock still allows it, without it afterwards."""
        me, api = who(request)
        state = await api.json(f"/api/v1/incidents/{quote(incident_id, safe='')}")
        state = await named(api, state)
        entry = next((m for m in state.get("measures", []) if m.get("seq") == seq), None)
        if entry is None or entry.get("corrections"):
            return HTMLResponse("", headers={"Cache-Control": "no-store"})
        left = screen.undo_left(entry, me.person_id, clock.now())
        return render(
            request,
            "fragments/undo.html",
            me=me,
            incident=state,
            entry={**entry, "undo_left": left},
        )

    def own_problem(
        request: Request, status: int, title: str, detail: str, me: Principal
    ) -> HTMLResponse:
        """error.html with the incident screen's own words, also for a 403 or 404 (which
        problem_page would give its general text): "only the one who logged it may undo it"
        says more than "your role does not allow this"."""
        problem = {"title": title, "detail": detail, "hint": "", "fixes": [], "links": []}
        return render(request, "error.html", status=status, me=me, problem=problem)

    async def measures_answer(
        request: Request,
        me: Principal,
        api: Api,
        incident_id: str,
        error: str,
        code: int,
        fra: str,
        title: str,
    ) -> Response:
        """After a tap on the list: without JavaScript, back to the page (or the reason it
        failed, 4xx); with htmx, the list again with focus on the next open measure, and the
        timeline out of band. htmx swaps only 2xx answers, so a refusal is shown in the list."""
        if not fragment(request):
            if error:
                status = code if 400 <= code < 500 else 502
                return own_problem(request, status, title, error, me)
            return RedirectResponse(f"/hendelser/{incident_id}#tiltak", status_code=303)
        state = await incident_state(api, incident_id)
        checklist = await checklist_context(api, state, me)
        return render(
            request,
            "fragments/measure_logged.html",
            me=me,
            incident=state,
            error=error,
            fra="liste" if fra == "liste" else "neste",
            focus=True,
            **checklist,
            **replay_context(state, int(state.get("length", 0))),
        )

    @router.post("/hendelser/{incident_id}/notater")
    async def add_note(
        request: Request, incident_id: str, text: Annotated[str, Form(max_length=10_000)] = ""
    ) -> Response:
        return await write(request, incident_id, "notes", {"text": text.strip()}, "notater")

    @router.post("/hendelser/{incident_id}/rettelser")
    async def add_correction(
        request: Request,
        incident_id: str,
        seq: Annotated[int, Form(ge=1)],
        reason: Annotated[str, Form(max_length=10_000)] = "",
        note: Annotated[str, Form(max_length=10_000)] = "",
    ) -> Response:
        body: dict[str, Any] = {"seq": seq, "reason": reason.strip()}
        if note.strip():
            body["note"] = note.strip()
        return await write(request, incident_id, "corrections", body, "rettelser")

    @router.post("/hendelser/{incident_id}/fase")
    async def change_phase(
        request: Request,
        incident_id: str,
        phase: Annotated[str, Form(max_length=20)],
        note: Annotated[str, Form(max_length=10_000)] = "",
    ) -> Response:
        """Acute → follow-up (or back); the checklist then leads with that phase's measures."""
        body: dict[str, Any] = {"phase": phase}
        if note.strip():
            body["note"] = note.strip()
        return await write(request, incident_id, "phase", body, "fase")

    @router.post("/hendelser/{incident_id}/avslutt")
    async def close_incident(
        request: Request,
        incident_id: str,
        summary: Annotated[str, Form(max_length=10_000)] = "",
        bekreftet: Annotated[str, Form(max_length=10)] = "",
    ) -> Response:
        """Close with a summary; documents then archives the final Word and PDF. The first
        post only asks: it lists the measures left open and the legal duties not met, and only
        the confirmation ("bekreftet=ja") closes."""
        me, api = who(request)
        if "leader" not in me.roles:  # as the page offers it; the API has the last word
            return error_page(request, ApiFailure(403, "Ingen tilgang", "", {}), me)
        text = summary.strip()
        if bekreftet == "ja" and text:
            return await write(request, incident_id, "close", {"summary": text}, "avslutt")
        state = await api.json(f"/api/v1/incidents/{quote(incident_id, safe='')}")
        if state.get("status") == "closed":
            return own_problem(request, 409, "Allerede avsluttet", "Hendelsen er avsluttet.", me)
        checklist, deadlines = await asyncio.gather(
            checklist_context(api, state, me), deadlines_of(api, incident_id, state)
        )
        error = "" if text else "Skriv en kort oppsummering før du avslutter hendelsen."
        return render(
            request,
            "incident_close.html",
            status=422 if error else 200,
            me=me,
            incident=state,
            summary=text,
            error=error,
            open_measures=screen.open_measures(checklist["phases"], checklist["done"]),
            unmet=screen.unmet_duties(deadlines),
            **checklist,
        )

    @router.post("/hendelser/{incident_id}/fakta")
    async def record_facts(request: Request, incident_id: str) -> Response:
        """Facts learnt after the report; the duties they start are set from now."""
        facts = facts_from_form(await request.form())
        return await write(request, incident_id, "facts", {"facts": facts}, "fakta")

    @router.post("/hendelser/{incident_id}/frister/{deadline_id}")
    async def deadline_met(request: Request, incident_id: str, deadline_id: str) -> Response:
        path = f"deadlines/{quote(deadline_id, safe='')}/met"
        return await write(request, incident_id, path, {}, "frister")

    async def write(
        request: Request, incident_id: str, path: str, body: dict[str, Any], anchor: str
    ) -> Response:
        _, api = who(request)
        await api.post(f"/api/v1/incidents/{incident_id}/{path}", body)
        return RedirectResponse(f"/hendelser/{incident_id}#{anchor}", status_code=303)

    async def receipt_of(api: Api, incident_id: str) -> dict[str, Any]:
        """notify's receipt for the report. Until notify has planned it (a moment after it was
        sent), the incident itself says that it exists, that the caller may see it, and when it
        was reported; if notify still has nothing after RECEIPT_GRACE, the page says to phone."""
        try:
            found: dict[str, Any] = await api.json(f"/api/v1/alerts/receipt/{incident_id}")
            return found
        except ApiFailure as exc:
            if exc.status != 404:
                raise
        state = await api.json(f"/api/v1/incidents/{incident_id}")
        reported = state.get("reported_at")
        waited = clock.now() - datetime.fromisoformat(str(reported).replace("Z", "+00:00"))
        return {
            "incident_id": incident_id,
            "reported_at": reported,
            "alerts": [],
            "acknowledged": False,
            "nobody_reached": waited > RECEIPT_GRACE,
            "may_open_incident": True,
        }

    @router.get("/hendelser/{incident_id}/kvittering", response_class=HTMLResponse)
    async def receipt(request: Request, incident_id: str) -> Response:
        """The reporter's receipt, live (the fragment alone for htmx's every-3-s request)."""
        me, api = who(request)
        found = await receipt_of(api, quote(incident_id, safe=""))
        name = "fragments/receipt.html" if fragment(request) else "receipt.html"
        return render(request, name, me=me, receipt=found)

    @router.get("/hendelser/{incident_id}/varsler", response_class=HTMLResponse)
    async def alerts_fragment(request: Request, incident_id: str) -> Response:
        me, api = who(request)
        rows = await api.optional("/api/v1/alerts", incident_id=incident_id)
        alerts = [r for r in rows or [] if r.get("kind") == "alert"]
        return render(
            request,
            "fragments/alerts.html",
            me=me,
            incident={"id": incident_id},
            alerts=alerts,
            live=rows is not None,
            oob=True,  # the count in the summary around the list, too
        )

    @router.get("/hendelser/{incident_id}/hode", response_class=HTMLResponse)
    async def head_fragment(
        request: Request, incident_id: str, meldt: Annotated[str, Query(max_length=40)] = ""
    ) -> Response:
        """The sticky header's live part, asked for by htmx every 15 s. It reads notify only:
        reading the incident here would put a read in its access log every 15 s. `meldt` (the
        report's time, from the page) only says how long ago that was."""
        me, api = who(request)
        rows = await api.optional("/api/v1/alerts", incident_id=incident_id)
        alerts = [r for r in rows or [] if r.get("kind") == "alert"]
        incident = {"id": incident_id, "reported_at": meldt, "status": "open"}
        return render(
            request,
            "fragments/incident_head.html",
            me=me,
            incident=incident,
            alerts=alerts,
            live=rows is not None,
            **head_context(incident, alerts),
        )

    @router.post("/hendelser/{incident_id}/varsler/{alert_id}/bekreft")
    async def acknowledge(
        request: Request,
        incident_id: str,
        alert_id: str,
        vis: Annotated[str, Form(max_length=10)] = "",
        meldt: Annotated[str, Form(max_length=40)] = "",
    ) -> Response:
        """From the alerts list, or (vis=hode) from the page's header."""
        _, api = who(request)
        await api.post(f"/api/v1/alerts/{quote(alert_id, safe='')}/ack", {})
        if fragment(request):
            if vis == "hode":
                return await head_fragment(request, incident_id, meldt)
            return await alerts_fragment(request, incident_id)
        anchor = "" if vis == "hode" else "#varsler"
        return RedirectResponse(f"/hendelser/{incident_id}{anchor}", status_code=303)

    @router.get("/hendelser/{incident_id}/tidslinje", response_class=HTMLResponse)
    async def replay(
        request: Request, incident_id: str, seq: Annotated[int, Query(ge=1)] = 1
    ) -> Response:
        me, api = who(request)
        timeline = await api.json(f"/api/v1/incidents/{incident_id}/timeline", until_seq=seq)
        at: dict[str, Any] = timeline["incident"]
        at["events"] = timeline["events"]
        at = await named(api, at)
        return render(
            request,
            "fragments/replay_view.html",
            me=me,
            incident={"id": incident_id},
            at=at,
            seq=seq,
        )

    async def formats_of(api: Api) -> list[str]:
        """The log form's formats documents can make now: the PDF button only when there is a
        converter. Nothing when documents does not answer; the page still opens."""
        try:
            found = await api.optional("/api/v1/documents/formats")
        except ApiFailure:
            return []
        return [str(f) for f in (found or {}).get("formats", [])]

    @router.get("/hendelser/{incident_id}/logg.{fmt}")
    async def download(request: Request, incident_id: str, fmt: str) -> Response:
        if fmt not in MEDIA:
            return problem_page(request, 404, *PLAIN_REFUSALS[404])
        try:
            me, api = who(request)
            response = await api.call("GET", f"/api/v1/documents/incidents/{incident_id}/log.{fmt}")
        except LoginRequired:
            return to_login(request.url.path)
        if response.status_code != 200:
            failure = _problem(response)
            if fmt == "pdf" and "docx" in failure.body.get("available_formats", []):
                # No PDF converter (or it failed): the same log form in Word instead.
                return render(
                    request,
                    "error.html",
                    status=503,
                    me=me,
                    problem={
                        "title": "PDF er ikke tilgjengelig",
                        "detail": "kriselogg kan ikke lage PDF akkurat nå. Loggskjemaet finnes "
                        "også som Word-fil, med det samme innholdet.",
                        "links": [
                            (f"/hendelser/{quote(incident_id)}/logg.docx", "Last ned Word-filen")
                        ],
                    },
                )
            return error_page(request, failure, me)
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() == "content-disposition" or k.lower().startswith("x-kriselogg-")
        }
        return Response(response.content, media_type=MEDIA[fmt], headers=headers)

    # ---------------------------------------------------------------- directory admin
    #
    # An upload is first only a preview: notify checks it and says what it would change against
    # the version in use, and nothing is applied. The preview page carries the file itself in a
    # hidden field, with the version it was compared with and a seal: an HMAC, keyed by the
    # session's kriselogg token (which stays on the server), of the file, that version and the
    # admin. "Ta i bruk" applies that very file, by that admin, only if the directory is still
    # the version the diff was made against (notify checks `base` in the same transaction: 409
    # otherwise), and notify validates it again. So the portal keeps no draft of its own, and
    # nothing from the browser is applied that the admin did not see the diff of.

    def refuse_non_admin(request: Request, me: Principal) -> HTMLResponse:
        # Said plainly: the general 403 text is about incidents.
        problem = {"title": "Ingen tilgang", "detail": ADMIN_ONLY, "hint": "", "fixes": []}
        return render(request, "error.html", status=403, me=me, problem=problem)

    def seal_key(request: Request) -> bytes:
        session = sessions.current(request)
        if session is None:
            raise LoginRequired
        return hashlib.sha256(b"kriselogg directory preview\0" + session.token.encode()).digest()

    async def directory_context(api: Api) -> dict[str, Any]:
        kept = await api.json("/api/v1/directory/versions")
        delivery = await api.optional("/api/v1/alerts/channels")
        return {"versions": kept["versions"], "current": kept["current"], "delivery": delivery}

    async def directory_refusal(
        request: Request, me: Principal, api: Api, status: int, error: str, problems: list[str]
    ) -> HTMLResponse:
        return render(
            request,
            "directory.html",
            status=status,
            me=me,
            error=error,
            problems=problems,
            saved=None,
            **await directory_context(api),
        )

    @router.get("/admin/katalog", response_class=HTMLResponse)
    async def directory_page(
        request: Request, lagret: Annotated[int | None, Query(ge=1)] = None
    ) -> Response:
        try:
            me, api = who(request)
            if not me.has_any("admin"):
                return refuse_non_admin(request, me)
            context = await directory_context(api)
        except LoginRequired:
            return to_login(request.url.path)
        saved = next((v for v in context["versions"] if v["version"] == lagret), None)
        return render(
            request, "directory.html", me=me, error="", problems=[], saved=saved, **context
        )

    @router.post("/admin/katalog", response_class=HTMLResponse)
    async def directory_upload(request: Request, file: UploadFile) -> Response:
        try:
            me, api = who(request)
            if not me.has_any("admin"):
                return refuse_non_admin(request, me)
            raw = await file.read(directory_file.MAX_BYTES + 1)
            if len(raw) > directory_file.MAX_BYTES:
                return await directory_refusal(
                    request, me, api, 413, "Filen er for stor: en katalog kan være høyst 1 MB.", []
                )
            try:
                text = directory_file.normal(raw.decode("utf-8"))
                read = directory_file.read(text)
            except UnicodeDecodeError:
                return await directory_refusal(
                    request, me, api, 422, "Filen er ikke tekst i UTF-8. Lagre den som UTF-8.", []
                )
            except directory_file.NotADirectoryFile as exc:
                return await directory_refusal(request, me, api, 422, str(exc), [])
            preview = await api.post("/api/v1/directory/preview", read.body)
            if not preview["valid"]:
                problems = directory_file.located(preview["issues"], read)
                error = (
                    f"Katalogen har {len(problems)} feil, og ingenting er endret. Rett dem og "
                    "last opp filen på nytt."
                )
                return await directory_refusal(request, me, api, 422, error, problems)
        except LoginRequired:
            return to_login()
        base = int(preview["base"])
        return render(
            request,
            "directory_preview.html",
            me=me,
            diff=preview["diff"],
            base=base,
            restore=None,
            problems=[],
            text=text,
            seal=directory_file.seal(seal_key(request), me.org_id, me.person_id, base, text),
        )

    @router.post("/admin/katalog/bruk", response_class=HTMLResponse)
    async def directory_apply(
        request: Request,
        katalog: Annotated[str, Form(max_length=directory_file.MAX_BYTES)],
        base: Annotated[int, Form(ge=0)],
        segl: Annotated[str, Form(max_length=200)],
    ) -> Response:
        try:
            me, api = who(request)
            if not me.has_any("admin"):
                return refuse_non_admin(request, me)
            text = directory_file.normal(katalog)
            expected = directory_file.seal(seal_key(request), me.org_id, me.person_id, base, text)
            if not hmac.compare_digest(expected, segl):
                return await directory_refusal(request, me, api, 400, STALE_PREVIEW, [])
            try:
                read = directory_file.read(text)
            except directory_file.NotADirectoryFile as exc:  # sealed, so only if tampered with
                return await directory_refusal(request, me, api, 422, str(exc), [])
            response = await api.call(
                "PUT", "/api/v1/directory", json=read.body, params={"base": base}
            )
            if response.status_code != 200:
                failure = _problem(response)
                problems = directory_file.located(list(failure.body.get("issues", [])), read)
                return await applied_failure(request, me, api, failure, problems)
        except LoginRequired:
            return to_login()
        return RedirectResponse(f"/admin/katalog?lagret={response.json()['version']}", 303)

    async def applied_failure(
        request: Request, me: Principal, api: Api, failure: ApiFailure, problems: list[str]
    ) -> HTMLResponse:
        if failure.status == 409:
            return await directory_refusal(request, me, api, 409, CHANGED_MEANWHILE, [])
        if failure.status in (403, 404, 422, 503):
            error = f"{failure.title}: {failure.detail}"
            return await directory_refusal(request, me, api, failure.status, error, problems)
        raise failure

    @router.get("/admin/katalog/versjoner/{version}", response_class=HTMLResponse)
    async def directory_restore_page(request: Request, version: int) -> Response:
        try:
            me, api = who(request)
            if not me.has_any("admin"):
                return refuse_non_admin(request, me)
            kept = await api.json(f"/api/v1/directory/versions/{version}")
            preview = await api.post("/api/v1/directory/preview", kept["directory"])
        except LoginRequired:
            return to_login(request.url.path)
        return render(
            request,
            "directory_preview.html",
            me=me,
            diff=preview["diff"],
            base=int(preview["base"]),
            restore=version,
            problems=directory_file.located(preview["issues"], None),
        )

    @router.post("/admin/katalog/versjoner/{version}/gjenopprett", response_class=HTMLResponse)
    async def directory_restore(
        request: Request, version: int, base: Annotated[int, Form(ge=0)]
    ) -> Response:
        try:
            me, api = who(request)
            if not me.has_any("admin"):
                return refuse_non_admin(request, me)
            response = await api.call(
                "POST", f"/api/v1/directory/versions/{version}/restore", params={"base": base}
            )
            if response.status_code != 200:
                failure = _problem(response)
                problems = directory_file.located(list(failure.body.get("issues", [])), None)
                return await applied_failure(request, me, api, failure, problems)
        except LoginRequired:
            return to_login()
        return RedirectResponse(f"/admin/katalog?lagret={response.json()['version']}", 303)

    @router.get("/admin/katalog/versjoner/{version}/katalog.yaml")
    async def directory_download(request: Request, version: int) -> Response:
        try:
            me, api = who(request)
            if not me.has_any("admin"):
                return refuse_non_admin(request, me)
            kept = await api.json(f"/api/v1/directory/versions/{version}")
        except LoginRequired:
            return to_login(request.url.path)
        text = yaml.safe_dump(kept["directory"], allow_unicode=True, sort_keys=False)
        return Response(
            text,
            media_type="application/yaml; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="katalog-versjon-{version}.yaml"',
                "Cache-Control": "no-store",
            },
        )

    return router


def mount_static(app: FastAPI) -> None:
    app.mount("/static", static_files(), name="static")
