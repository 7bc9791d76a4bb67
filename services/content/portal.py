"""The portal: the web interface, server-rendered in Norwegian bokmål, over the public API."""

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import httpx
import yaml
from fastapi import APIRouter, FastAPI, Form, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from markupsafe import Markup, escape
from starlette.staticfiles import StaticFiles

from services.content.login import TOKEN_COOKIE, safe_return
from shared.auth import Principal, TokenError, TokenVerifier
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

log = logging.getLogger(__name__)


# --- the portal: the leader's web interface (issue 8) ---------------------------------------
#
# The portal: the leader's web interface, server-rendered in Norwegian bokmål (issue 8).
#
# The portal holds no data of its own. Every page reads and writes through the services' public
# HTTP API with the logged-in person's own token, so every access rule of the API applies to the
# portal too. The token lives in the HttpOnly cookie that the login routes set.
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


def static_url(name: str) -> str:
    """The URL of one of the portal's static files."""
    return f"/static/{name}"


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
            client = httpx.AsyncClient(
                transport=transport, base_url="http://kriselogg", timeout=120.0
            )
        else:
            url = (getattr(app.state, "api_url", None) or "").strip()
            if not url:
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


def _done_measures(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The latest uncorrected entry per measure id."""
    done: dict[str, dict[str, Any]] = {}
    for entry in state.get("measures", []):
        if entry.get("corrections"):
            continue
        key = entry.get("measure_id") or entry.get("title")
        if key:
            done[str(key)] = entry
    return done


def portal_router(
    app: FastAPI,
    key: str,
    *,
    oidc_configured: bool,
    secure_cookies: bool,
    timezone: str,
    clock: Clock,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    zone = ZoneInfo(timezone)
    env = build_environment(zone)
    verify = TokenVerifier(key, clock=clock)

    def who(request: Request) -> tuple[Principal, Api]:
        token = request.cookies.get(TOKEN_COOKIE, "")
        if not token:
            raise LoginRequired
        try:
            principal = verify(token)
        except TokenError:
            raise LoginRequired from None
        return principal, Api(_client(app), token)

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
        return HTMLResponse(html, status_code=status)

    def error_page(request: Request, exc: ApiFailure, me: Principal | None = None) -> HTMLResponse:
        status = exc.status if exc.status in (403, 404, 409, 422, 503) else 502
        # A refusal or a missing page reads in Norwegian, whatever the API said in English.
        plain = PLAIN_REFUSALS.get(status)
        problem = {"title": plain[0], "detail": plain[1]} if plain else exc
        return render(request, "error.html", status=status, me=me, problem=problem)

    def fragment(request: Request) -> bool:
        return request.headers.get("hx-request") == "true"

    def to_login(back: str | None = None) -> RedirectResponse:
        target = "/logg-inn"
        if back and safe_return(back) != "/":
            target += "?" + urlencode({"neste": back})
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(TOKEN_COOKIE, path="/")
        return response

    # Every page: no valid login → the login page, then straight back to the page asked for
    # (a link in an alert); an API refusal → a page that explains it.
    async def on_login_required(request: Request, __: Exception) -> Response:
        back = None
        if request.method == "GET":
            back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return to_login(back)

    async def on_api_failure(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiFailure)
        return error_page(request, exc)

    app.add_exception_handler(LoginRequired, on_login_required)
    app.add_exception_handler(ApiFailure, on_api_failure)

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
        return render(
            request,
            "login.html",
            oidc=oidc_configured,
            people=people,
            warning=warning,
            neste=back if back != "/" else "",
        )

    @router.post("/logg-inn/utvikler")
    async def dev_login(
        request: Request,
        person_id: Annotated[str, Form(max_length=64)],
        neste: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        response = await _client(app).post("/api/v1/auth/dev", json={"person_id": person_id})
        if response.status_code != 200:
            return error_page(request, _problem(response))
        token = response.json()["token"]
        done = RedirectResponse(safe_return(neste), status_code=303)
        done.set_cookie(
            TOKEN_COOKIE, token, max_age=12 * 3600, httponly=True, secure=secure_cookies,
            samesite="lax", path="/",
        )  # fmt: skip
        return done

    @router.api_route("/logg-ut", methods=["GET", "POST"])
    def logout() -> RedirectResponse:
        return to_login()

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
            page.delete_cookie(TOKEN_COOKIE, path="/")
            return page
        except ApiFailure as exc:
            return error_page(request, exc)
        return render(request, "start.html", me=me, tree=tree, incidents=(incidents or [])[:5])

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

    async def categories(api: Api) -> list[tuple[str, str]]:
        titles = _themes_of(await api.json("/api/v1/guidance/themes"))
        return [(c, titles.get(c, c)) for c in REPORT_CATEGORIES]

    def report_defaults(me: Principal) -> dict[str, Any]:
        return {
            "category": "vold-fysisk",
            "occurred_at": _now_local(clock, zone),
            "unit_id": "u-nord" if me.org_id == "demo" else "",
            "severity": "high",
            "affected_me": me.has_any("reporter"),
            "facts": {},
        }

    @router.get("/meld", response_class=HTMLResponse)
    async def report_form(request: Request) -> Response:
        me, api = who(request)
        options = await categories(api)
        return render(
            request, "report.html", me=me, options=options, form=report_defaults(me), errors=[]
        )

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
        severity: Annotated[str, Form(max_length=20)] = "high",
        description: Annotated[str, Form(max_length=10_000)] = "",
    ) -> Response:
        form = {
            "title": title, "category": category, "place": place, "occurred_at": occurred_at,
            "unit_id": unit_id, "affected_text": affected_text, "affected_me": affected_me,
            "severity": severity, "description": description,
            "facts": facts_from_form(await request.form()),
        }  # fmt: skip
        me, api = who(request)
        errors: list[str] = []
        when = _aware(occurred_at, zone)
        if not title.strip():
            errors.append("Skriv kort hva som skjedde.")
        if when is None:
            errors.append("Oppgi når det skjedde.")
        if not unit_id.strip():
            errors.append("Oppgi enheten.")
        body: dict[str, Any] = {
            "category": category,
            "title": title.strip(),
            "occurred_at": when,
            "unit_id": unit_id.strip(),
            "severity": severity,
            "affected": [me.person_id] if affected_me else [],
            "facts": facts_from_form(await request.form()),
        }
        if place.strip():
            body["place"] = place.strip()
        if affected_text.strip():
            body["facts"]["affected_description"] = affected_text.strip()
        if description.strip():
            body["description"] = description.strip()
        if not errors:
            try:
                written = await api.post("/api/v1/incidents", body)
            except ApiFailure as exc:
                errors.append(exc.detail)
                errors.extend(
                    f"{e.get('field', '')}: {e.get('message', '')}"
                    for e in exc.body.get("errors", [])
                )
            else:
                # The reporter's receipt first: who was alerted, and whether anyone answered.
                return RedirectResponse(f"/hendelser/{written['id']}/kvittering", status_code=303)
        options = await categories(api)
        return render(
            request, "report.html", status=422, me=me, options=options, form=form, errors=errors
        )

    # ---------------------------------------------------------------- incidents

    @router.get("/hendelser", response_class=HTMLResponse)
    async def incident_lists(request: Request) -> Response:
        me, api = who(request)
        open_, closed, tree = await asyncio.gather(
            api.json("/api/v1/incidents", status="open"),
            api.json("/api/v1/incidents", status="closed"),
            api.json("/api/v1/guidance/themes"),
        )
        return render(
            request,
            "incidents.html",
            me=me,
            open=open_,
            closed=closed,
            titles=_themes_of(tree),
        )

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

    async def checklist_context(api: Api, state: dict[str, Any]) -> dict[str, Any]:
        category = str(state.get("category", ""))
        try:
            sub = await api.json(f"/api/v1/guidance/subthemes/{quote(category, safe='')}")
        except ApiFailure:
            sub = None
        phases = [p for p in (sub or {}).get("phases", []) if p["id"] != "forebyggende"]
        # The incident's own phase first: in follow-up, the acute list is history.
        phases.sort(key=lambda p: p["id"] != state.get("phase"))
        return {"sub": sub, "phases": phases, "done": _done_measures(state)}

    async def incident_state(api: Api, incident_id: str) -> dict[str, Any]:
        timeline = await api.json(f"/api/v1/incidents/{incident_id}/timeline")
        state: dict[str, Any] = timeline["incident"]
        state["events"] = timeline["events"]
        return state

    def replay_context(state: dict[str, Any], seq: int) -> dict[str, Any]:
        return {"at": state, "seq": seq, "length": state.get("length", 0)}

    @router.get("/hendelser/{incident_id}", response_class=HTMLResponse)
    async def incident_page(request: Request, incident_id: str) -> Response:
        try:
            me, api = who(request)
            state = await incident_state(api, incident_id)
            checklist, alerts, deadlines, integrity = await asyncio.gather(
                checklist_context(api, state),
                alerts_of(api, incident_id, state),
                deadlines_of(api, incident_id, state),
                api.optional(f"/api/v1/incidents/{incident_id}/verify"),
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
            integrity=integrity,
            **alerts,
            **checklist,
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
    ) -> Response:
        me, api = who(request)
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
        error = ""
        try:
            await api.post(f"/api/v1/incidents/{incident_id}/measures", body)
        except ApiFailure as exc:
            error = exc.detail
        if not fragment(request):
            if error:
                return error_page(request, ApiFailure(409, "Ikke logget", error, {}), me)
            return RedirectResponse(f"/hendelser/{incident_id}#tiltak", status_code=303)
        state = await incident_state(api, incident_id)
        checklist = await checklist_context(api, state)
        return render(
            request,
            "fragments/measure_logged.html",
            me=me,
            incident=state,
            error=error,
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
        request: Request, incident_id: str, summary: Annotated[str, Form(max_length=10_000)] = ""
    ) -> Response:
        """Close with a summary; documents then archives the final Word and PDF."""
        return await write(request, incident_id, "close", {"summary": summary.strip()}, "avslutt")

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
        )

    @router.post("/hendelser/{incident_id}/varsler/{alert_id}/bekreft")
    async def acknowledge(request: Request, incident_id: str, alert_id: str) -> Response:
        _, api = who(request)
        await api.post(f"/api/v1/alerts/{quote(alert_id, safe='')}/ack", {})
        if fragment(request):
            return await alerts_fragment(request, incident_id)
        return RedirectResponse(f"/hendelser/{incident_id}#varsler", status_code=303)

    @router.get("/hendelser/{incident_id}/tidslinje", response_class=HTMLResponse)
    async def replay(
        request: Request, incident_id: str, seq: Annotated[int, Query(ge=1)] = 1
    ) -> Response:
        me, api = who(request)
        timeline = await api.json(f"/api/v1/incidents/{incident_id}/timeline", until_seq=seq)
        at: dict[str, Any] = timeline["incident"]
        at["events"] = timeline["events"]
        return render(
            request,
            "fragments/replay_view.html",
            me=me,
            incident={"id": incident_id},
            at=at,
            seq=seq,
        )

    @router.get("/hendelser/{incident_id}/logg.{fmt}")
    async def download(request: Request, incident_id: str, fmt: str) -> Response:
        if fmt not in MEDIA:
            return render(
                request,
                "error.html",
                status=404,
                problem=ApiFailure(404, "Finnes ikke", "Velg Word (.docx) eller PDF.", {}),
            )
        try:
            me, api = who(request)
            response = await api.call("GET", f"/api/v1/documents/incidents/{incident_id}/log.{fmt}")
        except LoginRequired:
            return to_login(request.url.path)
        if response.status_code != 200:
            return error_page(request, _problem(response), me)
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() == "content-disposition" or k.lower().startswith("x-kriselogg-")
        }
        return Response(response.content, media_type=MEDIA[fmt], headers=headers)

    # ---------------------------------------------------------------- directory admin

    @router.get("/admin/katalog", response_class=HTMLResponse)
    async def directory_page(request: Request) -> Response:
        try:
            me, api = who(request)
            delivery = await api.optional("/api/v1/alerts/channels")
        except LoginRequired:
            return to_login(request.url.path)
        return render(
            request,
            "directory.html",
            me=me,
            result=None,
            problems=[],
            error="",
            delivery=delivery,
        )

    @router.post("/admin/katalog", response_class=HTMLResponse)
    async def directory_upload(request: Request, file: UploadFile) -> Response:
        try:
            me, api = who(request)
            raw = await file.read(1024 * 1024 + 1)
            result, problems, error = None, [], ""
            try:
                body = yaml.safe_load(raw.decode("utf-8"))
            except (UnicodeDecodeError, yaml.YAMLError) as exc:
                error = f"Filen er ikke gyldig YAML: {exc}"
            else:
                response = await api.call("PUT", "/api/v1/directory", json=body)
                if response.status_code == 200:
                    result = response.json()
                else:
                    failure = _problem(response)
                    error = f"{failure.title}: {failure.detail}"
                    problems = [str(p) for p in failure.body.get("problems", [])]
                    problems += [
                        f"{e.get('field', '')}: {e.get('message', '')}"
                        for e in failure.body.get("errors", [])
                    ]
        except LoginRequired:
            return to_login()
        status = 200 if result else 422
        return render(
            request,
            "directory.html",
            status=status,
            me=me,
            result=result,
            problems=problems,
            error=error,
        )

    return router


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
