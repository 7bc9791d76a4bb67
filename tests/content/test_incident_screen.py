"""The incident screen's rules (services/content/domain/incident_screen.py), at exact times."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.content.domain import incident_screen as screen

OSLO = ZoneInfo("Europe/Oslo")
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=OSLO)  # a Tuesday


def at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


def test_a_deadline_reads_as_a_weekday_and_a_date_in_norwegian() -> None:
    assert screen.day_label("2026-12-04T15:00:00Z", OSLO, NOW) == "fredag 4. desember kl. 16:00"
    # Another year says which; summer time is Oslo's, not UTC's.
    assert screen.day_label("2027-06-07T06:00:00Z", OSLO, NOW) == "mandag 7. juni 2027 kl. 08:00"
    assert screen.day_label(None, OSLO, NOW) == ""


def test_time_since_the_report_and_until_the_escalation() -> None:
    assert screen.since(at(-0.5), NOW) == "nå nettopp"
    assert screen.since(at(-12), NOW) == "for 12 min siden"
    assert screen.since(at(-125), NOW) == "for 2 t 5 min siden"
    assert screen.since(at(-60 * 24 * 3), NOW) == "for 3 dager siden"
    assert screen.until(at(2.5), NOW) == "om 3 min"  # rounded up: never "om 0 min" early
    assert screen.until(at(-1), NOW) == "nå"


def alert(role: str, person: str, **fields: object) -> dict[str, object]:
    return {"kind": "alert", "role": role, "person_name": person, "status": "sent", **fields}


def test_each_track_escalates_until_someone_in_it_acknowledges() -> None:
    rows = [
        alert("safety_rep", "Vera Verneombud", escalate_at=at(15)),
        alert("nearest_leader", "Lise Nord", escalate_at=at(15)),
    ]
    assert screen.head(rows, OSLO, NOW)["escalations"] == [
        {"tracks": ["leder", "verneombud"], "track": "leder og verneombud",
         "at": "kl. 09:45", "in": "om 15 min"},
    ]  # fmt: skip
    # The nearest leader escalated to the deputy, then answered herself: the deputy's alert
    # still has a time in notify, but the leader track is done.
    rows = [
        alert("nearest_leader", "Lise Nord", acknowledged_at=at(-1), status="acknowledged"),
        alert("deputy", "Lars Nestleder", escalate_at=at(10)),
        alert("safety_rep", "Vera Verneombud", escalate_at=at(5)),
    ]
    head = screen.head(rows, OSLO, NOW)
    assert head["acknowledged"] == [{"name": "Lise Nord", "at": "kl. 09:29"}]
    assert [e["track"] for e in head["escalations"]] == ["verneombud"]


def test_the_undo_lasts_one_minute_of_the_clock_and_only_for_ones_own_tap() -> None:
    entry = {"seq": 9, "recorded_at": NOW.isoformat(), "actor": {"id": "p-ln"}, "corrections": []}
    assert screen.undo_left(entry, "p-ln", NOW) == 60
    assert screen.undo_left(entry, "p-ln", NOW + timedelta(seconds=59.5)) == 1
    assert screen.undo_left(entry, "p-ln", NOW + timedelta(seconds=60)) == 0
    assert screen.undo_left(entry, "p-other", NOW) == 0
    assert screen.undo_left({**entry, "corrections": [10]}, "p-ln", NOW) == 0


def test_the_next_measure_skips_what_was_touched_and_started_ones_stay_open() -> None:
    phases = [
        {"id": "forebyggende", "title": "Forebyggende", "measures": [{"id": "plan"}]},
        {"id": "akutt", "title": "Akuttfase", "measures": [{"id": "a"}, {"id": "b"}, {"id": "c"}]},
        {"id": "oppfolging", "title": "Oppfølging", "measures": [{"id": "f"}]},
    ]
    ordered = screen.ordered_phases(phases, "akutt")
    assert [p["id"] for p in ordered] == ["akutt", "oppfolging", "forebyggende"]
    done = {"a": {"status": "started"}, "b": {"status": "not_applicable"}}
    board = screen.board(ordered, done, "akutt")
    assert board["next"] == {"id": "c"}
    assert board["started"] == [{"id": "a"}]
    assert (board["finished"], board["total"], board["first_open"]) == (1, 5, "a")
    left = screen.open_measures(ordered, done)
    assert [(p["id"], [m["id"] for m in p["measures"]]) for p in left] == [
        ("akutt", ["a", "c"]),
        ("oppfolging", ["f"]),
    ]
