"""Portal forms over HTTP (no browser): what a leader does after the acute phase."""

from __future__ import annotations

from tests.support import Stack


async def test_a_leader_closes_an_incident_from_the_portal(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    cookies = {"Cookie": f"kriselogg_token={stack.tokens['leader']}"}
    page = await stack.client.get(f"/hendelser/{incident_id}", headers=cookies)
    assert page.status_code == 200 and 'data-testid="close-incident"' in page.text

    closed = await stack.client.post(
        f"/hendelser/{incident_id}/avslutt",
        data={"summary": "Fulgt opp med samtaler; saken er anmeldt."},
        headers=cookies,
    )
    assert closed.status_code == 303
    state = (await stack.timeline(incident_id))["incident"]
    assert state["status"] == "closed"
    assert state["summary"] == "Fulgt opp med samtaler; saken er anmeldt."
    page = await stack.client.get(f"/hendelser/{incident_id}", headers=cookies)
    assert 'data-testid="close-incident"' not in page.text  # closed: no second close

    # Only a leader is offered it, and the API refuses anyone else anyway.
    reporter = {"Cookie": f"kriselogg_token={stack.tokens['reporter']}"}
    other = (await stack.report())["id"]
    own_page = await stack.client.get(f"/hendelser/{other}", headers=reporter)
    assert 'data-testid="close-incident"' not in own_page.text
    refused = await stack.client.post(
        f"/hendelser/{other}/avslutt", data={"summary": "Nei"}, headers=reporter
    )
    assert refused.status_code == 403


async def test_a_leader_moves_an_incident_to_follow_up_from_the_portal(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    cookies = {"Cookie": f"kriselogg_token={stack.tokens['leader']}"}
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

    reporter = {"Cookie": f"kriselogg_token={stack.tokens['reporter']}"}
    assert (
        "change-phase"
        not in (await stack.client.get(f"/hendelser/{incident_id}", headers=reporter)).text
    )


async def test_pages_send_a_stranger_to_the_login_and_explain_a_refusal(stack: Stack) -> None:
    for path in ("/hendelser", "/meld", "/veiledning/vold-fysisk"):
        response = await stack.client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/logg-inn", path
    forged = {"Cookie": "kriselogg_token=not-a-token"}
    assert (await stack.client.get("/hendelser", headers=forged)).status_code == 303

    incident_id = (await stack.report())["id"]
    colleague = {"Cookie": f"kriselogg_token={stack.tokens['other_org']}"}
    page = await stack.client.get(f"/hendelser/{incident_id}", headers=colleague)
    assert page.status_code == 404  # another organisation: not found, like a missing one
    assert "Slått" not in page.text and "text/html" in page.headers["content-type"]
