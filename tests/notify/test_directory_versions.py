"""The directory's versions: each one applied is kept with who applied it and when, a candidate is
previewed against the one in use without applying it, and an older one can be brought back."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest

from services.cli import demo_directory
from services.notify.domain import Directory
from services.notify.domain.versions import check, diff
from services.notify.store import KEEP_VERSIONS, DirectoryChanged, NotifyStore
from shared.auth import Principal, issue_token, signing_key
from shared.clock import ManualClock
from tests.support import Stack

T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
ADMIN = Principal("p-admin", "demo", frozenset({"admin"}), "Astrid Admin")


def changed_demo() -> dict[str, Any]:
    """The demo with a unit added, a person removed, a leader's phone and a name changed."""
    body = demo_directory()
    body["units"].append({"id": "u-ny", "name": "Ny enhet", "parent": "u-top", "leader": "p-os"})
    body["people"] = [p for p in body["people"] if p["id"] != "p-ansatt"]
    for person in body["people"]:
        if person["id"] == "p-ln":
            person["mobile"] = "+4790000099"
        if person["id"] == "p-hl":
            person["name"] = "Hanne Leder-Hansen"
    return body


# --- the store --------------------------------------------------------------------------------


def test_every_applied_directory_is_kept_with_who_and_when(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store = NotifyStore(tmp_path / "n.sqlite", clock)
    demo = Directory.model_validate(demo_directory())
    assert store.directory_version("demo") == 0
    assert store.put_directory(demo) == 1  # the demo seed: nobody
    clock.advance(timedelta(hours=1))
    changed = Directory.model_validate(changed_demo())
    assert store.put_directory(changed, by=ADMIN, base=1) == 2
    # The same directory again (the seed at the next start) is no new version.
    assert store.put_directory(changed) == 2

    versions = store.directory_versions("demo")
    assert [(v.version, v.applied_by, v.applied_by_name) for v in versions] == [
        (2, "p-admin", "Astrid Admin"),
        (1, None, None),
    ]
    assert versions[0].applied_at == T0 + timedelta(hours=1)
    assert (versions[0].units, versions[0].people) == (6, 14)
    assert store.directory_at("demo", 1) == demo
    assert store.directory("demo") == changed

    with pytest.raises(DirectoryChanged) as refused:
        store.put_directory(demo, by=ADMIN, base=1)
    assert refused.value.current == 2
    assert store.directory("demo") == changed  # nothing applied

    assert store.put_directory(demo, by=ADMIN, base=2, restored_from=1) == 3
    assert store.directory_versions("demo")[0].restored_from == 1
    assert store.directory("demo") == demo


def test_only_the_last_versions_are_kept(tmp_path: Path) -> None:
    store = NotifyStore(tmp_path / "n.sqlite", ManualClock(T0))
    body = demo_directory()
    for n in range(KEEP_VERSIONS + 3):
        body["org"]["name"] = f"Demo kommune {n}"
        store.put_directory(Directory.model_validate(body), by=ADMIN)
    kept = [v.version for v in store.directory_versions("demo")]
    assert kept == list(range(KEEP_VERSIONS + 3, 3, -1))
    assert store.directory_at("demo", 3) is None


def test_a_store_from_before_versions_keeps_its_directory_as_version_one(tmp_path: Path) -> None:
    path = tmp_path / "n.sqlite"
    body = Directory.model_validate(demo_directory()).model_dump_json(by_alias=True)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE directories (org_id TEXT PRIMARY KEY, body TEXT NOT NULL,"
            " updated_at TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO directories VALUES ('demo', ?, '2026-01-05T08:00:00.000000Z')", (body,)
        )
        db.execute("PRAGMA user_version = 1")
    db.close()
    store = NotifyStore(path, ManualClock(T0))
    (only,) = store.directory_versions("demo")
    assert (only.version, only.applied_by) == (1, None)
    assert only.applied_at == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    store.close()
    # Opened again, nothing is migrated twice.
    assert [v.version for v in NotifyStore(path, ManualClock(T0)).directory_versions("demo")] == [1]


# --- the preview: problems and the diff, pure -------------------------------------------------


def test_the_diff_names_units_and_people_and_never_shows_contact_points() -> None:
    old = Directory.model_validate(demo_directory())
    new, issues = check(changed_demo(), "demo")
    assert new is not None and issues == []
    got = diff(old, new)
    assert got["units"]["added"] == [{"id": "u-ny", "name": "Ny enhet"}]
    assert got["units"]["removed"] == [] and got["units"]["changed"] == []
    assert got["people"]["removed"] == [{"id": "p-ansatt", "name": "Ali Ansatt"}]
    changed = {p["id"]: [c["text"] for c in p["changes"]] for p in got["people"]["changed"]}
    assert changed == {
        "p-hl": ["navn: «Hanne Leder» → «Hanne Leder-Hansen»"],
        "p-ln": ["telefon endret"],
        "p-os": ["ny rolle: leder for «Ny enhet»"],
    }
    assert "+4790000099" not in str(got) and "+4790000001" not in str(got)
    assert got["unchanged"] is False
    assert diff(old, old)["unchanged"] is True


def test_a_unit_change_says_who_by_name() -> None:
    old = Directory.model_validate(demo_directory())
    body = demo_directory()
    body["units"][3]["leader"] = "p-ln2"
    body["units"][3]["deputies"] = []
    got = diff(old, Directory.model_validate(body))
    (nord,) = got["units"]["changed"]
    assert [c["text"] for c in nord["changes"]] == [
        "leder: «Lise Nord» (p-ln) → «Lars Nestleder» (p-ln2)",
        "stedfortredere: «Lars Nestleder» (p-ln2) → ingen",
    ]
    roles = {p["id"]: [c["text"] for c in p["changes"]] for p in got["people"]["changed"]}
    assert roles["p-ln"] == ["ikke lenger leder for «Hjemmetjenesten nord»"]


def test_problems_are_norwegian_and_say_where() -> None:
    body = demo_directory()
    body["people"][3]["unit"] = "u-ukjent"
    del body["people"][5]["name"]
    body["people"][6]["channels"] = ["fax"]
    directory, issues = check(body, "demo")
    assert directory is None  # not a directory in form: the schema errors only
    assert [(i.loc, i.message) for i in issues] == [
        (("people", 5, "name"), "«name» mangler"),
        (
            ("people", 6, "channels", 0),
            "«channels»: ukjent verdi «fax» (gyldige: email, sms, webhook)",
        ),
    ]
    del body["people"][6]["channels"]
    body["people"][5]["name"] = "Lars"
    directory, issues = check(body, "other")
    assert directory is not None
    assert [(i.loc, i.message) for i in issues] == [
        (("org", "id"), "katalogen er for virksomheten «demo», men du er logget inn for «other»"),
        (("people", 3, "unit"), "personen «p-hl» har en ukjent enhet «u-ukjent»"),
    ]


# --- over HTTP --------------------------------------------------------------------------------


def safety_rep_token(stack: Stack) -> dict[str, str]:
    token = issue_token(
        signing_key(stack.settings),
        org_id="demo",
        person_id="p-vo",
        name="Vera Verneombud",
        roles=["safety_rep"],
        clock=stack.clock,
    )
    return {"Authorization": f"Bearer {token}"}


async def responders_of(stack: Stack, unit: str) -> int:
    response = await stack.client.get(
        f"/api/v1/directory/units/{unit}/responders", headers=stack.auth()
    )
    return response.status_code


async def test_preview_applies_nothing_and_apply_needs_the_version_it_saw(stack: Stack) -> None:
    admin = stack.auth("admin")
    preview = await stack.client.post(
        "/api/v1/directory/preview", json=changed_demo(), headers=admin
    )
    assert preview.status_code == 200, preview.text
    got = preview.json()
    assert got["valid"] is True and got["issues"] == [] and got["base"] == 1
    assert got["diff"]["units"]["added"] == [{"id": "u-ny", "name": "Ny enhet"}]
    assert got["diff"]["people"]["removed"] == [{"id": "p-ansatt", "name": "Ali Ansatt"}]
    assert await responders_of(stack, "u-ny") == 404  # not applied
    not_one = await stack.client.post("/api/v1/directory/preview", json=[1], headers=admin)
    assert not_one.json()["valid"] is False and not_one.json()["diff"] is None
    assert not_one.json()["issues"] == [
        {"loc": [], "message": "katalogen må være en samling felter: org, units og people"}
    ]

    # Another admin applies something meanwhile: the preview's base is stale.
    other = demo_directory()
    other["org"]["name"] = "Demo kommune (ny)"
    first = await stack.client.put("/api/v1/directory", json=other, headers=admin)
    assert first.status_code == 200 and first.json()["version"] == 2
    stale = await stack.client.put(
        "/api/v1/directory", json=changed_demo(), params={"base": 1}, headers=admin
    )
    assert stale.status_code == 409
    assert stale.json()["title"] == "Katalogen er endret" and stale.json()["current"] == 2
    assert await responders_of(stack, "u-ny") == 404

    applied = await stack.client.put(
        "/api/v1/directory", json=changed_demo(), params={"base": 2}, headers=admin
    )
    assert applied.status_code == 200
    assert applied.json() == {"org": "demo", "units": 6, "people": 14, "version": 3}
    assert await responders_of(stack, "u-ny") == 200

    listed = (await stack.client.get("/api/v1/directory/versions", headers=admin)).json()
    assert listed["current"] == 3
    assert [(v["version"], v["applied_by"]) for v in listed["versions"]] == [
        (3, "p-admin"),
        (2, "p-admin"),
        (1, None),
    ]


async def shared_units(stack: Stack) -> set[str]:
    """The units of the demo tree in the bus's directory bucket, as the other services see it."""
    assert stack.settings.nats_url is not None
    nc = await nats.connect(stack.settings.nats_url)
    try:
        kv = await nc.jetstream().key_value(f"{stack.settings.bus_namespace}-directory")
        entry = await kv.get("demo")
    finally:
        await nc.close()
    assert entry.value is not None
    return {u["id"] for u in json.loads(entry.value)["units"]}


async def test_a_roll_back_applies_the_old_version_as_a_new_one(stack: Stack) -> None:
    admin = stack.auth("admin")
    put = await stack.client.put("/api/v1/directory", json=changed_demo(), headers=admin)
    assert put.json()["version"] == 2
    assert await responders_of(stack, "u-ny") == 200
    assert "u-ny" in await shared_units(stack)

    stale = await stack.client.post(
        "/api/v1/directory/versions/1/restore", params={"base": 1}, headers=admin
    )
    assert stale.status_code == 409
    restored = await stack.client.post(
        "/api/v1/directory/versions/1/restore", params={"base": 2}, headers=admin
    )
    assert restored.status_code == 200, restored.text
    assert restored.json()["version"] == 3
    assert await responders_of(stack, "u-ny") == 404  # the unit of version 2 is gone again
    # Shared on the bus like a PUT: the tree the other services check access by is version 1's.
    assert "u-ny" not in await shared_units(stack)
    listed = (await stack.client.get("/api/v1/directory/versions", headers=admin)).json()
    assert listed["versions"][0]["restored_from"] == 1
    one = (await stack.client.get("/api/v1/directory/versions/1", headers=admin)).json()
    assert one["directory"]["org"]["id"] == "demo"
    missing = await stack.client.post("/api/v1/directory/versions/99/restore", headers=admin)
    assert missing.status_code == 404 and missing.json()["title"] == "Versjonen finnes ikke"


async def test_only_an_admin_may_see_or_change_the_directory(stack: Stack) -> None:
    for headers in (stack.auth("leader"), safety_rep_token(stack)):
        calls = (
            stack.client.post("/api/v1/directory/preview", json=changed_demo(), headers=headers),
            stack.client.get("/api/v1/directory/versions", headers=headers),
            stack.client.get("/api/v1/directory/versions/1", headers=headers),
            stack.client.post("/api/v1/directory/versions/1/restore", headers=headers),
            stack.client.put("/api/v1/directory", json=changed_demo(), headers=headers),
        )
        for call in calls:
            response = await call
            assert response.status_code == 403
            assert response.json()["detail"] == "Bare en administrator kan se og endre katalogen."
    assert await responders_of(stack, "u-ny") == 404
