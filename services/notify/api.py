"""HTTP API of notify: the directory, who would be alerted, and the alerts (DESIGN §8)."""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends

from services.notify.domain import Directory, Resolver
from services.notify.store import NotifyStore
from shared.auth import Principal
from shared.http import Problem


def build_router(
    store: NotifyStore, caller: Callable[..., Awaitable[Principal]], timezone: str
) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["notify"])
    Caller = Annotated[Principal, Depends(caller)]
    zone = ZoneInfo(timezone)

    @router.put("/directory")
    def put_directory(body: Directory, who: Caller) -> dict[str, Any]:
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
        store.put_directory(body)
        return {"org": body.org.id, "units": len(body.units), "people": len(body.people)}

    @router.get("/directory/units/{unit_id}/responders")
    def responders(unit_id: str, who: Caller) -> dict[str, Any]:
        directory = store.directory(who.org_id)
        if directory is None or all(u.id != unit_id for u in directory.units):
            raise Problem(404, "Unit not found", f"No unit {unit_id} in your organisation.")
        res = Resolver(directory).resolve(unit_id, datetime.now(zone).date())
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
        return store.alerts(who.org_id, incident_id)

    return router
