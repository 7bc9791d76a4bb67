"""The directory over HTTP: all-or-nothing replacement, and who would be alerted now."""

from __future__ import annotations

from typing import Any

from services.cli import demo_directory
from tests.support import Stack


async def test_an_invalid_directory_names_every_problem_and_changes_nothing(
    stack: Stack,
) -> None:
    body: dict[str, Any] = demo_directory()
    body["units"][3]["leader"] = "p-ukjent"  # u-nord led by nobody we know
    body["units"][0]["parent"] = "u-nord"  # a cycle through the top
    body["people"].append(dict(body["people"][0]))  # a duplicate id
    response = await stack.client.put("/api/v1/directory", json=body, headers=stack.auth("admin"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problems = response.json()["problems"]
    assert "enheten «u-nord» har en ukjent leder «p-ukjent»" in problems
    assert "to personer har id-en «p-kd»" in problems
    assert any(p.startswith("enhetene går i ring") for p in problems)

    # Nothing was half-applied: the demo directory still answers.
    responders = await stack.client.get(
        "/api/v1/directory/units/u-nord/responders", headers=stack.auth()
    )
    assert responders.json()["leaders"][0]["person_id"] == "p-ln"
    leader_put = await stack.client.put(
        "/api/v1/directory", json=demo_directory(), headers=stack.auth("leader")
    )
    assert leader_put.status_code == 403


async def test_responders_show_the_order_and_why_absent_people_are_skipped(stack: Stack) -> None:
    body = demo_directory()
    for person in body["people"]:
        if person["id"] in ("p-ln", "p-vo"):
            person["absences"] = [{"from": "2000-01-01", "to": "2999-12-31"}]
    put = await stack.client.put("/api/v1/directory", json=body, headers=stack.auth("admin"))
    assert put.status_code == 200, put.text
    response = await stack.client.get(
        "/api/v1/directory/units/u-nord/responders", headers=stack.auth()
    )
    assert response.status_code == 200
    got = response.json()
    assert [(r["person_id"], r["role"]) for r in got["leaders"]] == [
        ("p-ln2", "deputy"),
        ("p-hl", "leader"),
        ("p-ks", "leader"),
        ("p-ks2", "deputy"),
        ("p-kd", "leader"),
    ]
    skipped = {s["person_id"]: s["reason"] for s in got["skipped"]}
    assert skipped["p-ln"].startswith("absent 2000-01-01")
    assert skipped["p-vo"].startswith("absent")
    assert got["safety_rep"]["person_id"] == "p-vo-h"  # the next one up the tree
    assert got["main_safety_rep"]["person_id"] == "p-hvo"
    assert [h["person_id"] for h in got["hr"]] == ["p-hr"]
    other = await stack.client.get(
        "/api/v1/directory/units/u-nord/responders", headers=stack.auth("other_org")
    )
    assert other.status_code == 404
