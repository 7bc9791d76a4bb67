"""The incident API answers people, not stack traces: 401, 404, 409 and 422 with problem+json."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import httpx
import jwt
import pytest

from shared.auth import issue_token, signing_key
from tests.support import REPORT, Stack


async def test_no_or_bad_token_is_401(stack: Stack) -> None:
    key = signing_key(stack.settings)
    expired = jwt.encode(
        {
            "sub": "p-ln",
            "org": "demo",
            "roles": ["leader"],
            "exp": int(time.time()) - 10,
            "iss": "kriselogg",
            "aud": "kriselogg",
        },
        key,
        algorithm="HS256",
    )
    forged = issue_token(
        "another-key-of-sufficient-length-0123456789",
        org_id="demo",
        person_id="p-ln",
        name="L",
        roles=[],
    )
    bad: list[dict[str, str]] = [
        {},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": "Basic abc"},
    ]
    for headers in bad:
        response = await stack.client.post("/api/v1/incidents", json=REPORT, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == "Ikke logget inn"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"severity": "apocalyptic"}, "severity"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2026-11-25T19:00:00"}, "occurred_at"),  # no time zone: ambiguous
        ({"affected": "p-ansatt"}, "affected"),
        ({"title": "x" * 100_000}, "title"),
        ({"unit_id": None}, "unit_id"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_bad_report_is_422_naming_the_field(
    stack: Stack, change: dict[str, object], field: str
) -> None:
    response = await stack.client.post(
        "/api/v1/incidents", json={**REPORT, **change}, headers=stack.auth("reporter")
    )
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in problem["errors"]]


async def test_missing_field_and_wrong_shape_are_422(stack: Stack) -> None:
    body = {k: v for k, v in REPORT.items() if k != "category"}
    response = await stack.client.post("/api/v1/incidents", json=body, headers=stack.auth())
    assert response.status_code == 422
    assert "category" in response.json()["detail"]
    for raw in (b"[1, 2]", b"not json", b""):
        response = await stack.client.post(
            "/api/v1/incidents",
            content=raw,
            headers={**stack.auth(), "Content-Type": "application/json"},
        )
        assert response.status_code == 422


async def test_other_organisation_sees_404_like_a_missing_incident(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    other = {"Authorization": f"Bearer {stack.tokens['other_org']}"}
    for path in ("", "/timeline", "/verify", "/export"):
        theirs = await stack.client.get(f"/api/v1/incidents/{incident_id}{path}", headers=other)
        missing = await stack.client.get(f"/api/v1/incidents/{uuid.uuid4()}{path}", headers=other)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["title"] == missing.json()["title"] == "Hendelsen finnes ikke"
        assert "Slått" not in theirs.text and "p-ansatt" not in theirs.text
    note = await stack.client.post(
        f"/api/v1/incidents/{incident_id}/notes", json={"text": "hei"}, headers=other
    )
    assert note.status_code == 404
    listed = await stack.client.get("/api/v1/incidents", headers=other)
    assert listed.json() == []


async def test_log_correct_close_and_closed_rules(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    # Let notify's facts land first, so the last write below is the head of the chain.
    await stack.settle(incident_id)
    base = f"/api/v1/incidents/{incident_id}"
    measure = await stack.client.post(
        f"{base}/measures",
        json={
            "measure_id": "akutt-1",
            "title": "Trekk deg unna og tilkall hjelp",
            "status": "done",
        },
        headers=stack.auth(),
    )
    assert measure.status_code == 201
    seq = measure.json()["seq"]
    fix = await stack.client.post(
        f"{base}/corrections", json={"seq": seq, "reason": "Feil tidspunkt"}, headers=stack.auth()
    )
    assert fix.status_code == 201
    bad_fix = await stack.client.post(
        f"{base}/corrections", json={"seq": 999, "reason": "?"}, headers=stack.auth()
    )
    assert bad_fix.status_code == 422
    closed = await stack.client.post(
        f"{base}/close", json={"summary": "Fulgt opp."}, headers=stack.auth()
    )
    assert closed.status_code == 201
    refused = await stack.client.post(
        f"{base}/measures", json={"title": "Sent tiltak", "status": "done"}, headers=stack.auth()
    )
    assert refused.status_code == 409
    note = await stack.client.post(f"{base}/notes", json={"text": "Etterpå"}, headers=stack.auth())
    assert note.status_code == 201

    state = (await stack.client.get(base, headers=stack.auth())).json()
    assert state["status"] == "closed"
    assert state["measures"][0]["corrections"] == [fix.json()["seq"]]
    verified = (await stack.client.get(f"{base}/verify", headers=stack.auth())).json()
    assert verified["valid"] is True
    assert verified["head_hash"] == note.json()["hash"]


async def test_phase_goes_to_follow_up_and_a_closed_incident_refuses_all_but_notes_and_corrections(
    stack: Stack,
) -> None:
    incident_id = (await stack.report())["id"]
    base = f"/api/v1/incidents/{incident_id}"

    async def post(path: str, body: object, who: str = "leader") -> httpx.Response:
        return await stack.client.post(f"{base}/{path}", json=body, headers=stack.auth(who))

    assert (await post("phase", {"phase": "oppfolging"}, who="reporter")).status_code == 403
    moved = await post("phase", {"phase": "oppfolging", "note": "Faren er over"})
    assert moved.status_code == 201, moved.text
    assert (await stack.client.get(base, headers=stack.auth())).json()["phase"] == "oppfolging"
    again = await post("phase", {"phase": "oppfolging"})
    assert again.status_code == 409 and "allerede" in again.json()["detail"]
    for wrong in ("avsluttet", "ferdig"):
        refused = await post("phase", {"phase": wrong})
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "phase"

    assert (await post("close", {"summary": "Fulgt opp"})).status_code == 201
    for path, body in [
        ("close", {"summary": "En gang til"}),
        ("phase", {"phase": "akutt"}),
        ("measures", {"title": "Sent tiltak", "status": "done"}),
    ]:
        late = await post(path, body)
        assert late.status_code == 409, (path, late.text)
        assert late.json()["title"] == "Hendelsen er avsluttet"
    fixed = await post("corrections", {"seq": moved.json()["seq"], "reason": "Feil dato"})
    assert fixed.status_code == 201
    assert (await post("notes", {"text": "Etterpå"})).status_code == 201

    timeline = await stack.timeline(incident_id)
    phase_event = next(e for e in timeline["events"] if e["type"] == "PhaseChanged")
    assert phase_event["data"] == {"phase": "oppfolging", "note": "Faren er over"}
    assert timeline["incident"]["phase"] == "avsluttet"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("measures", {"title": "Ringte politiet", "status": "finished"}),
        ("measures", {"status": "done"}),  # neither measure_id nor title
        ("measures", {"title": "x", "status": "done", "performed_at": "i går"}),
        ("notes", {"text": ""}),
        ("notes", {"text": "y" * 100_000}),
        ("notes", ["not", "an", "object"]),
        ("corrections", {"seq": "two", "reason": "feil"}),
        ("corrections", {"seq": 0, "reason": "feil"}),
        ("close", {}),
    ],
)
async def test_bad_entries_are_422_and_leave_the_log_untouched(
    stack: Stack, path: str, body: object
) -> None:
    incident_id = (await stack.report())["id"]
    settled = await stack.settle(incident_id)
    response = await stack.client.post(
        f"/api/v1/incidents/{incident_id}/{path}", json=body, headers=stack.auth()
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]
    assert (await stack.timeline(incident_id))["incident"]["length"] == settled


async def test_list_shows_own_incidents_by_status(stack: Stack) -> None:
    first = (await stack.report(title="Første"))["id"]
    second = (await stack.report(title="Andre"))["id"]
    closed = await stack.client.post(
        f"/api/v1/incidents/{first}/close", json={"summary": "Ferdig"}, headers=stack.auth()
    )
    assert closed.status_code == 201
    listed = await stack.client.get("/api/v1/incidents", headers=stack.auth())
    assert [i["id"] for i in listed.json()] == [second, first]  # newest first
    open_only = await stack.client.get(
        "/api/v1/incidents", params={"status": "open"}, headers=stack.auth()
    )
    assert [i["id"] for i in open_only.json()] == [second]
    assert open_only.json()[0]["title"] == "Andre"
    bad = await stack.client.get("/api/v1/incidents", params={"status": "x"}, headers=stack.auth())
    assert bad.status_code == 422


async def test_a_deadline_is_marked_met_once_even_after_closing(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    base = f"/api/v1/incidents/{incident_id}"
    state = (await stack.timeline(incident_id))["incident"]
    assert state["deadlines"]["ftrl-13-14"]["kind"] == "law"
    assert state["deadlines"]["ftrl-13-14"]["legal_ref"] == "ftrl § 13-14"
    assert state["deadlines"]["oppfolging-en-uke"]["kind"] == "routine"

    closed = await stack.client.post(
        f"{base}/close", json={"summary": "Fulgt opp"}, headers=stack.auth()
    )
    assert closed.status_code == 201
    # The NAV report may be sent months after the incident was closed.
    met = await stack.client.post(
        f"{base}/deadlines/ftrl-13-14/met",
        json={"note": "Sendt via Altinn"},
        headers=stack.auth(),
    )
    assert met.status_code == 201, met.text
    again = await stack.client.post(
        f"{base}/deadlines/ftrl-13-14/met", json={}, headers=stack.auth()
    )
    assert again.status_code == 409
    unknown = await stack.client.post(
        f"{base}/deadlines/finnes-ikke/met", json={}, headers=stack.auth()
    )
    assert unknown.status_code == 404
    state = (await stack.timeline(incident_id))["incident"]
    assert state["deadlines"]["ftrl-13-14"]["met_at"] is not None
    assert state["deadlines"]["aml-5-1"]["met_at"] is None


@pytest.mark.parametrize(
    "when",
    [
        "0202-03-02T10:00:00+01:00",  # a typo for 2026-03-02
        "9999-12-31T23:59:59+14:00",
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC: once a 500
        "1899-12-31T23:00:00Z",
        "2200-01-01T00:00:00Z",
    ],
)
async def test_impossible_times_are_422_and_no_incident_is_opened(stack: Stack, when: str) -> None:
    """Issue 15: such a report was accepted (201), then nobody was alerted: its deadlines could
    not be computed and notify dead-lettered it."""
    before = (await stack.client.get("/api/v1/incidents", headers=stack.auth())).json()
    response = await stack.client.post(
        "/api/v1/incidents", json={**REPORT, "occurred_at": when}, headers=stack.auth("reporter")
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    after = (await stack.client.get("/api/v1/incidents", headers=stack.auth())).json()
    assert len(after) == len(before)


async def test_times_days_ahead_are_refused_for_reports_measures_and_sick_leave(
    stack: Stack,
) -> None:
    ahead = (stack.clock.now() + timedelta(days=3)).isoformat()
    report = await stack.client.post(
        "/api/v1/incidents", json={**REPORT, "occurred_at": ahead}, headers=stack.auth("reporter")
    )
    assert report.status_code == 422 and "mer enn et døgn frem i tid" in report.json()["detail"]
    incident_id = (await stack.report())["id"]
    measure = await stack.client.post(
        f"/api/v1/incidents/{incident_id}/measures",
        json={"title": "Ringte politiet", "status": "done", "performed_at": ahead},
        headers=stack.auth(),
    )
    assert measure.status_code == 422
    # A sick leave may be known to start tomorrow, but not in the year 9999.
    tomorrow = (stack.clock.now() + timedelta(days=1)).date().isoformat()
    fine = await stack.client.post(
        f"/api/v1/incidents/{incident_id}/facts",
        json={"facts": {"sick_leave_from": tomorrow}},
        headers=stack.auth(),
    )
    assert fine.status_code == 201, fine.text
    typo = await stack.client.post(
        f"/api/v1/incidents/{incident_id}/facts",
        json={"facts": {"sick_leave_from": "9999-01-01"}},
        headers=stack.auth(),
    )
    assert typo.status_code == 422
