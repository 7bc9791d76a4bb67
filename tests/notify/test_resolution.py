"""Who is alerted about an incident: leaders up the tree, safety reps, HR."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.notify.domain import Directory, Person, Resolution, Resolver

DAY = date(2026, 7, 10)
SUMMER = [{"from": "2026-07-01", "to": "2026-07-21"}]
AWAY = "absent 2026-07-01 to 2026-07-21"


def body() -> dict[str, Any]:
    """Four levels: top -> division -> department -> two teams, with deputies and reps."""
    return {
        "org": {"id": "o", "name": "Org", "main_safety_rep": "p-hvo", "hr": ["p-hr1", "p-hr2"]},
        "units": [
            {
                "id": "top",
                "name": "Direktør",
                "leader": "p-dir",
                "deputies": ["p-dir2"],
                "safety_rep": "p-vo-top",
            },
            {
                "id": "div",
                "name": "Divisjon",
                "parent": "top",
                "leader": "p-div",
                "deputies": ["p-div2"],
            },
            {
                "id": "dept",
                "name": "Avdeling",
                "parent": "div",
                "leader": "p-dept",
                "deputies": ["p-dept2", "p-dept3"],
                "safety_rep": "p-vo-dept",
            },
            {
                "id": "team",
                "name": "Team",
                "parent": "dept",
                "leader": "p-team",
                "deputies": ["p-team2"],
            },
            {"id": "team-b", "name": "Team B", "parent": "dept", "leader": "p-tb"},
        ],
        "people": [
            {"id": "p-dir", "name": "Direktør", "unit": "top"},
            {"id": "p-dir2", "name": "Assisterende direktør", "unit": "top"},
            {"id": "p-vo-top", "name": "Verneombud topp", "unit": "top"},
            {"id": "p-div", "name": "Divisjonsleder", "unit": "div"},
            {"id": "p-div2", "name": "Nestleder divisjon", "unit": "div"},
            {"id": "p-dept", "name": "Avdelingsleder", "unit": "dept"},
            {"id": "p-dept2", "name": "Nestleder 1", "unit": "dept"},
            {"id": "p-dept3", "name": "Nestleder 2", "unit": "dept"},
            {"id": "p-vo-dept", "name": "Verneombud avdeling", "unit": "dept"},
            {"id": "p-team", "name": "Teamleder", "unit": "team"},
            {"id": "p-team2", "name": "Nestleder team", "unit": "team"},
            {"id": "p-tb", "name": "Teamleder B", "unit": "team-b"},
            {"id": "p-emp", "name": "Ansatt", "unit": "team"},
            {"id": "p-visitor", "name": "Uten enhet"},
            {"id": "p-hvo", "name": "Hovedverneombud"},
            {"id": "p-hr1", "name": "Personal 1"},
            {"id": "p-hr2", "name": "Personal 2"},
        ],
    }


def resolve(
    unit_id: str,
    affected: list[str] | None = None,
    absent: tuple[str, ...] = (),
    day: date = DAY,
) -> Resolution:
    data = body()
    for person in data["people"]:
        if person["id"] in absent:
            person["absences"] = SUMMER
    directory = Directory.model_validate(data)
    assert directory.problems() == []
    return Resolver(directory).resolve(unit_id, day, affected)


def chain(res: Resolution) -> list[tuple[str, str, str | None]]:
    return [(r.person.id, r.role, r.unit_id) for r in res.leaders]


def skipped(res: Resolution) -> list[tuple[str, str, str | None, str]]:
    return [(s.person.id, s.role, s.unit_id, s.reason) for s in res.skipped]


def test_the_chain_runs_leader_then_deputies_then_the_parent_up_to_the_top() -> None:
    res = resolve("team", ["p-emp"])
    assert chain(res) == [
        ("p-team", "nearest_leader", "team"),
        ("p-team2", "deputy", "team"),
        ("p-dept", "leader", "dept"),
        ("p-dept2", "deputy", "dept"),
        ("p-dept3", "deputy", "dept"),
        ("p-div", "leader", "div"),
        ("p-div2", "deputy", "div"),
        ("p-dir", "leader", "top"),
        ("p-dir2", "deputy", "top"),
    ]
    assert res.skipped == []


def test_nearest_leader_is_the_affected_employees_unit_else_where_it_happened() -> None:
    # It happened in team B, but the injured employee belongs to the other team.
    assert chain(resolve("team-b", ["p-emp"]))[0] == ("p-team", "nearest_leader", "team")
    # Nobody affected, or only someone without a unit: the unit where it happened.
    assert chain(resolve("team-b"))[0] == ("p-tb", "nearest_leader", "team-b")
    assert chain(resolve("team-b", ["p-visitor"]))[0] == ("p-tb", "nearest_leader", "team-b")
    assert chain(resolve("team-b", ["p-unknown"]))[0] == ("p-tb", "nearest_leader", "team-b")


def test_an_absent_leader_is_skipped_with_the_reason_and_the_deputy_comes_next() -> None:
    res = resolve("team", ["p-emp"], absent=("p-team", "p-dept2"))
    assert chain(res)[:4] == [
        ("p-team2", "deputy", "team"),
        ("p-dept", "leader", "dept"),
        ("p-dept3", "deputy", "dept"),
        ("p-div", "leader", "div"),
    ]
    assert skipped(res) == [
        ("p-team", "nearest_leader", "team", AWAY),
        ("p-dept2", "deputy", "dept", AWAY),
    ]


def test_absence_days_are_inclusive() -> None:
    assert chain(resolve("team", absent=("p-team",), day=date(2026, 7, 21)))[0][0] == "p-team2"
    assert chain(resolve("team", absent=("p-team",), day=date(2026, 7, 1)))[0][0] == "p-team2"
    assert chain(resolve("team", absent=("p-team",), day=date(2026, 7, 22)))[0][0] == "p-team"
    assert chain(resolve("team", absent=("p-team",), day=date(2026, 6, 30)))[0][0] == "p-team"


def test_when_the_whole_team_is_away_the_parent_units_leader_is_nearest_in_line() -> None:
    res = resolve("team", ["p-emp"], absent=("p-team", "p-team2", "p-dept", "p-dept2", "p-dept3"))
    assert chain(res)[0] == ("p-div", "leader", "div")
    assert [s[0] for s in skipped(res)] == ["p-team", "p-team2", "p-dept", "p-dept2", "p-dept3"]


def test_an_affected_leader_is_never_alerted_about_themselves() -> None:
    res = resolve("dept", ["p-dept"])
    ids = [r.person.id for r in res.leaders]
    assert ids[:3] == ["p-dept2", "p-dept3", "p-div"]
    assert "p-dept" not in ids
    assert "p-dept" not in [s.person.id for s in res.skipped]
    # Also when they are further up the chain of someone else who was affected.
    both = [r.person.id for r in resolve("team", ["p-emp", "p-dept"]).leaders]
    assert both == ["p-team", "p-team2", "p-dept2", "p-dept3", "p-div", "p-div2", "p-dir", "p-dir2"]


def test_safety_rep_is_the_units_own_else_the_nearest_up_the_tree() -> None:
    # The teams have none; their department has one.
    rep = resolve("team", ["p-emp"]).safety_rep
    assert rep is not None and (rep.person.id, rep.role, rep.unit_id) == (
        "p-vo-dept",
        "safety_rep",
        "dept",
    )
    # The division has none of its own: the top's.
    top = resolve("div").safety_rep
    assert top is not None and (top.person.id, top.unit_id) == ("p-vo-top", "top")


def test_an_absent_safety_rep_is_skipped_and_the_next_one_up_is_chosen() -> None:
    res = resolve("team", ["p-emp"], absent=("p-vo-dept",))
    assert res.safety_rep is not None and res.safety_rep.person.id == "p-vo-top"
    assert skipped(res) == [("p-vo-dept", "safety_rep", "dept", AWAY)]
    # Nobody left up the tree: no safety rep, both named as skipped.
    none = resolve("team", ["p-emp"], absent=("p-vo-dept", "p-vo-top"))
    assert none.safety_rep is None
    assert [s[0] for s in skipped(none)] == ["p-vo-dept", "p-vo-top"]


def test_an_affected_safety_rep_is_not_their_own_safety_rep() -> None:
    res = resolve("dept", ["p-vo-dept"])
    assert res.safety_rep is not None and res.safety_rep.person.id == "p-vo-top"


def test_main_safety_rep_and_hr_are_resolved() -> None:
    res = resolve("team", ["p-emp"])
    assert res.main_safety_rep is not None
    assert (res.main_safety_rep.person.id, res.main_safety_rep.role) == ("p-hvo", "main_safety_rep")
    assert res.main_safety_rep.unit_id is None
    assert [(r.person.id, r.role) for r in res.hr] == [("p-hr1", "hr"), ("p-hr2", "hr")]


def test_absent_main_safety_rep_and_hr_are_skipped_with_the_reason() -> None:
    res = resolve("team", ["p-emp"], absent=("p-hvo", "p-hr1"))
    assert res.main_safety_rep is None
    assert [r.person.id for r in res.hr] == ["p-hr2"]
    assert skipped(res) == [
        ("p-hvo", "main_safety_rep", None, AWAY),
        ("p-hr1", "hr", None, AWAY),
    ]


def test_no_main_safety_rep_configured_is_none_without_a_skip() -> None:
    data = body()
    data["org"]["main_safety_rep"] = None
    data["org"]["hr"] = []
    res = Resolver(Directory.model_validate(data)).resolve("team", DAY)
    assert res.main_safety_rep is None and res.hr == [] and res.skipped == []


@pytest.mark.parametrize(
    ("contact", "expected"),
    [
        (
            {"email": "a@x.no", "mobile": "+4790000000", "webhook": "https://x.no/h"},
            ["email", "sms", "webhook"],
        ),
        ({"email": "a@x.no", "mobile": "+4790000000"}, ["email", "sms"]),
        ({"mobile": "+4790000000", "webhook": "https://x.no/h"}, ["sms", "webhook"]),
        ({"email": "", "webhook": "https://x.no/h"}, ["webhook"]),
        ({}, ["log"]),
        (
            {
                "email": "a@x.no",
                "mobile": "+4790000000",
                "webhook": "https://x.no/h",
                "channels": ["webhook", "sms", "email"],
            },
            ["webhook", "sms", "email"],
        ),
        # Configured channels the person cannot be reached on drop out.
        ({"email": "a@x.no", "channels": ["sms", "email"]}, ["email"]),
        # Only channels the person configured, even when another contact point exists.
        ({"email": "a@x.no", "mobile": "+4790000000", "channels": ["sms"]}, ["sms"]),
        ({"email": "a@x.no", "channels": ["sms"]}, ["log"]),
    ],
)
def test_contact_order(contact: dict[str, Any], expected: list[str]) -> None:
    person = Person.model_validate({"id": "p", "name": "P", **contact})
    assert person.contact_order() == expected


def test_every_problem_is_named_at_once() -> None:
    data: dict[str, Any] = {
        "org": {"id": "o", "name": "O", "main_safety_rep": "p-1", "hr": ["p-2"]},
        "units": [
            {"id": "top", "name": "Topp", "leader": "p-1"},
            {"id": "div", "name": "Divisjon", "parent": "top", "leader": "p-ghost"},
            {"id": "dept", "name": "Avdeling", "parent": "div", "leader": "p-2"},
            {"id": "team", "name": "Team", "parent": "dept", "leader": "p-2"},
            {"id": "x", "name": "X", "parent": "y"},
            {"id": "y", "name": "Y", "parent": "x"},
            {"id": "team", "name": "Team igjen", "parent": "dept"},
        ],
        "people": [
            {"id": "p-1", "name": "En", "email": "en@x.no", "channels": ["email", "sms"]},
            {"id": "p-2", "name": "To", "mobile": "+4790000000", "channels": ["webhook"]},
            {"id": "p-1", "name": "En igjen"},
        ],
        "routine": [
            {"id": "r", "title": "Samtale", "after_days": 7},
            {"id": "r", "title": "Samtale igjen", "after_months": 1},
        ],
    }
    assert sorted(Directory.model_validate(data).problems()) == sorted(
        [
            "to enheter har id-en «team»",
            "to personer har id-en «p-1»",
            "to rutinepunkter har id-en «r»",
            "enheten «div» har en ukjent leder «p-ghost»",
            "personen «p-1» har kanalen sms, men ikke mobilnummer (mobile)",
            "personen «p-2» har kanalen webhook, men ikke webhook-adresse (webhook)",
            "enhetene går i ring: x → y → x",
        ]
    )
