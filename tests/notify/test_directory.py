from __future__ import annotations

from datetime import date
from typing import Any

from services.cli import demo_directory
from services.notify.domain import Directory, Resolver


def test_demo_directory_is_valid() -> None:
    assert Directory.model_validate(demo_directory()).problems() == []


def test_every_problem_is_named_at_once() -> None:
    body: dict[str, Any] = {
        "org": {"id": "o", "name": "O", "main_safety_rep": "p-ghost", "hr": []},
        "units": [
            {"id": "a", "name": "A", "parent": None, "leader": "p-1"},
            {"id": "b", "name": "B", "parent": "c", "leader": "p-nobody"},
            {"id": "c", "name": "C", "parent": "b"},
            {"id": "a", "name": "A again", "parent": None},
            {"id": "d", "name": "D", "parent": "zz"},
        ],
        "people": [{"id": "p-1", "name": "En"}, {"id": "p-1", "name": "To"}],
    }
    problems = Directory.model_validate(body).problems()
    assert "to enheter har id-en «a»" in problems
    assert "to personer har id-en «p-1»" in problems
    assert "hovedverneombudet er en ukjent person «p-ghost»" in problems
    assert "enheten «b» har en ukjent leder «p-nobody»" in problems
    assert "enheten «d» har en ukjent overordnet enhet «zz»" in problems
    assert any(
        p.startswith("enhetene går i ring: b → c → b")
        or p.startswith("enhetene går i ring: c → b → c")
        for p in problems
    )


def test_nearest_leader_skips_absent_people_and_climbs_the_tree() -> None:
    body = demo_directory()
    for person in body["people"]:
        if person["id"] in ("p-ln", "p-ln2"):
            person["absences"] = [{"from": "2026-07-01", "to": "2026-07-21"}]
    resolver = Resolver(Directory.model_validate(body))

    summer = resolver.resolve("u-nord", date(2026, 7, 10), ["p-ansatt"])
    assert [r.person.id for r in summer.leaders][:2] == ["p-hl", "p-ks"]
    assert [(s.person.id, s.reason) for s in summer.skipped][:2] == [
        ("p-ln", "absent 2026-07-01 to 2026-07-21"),
        ("p-ln2", "absent 2026-07-01 to 2026-07-21"),
    ]
    assert summer.safety_rep is not None and summer.safety_rep.person.id == "p-vo"

    autumn = resolver.resolve("u-nord", date(2026, 9, 1), ["p-ansatt"])
    assert [(r.person.id, r.role) for r in autumn.leaders][:2] == [
        ("p-ln", "nearest_leader"),
        ("p-ln2", "deputy"),
    ]


def test_safety_rep_is_the_nearest_one_up_the_tree() -> None:
    resolver = Resolver(Directory.model_validate(demo_directory()))
    # Helse og omsorg has no verneombud of its own, nor has the top; none is found above it.
    assert resolver.resolve("u-helse", date(2026, 9, 1)).safety_rep is None
    # Hjemmetjenesten has its own.
    rep = resolver.resolve("u-hjemme", date(2026, 9, 1)).safety_rep
    assert rep is not None and rep.person.id == "p-vo-h"
