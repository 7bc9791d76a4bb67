"""The guidance API a leader's phone calls, and each organisation's local additions."""

from __future__ import annotations

from tests.content.conftest import ContentClient


async def test_themes_carry_the_content_version(content: ContentClient) -> None:
    response = await content.client.get("/api/v1/guidance/themes", headers=content.auth())
    assert response.status_code == 200
    body = response.json()
    assert body["content_version"] == response.headers["Content-Version"]
    subthemes = {s["id"] for t in body["themes"] for s in t["subthemes"]}
    assert {"vold-fysisk", "brann-arbeidsplassen", "ansatt-savnet"} <= subthemes
    assert [g["title"] for g in body["resources"]] == ["Førstehjelp", "Lage kriseplaner", "Prosess"]
    assert (await content.client.get("/api/v1/guidance/themes")).status_code == 401


async def test_a_subtheme_lists_phases_and_measures_in_priority_order(
    content: ContentClient,
) -> None:
    response = await content.client.get(
        "/api/v1/guidance/subthemes/vold-fysisk", headers=content.auth()
    )
    assert response.status_code == 200
    body = response.json()
    assert body["content_version"] == response.headers["Content-Version"]
    assert body["theme"] == {"id": "trusler", "title": "Trusselsituasjoner"}
    assert [p["id"] for p in body["phases"]] == ["forebyggende", "akutt", "oppfolging"]
    acute = body["phases"][1]["measures"]
    assert [m["priority"] for m in acute] == list(range(1, len(acute) + 1))
    assert acute[0]["id"] == "trekk-deg-unna"  # safety first
    first = acute[0]
    assert first["responsible"]["title"] and first["tasks"]
    assert {"id": "politi", "title": "Politiet", "contact": "Nødnummer 112, ellers 02800"} in (
        first["support"]["external"]
    )
    # aml § 5-2 (1): death or serious injury is notified straks, so the notice is acute.
    notice = {m["id"]: m for m in acute}["varsle-arbeidstilsynet-politiet"]
    assert notice["responsible"]["id"] == "naermeste-leder"
    law = notice["law"][0]
    assert law["id"] == "aml-5-2" and law["title"] == "aml § 5-2"
    assert law["citation"] == "arbeidsmiljøloven § 5-2 første ledd første punktum"
    assert law["url"].startswith("https://lovdata.no/") and "Arbeidstilsynet" in law["summary"]
    follow_up = body["phases"][2]["measures"]
    assert all(x["id"] != "aml-5-2" for m in follow_up for x in m["law"])
    assert [a["number"] for a in body["aids"]] == list(range(1, len(body["aids"]) + 1))
    assert body["local"] == []


async def test_unknown_ids_and_bad_queries_get_a_clear_4xx(content: ContentClient) -> None:
    missing = await content.client.get(
        "/api/v1/guidance/subthemes/finnes-ikke", headers=content.auth()
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert "finnes-ikke" in missing.json()["detail"]
    no_query = await content.client.get("/api/v1/guidance/search", headers=content.auth())
    assert no_query.status_code == 422
    assert [e["field"] for e in no_query.json()["errors"]] == ["q"]
    article = await content.client.get(
        "/api/v1/guidance/resources/finnes-ikke", headers=content.auth()
    )
    assert article.status_code == 404


async def test_search_over_http(content: ContentClient) -> None:
    response = await content.client.get(
        "/api/v1/guidance/search", params={"q": "truslene"}, headers=content.auth()
    )
    assert response.status_code == 200
    body = response.json()
    assert body["content_version"] == response.headers["Content-Version"]
    assert body["subthemes"][0]["id"] in {"trusler-personlig", "trusler-digitale"}
    assert body["measures"] and all("subtheme" in m and "phase" in m for m in body["measures"])


async def test_resource_article(content: ContentClient) -> None:
    response = await content.client.get(
        "/api/v1/guidance/resources/den-nodvendige-samtalen", headers=content.auth()
    )
    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "Den nødvendige samtalen"
    assert body["group"]["title"] == "Prosess" and body["sections"]


CONTACT = {
    "kind": "contact",
    "title": "Vår kontakt i politiet",
    "contact": {"name": "Politikontakt Tromsø sentrum", "phone": "+47 12 34 56 78"},
}


async def test_local_additions_stay_inside_their_organisation(content: ContentClient) -> None:
    url = "/api/v1/guidance/subthemes/vold-fysisk"
    added = await content.client.post(f"{url}/local", json=CONTACT, headers=content.auth("admin"))
    assert added.status_code == 201, added.text
    addition = added.json()
    assert addition["created_by"] == "p-admin"

    mine = (await content.client.get(url, headers=content.auth("leader"))).json()
    assert [a["title"] for a in mine["local"]] == ["Vår kontakt i politiet"]
    assert mine["local"][0]["contact"]["phone"] == "+47 12 34 56 78"

    # Another organisation (with its own admin) neither sees nor can remove it.
    theirs = (await content.client.get(url, headers=content.auth("other_org"))).json()
    assert theirs["local"] == []
    gone = await content.client.delete(
        f"/api/v1/guidance/local/{addition['id']}", headers=content.auth("other_org")
    )
    assert gone.status_code == 404
    assert len((await content.client.get(url, headers=content.auth())).json()["local"]) == 1

    removed = await content.client.delete(
        f"/api/v1/guidance/local/{addition['id']}", headers=content.auth("admin")
    )
    assert removed.status_code == 204
    assert (await content.client.get(url, headers=content.auth())).json()["local"] == []


async def test_local_additions_need_an_admin_and_a_complete_body(content: ContentClient) -> None:
    url = "/api/v1/guidance/subthemes/vold-fysisk/local"
    leader = await content.client.post(url, json=CONTACT, headers=content.auth("leader"))
    assert leader.status_code == 403
    incomplete = await content.client.post(
        url, json={"kind": "contact", "title": "Uten navn"}, headers=content.auth("admin")
    )
    assert incomplete.status_code == 422
    unknown = await content.client.post(
        "/api/v1/guidance/subthemes/finnes-ikke/local", json=CONTACT, headers=content.auth("admin")
    )
    assert unknown.status_code == 404
