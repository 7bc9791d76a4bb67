"""The portal shows names where the log keeps ids (services.content.portal.name_ids)."""

from __future__ import annotations

from services.content.portal import name_ids


def test_ids_in_the_log_get_their_names_for_the_pages() -> None:
    state = {
        "unit_id": "u-nord",
        "deadlines": {"hovedverneombud-varslet": {"title": "Hovedverneombudet er varslet"}},
        "measures": [
            {"seq": 3, "measure_id": "medisinsk-hjelp"},
            {"seq": 4, "measure_id": "egen", "title": "Eget tiltak"},
        ],
        "events": [
            {"type": "MeasureLogged", "data": {"measure_id": "medisinsk-hjelp"}},
            {"type": "DeadlineMet", "data": {"deadline_id": "hovedverneombud-varslet"}},
            {"type": "DeadlineMet", "data": {"deadline_id": "aml-5-1"}},  # not set: the law's
            {"type": "DeadlineMet", "data": {"deadline_id": "ukjent"}},
        ],
    }
    named = name_ids(state, {"medisinsk-hjelp": "Sørg for medisinsk hjelp"}, {"u-nord": "Nord"})
    assert named["unit_name"] == "Nord" and named["unit_id"] == "u-nord"  # the id stays
    assert [m["title"] for m in named["measures"]] == ["Sørg for medisinsk hjelp", "Eget tiltak"]
    titles = [e["data"].get("title") for e in named["events"]]
    assert titles[:2] == ["Sørg for medisinsk hjelp", "Hovedverneombudet er varslet"]
    assert titles[2] and "aml" not in titles[2]  # the provision's title from shared/law.yaml
    assert titles[3] is None  # nothing to name it by: the page says "Frist"


def test_without_names_to_give_the_state_is_left_as_it_was() -> None:
    state = {"unit_id": "u-x", "measures": [{"measure_id": "m"}], "events": []}
    assert name_ids(state, {}, {}) == {
        "unit_id": "u-x",
        "measures": [{"measure_id": "m"}],
        "events": [],
    }
