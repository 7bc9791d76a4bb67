"""Portal forms over HTTP (no browser): what a leader does after the acute phase."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from tests.e2e.portal_client import as_person, login_form
from tests.support import REPORT, Stack, running_stack


async def test_a_leader_closes_an_incident_from_the_portal(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    cookies = await as_person(stack, "leader")
    page = await stack.client.get(f"/hendelser/{incident_id}", headers=cookies)
    assert page.status_code == 200 and 'data-testid="close-incident"' in page.text

    # The first post only asks (issue 16): what is left open, and nothing is closed yet.
    asked = await stack.client.post(
        f"/hendelser/{incident_id}/avslutt",
        data={"summary": "Fulgt opp med samtaler; saken er anmeldt."},
        headers=cookies,
    )
    assert asked.status_code == 200 and 'data-testid="confirm-close"' in asked.text
    assert 'data-testid="open-measure"' in asked.text and 'data-testid="unmet-duty"' in asked.text
    assert (await stack.timeline(incident_id))["incident"]["status"] == "open"
    closed = await stack.client.post(
        f"/hendelser/{incident_id}/avslutt",
        data={"summary": "Fulgt opp med samtaler; saken er anmeldt.", "bekreftet": "ja"},
        headers=cookies,
    )
    assert closed.status_code == 303
    state = (await stack.timeline(incident_id))["incident"]
    assert state["status"] == "closed"
    assert state["summary"] == "Fulgt opp med samtaler; saken er anmeldt."
    page = await stack.client.get(f"/hendelser/{incident_id}", headers=cookies)
    assert 'data-testid="close-incident"' not in page.text  # closed: no second close

    # Only a leader is offered it, and the API refuses anyone else anyway.
    reporter = await as_person(stack, "reporter")
    other = (await stack.report())["id"]
    own_page = await stack.client.get(f"/hendelser/{other}", headers=reporter)
    assert 'data-testid="close-incident"' not in own_page.text
    for confirmed in ("", "ja"):
        refused = await stack.client.post(
            f"/hendelser/{other}/avslutt",
            data={"summary": "Nei", "bekreftet": confirmed},
            headers=reporter,
        )
        assert refused.status_code == 403
    assert (await stack.timeline(other))["incident"]["status"] == "open"


async def test_a_leader_moves_an_incident_to_follow_up_from_the_portal(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    cookies = await as_person(stack, "leader")
    page = await stack.client.get(f"/hendelser/{incident_id}", headers=cookies)
    assert "Gå over til oppfølging" in page.text and "fase Akutt" in page.text

    moved = await stack.client.post(
        f"/hendelser/{incident_id}/fase",
        data={"phase": "oppfolging", "note": "Brukeren er flyttet; faren er over."},
        headers=cookies,
    )
    assert moved.status_code == 303 and moved.headers["location"].endswith("#fase")
    event = (await stack.timeline(incident_id))["events"][-1]
    assert event["type"] == "PhaseChanged"
    assert event["data"] == {"phase": "oppfolging", "note": "Brukeren er flyttet; faren er over."}
    page = await stack.client.get(f"/hendelser/{incident_id}", headers=cookies)
    assert "fase Oppfølging" in page.text and "Tilbake til akutt fase" in page.text
    checklist = page.text[page.text.index('id="tiltak"') :]
    assert checklist.index("<h3>Oppfølgingsfase") < checklist.index("<h3>Akuttfase")  # own first

    reporter = await as_person(stack, "reporter")
    assert (
        "change-phase"
        not in (await stack.client.get(f"/hendelser/{incident_id}", headers=reporter)).text
    )


async def test_pages_send_a_stranger_to_the_login_and_explain_a_refusal(stack: Stack) -> None:
    for path in ("/hendelser", "/meld", "/veiledning/vold-fysisk"):
        response = await stack.client.get(path)
        # To the login, which then leads straight back to the page asked for.
        back = "/logg-inn?neste=" + quote(path, safe="")
        assert response.status_code == 303 and response.headers["location"] == back, path
    forged = {"Cookie": "kriselogg_session=not-a-session"}
    assert (await stack.client.get("/hendelser", headers=forged)).status_code == 303

    incident_id = (await stack.report())["id"]
    colleague = await as_person(stack, "other_org")
    page = await stack.client.get(f"/hendelser/{incident_id}", headers=colleague)
    assert page.status_code == 404  # another organisation: not found, like a missing one
    assert "Slått" not in page.text and "text/html" in page.headers["content-type"]
    assert "Finnes ikke" in page.text and "not found" not in page.text.lower()
    # A reporter following a link to someone else's incident: a Norwegian refusal, not JSON.
    other = await stack.client.post(
        "/api/v1/incidents",
        json={**REPORT, "affected": []},
        headers=stack.auth("leader"),
    )
    refused = await stack.client.get(
        f"/hendelser/{other.json()['id']}",
        headers=await as_person(stack, "reporter"),
    )
    assert refused.status_code == 403 and "Ingen tilgang" in refused.text


async def test_the_login_returns_to_the_page_asked_for_and_never_elsewhere(stack: Stack) -> None:
    """A leader tapping the link in an alert at night logs in and lands on that incident; a
    crafted link cannot send anyone elsewhere after the login (no open redirect)."""
    stack.apps["content"].state.dev_people = [
        {
            "person_id": "p-ln",
            "name": "Lise Nord",
            "roles": ["leader"],
            "what": "",
            "org_id": "demo",
        }
    ]
    incident_id = (await stack.report())["id"]
    asked = await stack.client.get(f"/hendelser/{incident_id}")
    login = asked.headers["location"]
    page = await stack.client.get(login)
    assert page.status_code == 200, login
    assert f'value="/hendelser/{incident_id}"' in page.text, (login, page.text[-1500:])
    done = await stack.client.post(
        "/logg-inn/utvikler",
        data={
            "person_id": "p-ln",
            "neste": f"/hendelser/{incident_id}",
            **await login_form(stack.client),
        },
    )
    assert done.status_code == 303 and done.headers["location"] == f"/hendelser/{incident_id}"
    for evil in ("https://evil.example/", "//evil.example", "/\\evil.example", "/api/v1/incidents",
                 "/hendelser/../../logg-ut", "javascript:alert(1)"):  # fmt: skip
        sent = await stack.client.post(
            "/logg-inn/utvikler",
            data={"person_id": "p-ln", "neste": evil, **await login_form(stack.client)},
        )
        assert sent.headers["location"] == "/", evil


async def test_the_incident_page_says_so_when_nobody_could_be_reached(stack: Stack) -> None:
    """Issue 15: with no e-mail or SMS set up, alerts are only recorded (the log channel). The
    incident page must say nobody was reached and tell the reader to phone, not show "sendt"."""
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)  # both alerts were handled, on the log channel
    leader = await as_person(stack, "leader")
    page = await stack.client.get(f"/hendelser/{incident_id}", headers=leader)
    assert page.status_code == 200
    assert 'data-testid="nobody-reached"' in page.text and "Ring nærmeste leder" in page.text
    assert "Ikke sendt – ingen kanal satt opp" in page.text
    assert "· sendt" not in page.text
    # Each attempt is listed with its outcome, and none of them reads "sendt".
    assert page.text.count('data-outcome="not_sent"') == 2
    assert 'data-outcome="delivered"' not in page.text
    api = await stack.client.get(
        "/api/v1/alerts", params={"incident_id": incident_id}, headers=stack.auth()
    )
    assert {(a["delivery"], a["attempt_log"][0]["outcome"]) for a in api.json()
            if a["kind"] == "alert"} == {("no_channel", "not_sent")}  # fmt: skip


async def test_the_admin_page_warns_while_no_channel_can_reach_anyone(
    nats_url: str, tmp_path: Path
) -> None:
    """Issue 15: `kriselogg up` as shipped records alerts without sending them; the admin who
    sets up the directory is told, and told what to set. With SMTP set up, no warning."""
    for smtp, warned in ((None, True), ("127.0.0.1", False)):
        async with running_stack(nats_url, tmp_path / str(warned), smtp_host=smtp) as stack:
            admin = await as_person(stack, "admin")
            page = await stack.client.get("/admin/katalog", headers=admin)
            assert page.status_code == 200
            assert ('data-testid="no-channel"' in page.text) is warned, smtp
            channels = await stack.client.get("/api/v1/alerts/channels", headers=stack.auth())
            assert channels.json()["people_reachable"] is not warned
