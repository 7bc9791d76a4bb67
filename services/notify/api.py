"""HTTP API of notify: the directory, who would be alerted, the alerts and their acknowledgement.

Acknowledging is possible two ways: `POST /api/v1/alerts/{id}/ack` with the recipient's token,
and the signed link in the message. The link's GET only shows a page with a button; the POST
behind the button acknowledges. Mail scanners open every link in a message, and a GET that
acknowledged would stop the escalation before any person had read the alert.
"""

import asyncio
from collections.abc import Awaitable, Callable
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse

from services.notify.domain import Directory, Resolver, check_ack
from services.notify.store import NotifyStore, alert_fact
from shared.auth import Principal
from shared.http import Problem, RateLimit
from shared.subjects import Subjects


def build_router(
    store: NotifyStore,
    caller: Callable[..., Awaitable[Principal]],
    timezone: str,
    subjects: Subjects,
    ack_key: bytes,
    wake: Callable[[], None],
    share: Callable[[Directory], Awaitable[None]],
) -> APIRouter:
    """`wake` nudges the dispatcher to publish a new fact now rather than at its next timer."""
    router = APIRouter(prefix="/api/v1", tags=["notify"])
    Caller = Annotated[Principal, Depends(caller)]

    @router.put("/directory")
    async def put_directory(body: Directory, who: Caller) -> dict[str, Any]:
        if not who.has_any("admin"):
            raise Problem(403, "Not allowed", "Only an administrator can replace the directory.")
        if body.org.id != who.org_id:
            raise Problem(
                422,
                "Wrong organisation",
                f"The directory is for '{body.org.id}', but you are signed in to '{who.org_id}'.",
            )
        problems = body.problems()
        if problems:
            raise Problem(
                422, "Invalid directory", f"{len(problems)} problem(s) found.", problems=problems
            )
        await asyncio.to_thread(store.put_directory, body)
        try:
            await share(body)
        except Exception as exc:
            # Saved here, not yet seen by the access rules elsewhere; startup shares it again.
            raise Problem(
                503,
                "Directory saved but not shared",
                "The other services have not received it yet; send it again shortly.",
            ) from exc
        return {"org": body.org.id, "units": len(body.units), "people": len(body.people)}

    def overseer(who: Principal) -> None:
        # Who was alerted, and how to reach them, is for those who act or check, not for
        # every employee who can report.
        if not who.has_any("leader", "safety_rep", "hr", "auditor", "admin"):
            raise Problem(403, "Not allowed", "Your role cannot see alerts or responders.")

    @router.get("/directory/units/{unit_id}/responders")
    def responders(unit_id: str, who: Caller) -> dict[str, Any]:
        overseer(who)
        directory = store.directory(who.org_id)
        if directory is None or all(u.id != unit_id for u in directory.units):
            raise Problem(404, "Unit not found", f"No unit {unit_id} in your organisation.")
        res = Resolver(directory).resolve(unit_id, store.clock.today(timezone))
        return {
            "leaders": [
                {"person_id": r.person.id, "name": r.person.name, "role": r.role, "unit": r.unit_id}
                for r in res.leaders
            ],
            "safety_rep": (
                {"person_id": res.safety_rep.person.id, "name": res.safety_rep.person.name}
                if res.safety_rep
                else None
            ),
            "main_safety_rep": (
                {
                    "person_id": res.main_safety_rep.person.id,
                    "name": res.main_safety_rep.person.name,
                }
                if res.main_safety_rep
                else None
            ),
            "hr": [{"person_id": r.person.id, "name": r.person.name} for r in res.hr],
            "skipped": [
                {
                    "person_id": s.person.id,
                    "name": s.person.name,
                    "role": s.role,
                    "reason": s.reason,
                }
                for s in res.skipped
            ],
        }

    @router.get("/alerts")
    def alerts(who: Caller, incident_id: str | None = None) -> list[dict[str, Any]]:
        """Every alert and reminder: status, attempts and times, for the portal and audits."""
        overseer(who)
        return store.alerts(who.org_id, incident_id)

    @router.get("/alerts/deadlines/{incident_id}")
    def deadlines(incident_id: str, who: Caller) -> list[dict[str, Any]]:
        """The duties of an incident, law and routine labelled, with their reminders."""
        overseer(who)
        return store.deadlines(who.org_id, incident_id)

    async def acknowledge(org_id: str, alert_id: str) -> dict[str, Any]:
        alert = await asyncio.to_thread(store.alert, org_id, alert_id)
        if alert is None:
            raise Problem(404, "Alert not found", f"No alert {alert_id} in your organisation.")
        at = store.clock.now()
        fact = alert_fact(
            "AlertAcknowledged", alert, subjects.subject(org_id, "alert", "AlertAcknowledged"), at
        )
        updated = await asyncio.to_thread(store.acknowledge, org_id, alert_id, at, fact)
        wake()
        assert updated is not None
        return {
            "alert_id": alert_id,
            "status": updated["status"],
            "acknowledged_at": updated["acknowledged_at"],
        }

    @router.post("/alerts/{alert_id}/ack")
    async def ack(alert_id: str, who: Caller) -> dict[str, Any]:
        alert = await asyncio.to_thread(store.alert, who.org_id, alert_id)
        if alert is None:
            raise Problem(404, "Alert not found", f"No alert {alert_id} in your organisation.")
        if alert["person_id"] != who.person_id:
            raise Problem(
                403,
                "Not your alert",
                "Only the person who was alerted can acknowledge it; that is what the log says.",
            )
        return await acknowledge(who.org_id, alert_id)

    def signed(alert_id: str, expires: int, sig: str) -> dict[str, Any]:
        alert = store.alert_by_id(alert_id)
        if alert is None or not check_ack(ack_key, alert_id, expires, sig, store.clock.time()):
            raise Problem(
                404,
                "Link not valid",
                "This acknowledgement link is unknown or has expired. Open kriselogg and "
                "acknowledge the alert there.",
            )
        return alert

    def page(title: str, body: str) -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><html lang='nb'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title></head><body><main>"
            f"<h1>{escape(title)}</h1>{body}</main></body></html>"
        )

    # The links work without a token: limit how fast anyone can try signatures on them.
    link_limit = RateLimit(per_minute=30)

    @router.get(
        "/alerts/{alert_id}/ack",
        response_class=HTMLResponse,
        include_in_schema=False,
        dependencies=[Depends(link_limit)],
    )
    def ack_page(
        alert_id: str, expires: Annotated[int, Query()], sig: Annotated[str, Query()]
    ) -> HTMLResponse:
        alert = signed(alert_id, expires, sig)
        if alert["acknowledged_at"]:
            return page("Varselet er bekreftet", "<p>Takk. Varselet var allerede bekreftet.</p>")
        return page(
            "Bekreft varselet",
            f"<p>Hei {escape(alert['person_name'])}. Trykk på knappen for å bekrefte at du har "
            "mottatt varselet og tar hånd om det.</p>"
            f"<form method='post' action='ack-link'>"
            f"<input type='hidden' name='expires' value='{expires}'>"
            f"<input type='hidden' name='sig' value='{escape(sig)}'>"
            "<button type='submit'>Jeg har mottatt varselet</button></form>",
        )

    @router.post(
        "/alerts/{alert_id}/ack-link",
        response_class=HTMLResponse,
        include_in_schema=False,
        dependencies=[Depends(link_limit)],
    )
    async def ack_by_link(
        alert_id: str, expires: Annotated[int, Form()], sig: Annotated[str, Form()]
    ) -> HTMLResponse:
        alert = await asyncio.to_thread(signed, alert_id, expires, sig)
        await acknowledge(alert["org_id"], alert_id)
        return page("Varselet er bekreftet", "<p>Takk. Det står nå i hendelsesloggen.</p>")

    return router
