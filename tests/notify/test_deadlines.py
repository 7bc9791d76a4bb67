"""Working days in Norway and the deadlines of the organisation's routine duties.

The legal duties (which apply, and when they fall due) are in test_law_duties.py, each row
citing its provision.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest

from services.notify.domain import (
    DEFAULT_ROUTINE,
    Directory,
    Duty,
    RoutineDuty,
    add_months,
    duties,
    is_working_day,
    next_working_day,
    reminder_at,
    working_day_on_or_after,
)
from shared.law import Kind

OSLO = ZoneInfo("Europe/Oslo")


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    """Local Oslo wall-clock time."""
    return datetime(y, m, d, hh, mm, tzinfo=OSLO)


def utc(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


def by_id(
    occurred: datetime,
    facts: dict[str, Any] | None = None,
    routine: list[RoutineDuty] | None = None,
    kind: Kind = "arbeidsmiljo",
) -> dict[str, Duty]:
    found = duties(
        occurred_at=occurred,
        learnt_at=occurred + timedelta(minutes=20),
        facts=facts or {},
        kind=kind,
        routine=routine,
    )
    return {d.id: d for d in found}


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 4, 1), True),  # Wednesday before Easter
        (date(2026, 4, 2), False),  # Maundy Thursday
        (date(2026, 4, 3), False),  # Good Friday
        (date(2026, 4, 6), False),  # Easter Monday
        (date(2026, 4, 7), True),
        (date(2026, 5, 1), False),  # Labour Day, a Friday
        (date(2026, 5, 14), False),  # Ascension Day
        (date(2026, 5, 25), False),  # Whit Monday
        (date(2028, 5, 17), False),  # Constitution Day on a Wednesday
        (date(2026, 12, 24), True),  # Christmas Eve is not a public holiday
        (date(2026, 12, 25), False),
        (date(2026, 12, 31), True),  # nor is New Year's Eve
        (date(2027, 1, 1), False),
        (date(2026, 7, 11), False),  # Saturday
        (date(2026, 7, 12), False),  # Sunday
        (date(2026, 7, 13), True),  # Monday
    ],
)
def test_is_working_day(day: date, working: bool) -> None:
    assert is_working_day(day) is working


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 4, 1), date(2026, 4, 7)),  # Easter: Thu, Fri, Sat, Sun, Mon off
        (date(2026, 5, 13), date(2026, 5, 15)),  # Ascension Day
        (date(2028, 5, 16), date(2028, 5, 18)),  # 17 May
        (date(2026, 5, 22), date(2026, 5, 26)),  # Whitsun weekend and Whit Monday
        (date(2026, 12, 24), date(2026, 12, 28)),  # Christmas, then a weekend
        (date(2026, 12, 23), date(2026, 12, 24)),
        (date(2026, 7, 10), date(2026, 7, 13)),  # Friday -> Monday
        (date(2026, 7, 11), date(2026, 7, 13)),  # Saturday -> Monday
        (date(2026, 9, 8), date(2026, 9, 9)),  # an ordinary Tuesday
    ],
)
def test_next_working_day_is_strictly_after(day: date, expected: date) -> None:
    assert next_working_day(day) == expected


def test_working_day_on_or_after() -> None:
    assert working_day_on_or_after(date(2026, 9, 8)) == date(2026, 9, 8)
    assert working_day_on_or_after(date(2026, 7, 11)) == date(2026, 7, 13)
    assert working_day_on_or_after(date(2026, 4, 2)) == date(2026, 4, 7)
    assert working_day_on_or_after(date(2026, 12, 24)) == date(2026, 12, 24)


def test_add_months_clamps_the_day() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_months(date(2026, 12, 15), 1) == date(2027, 1, 15)
    assert add_months(date(2028, 2, 29), 12) == date(2029, 2, 28)


def test_main_safety_rep_is_due_the_next_working_day_after_easter() -> None:
    duty = by_id(at(2026, 4, 1))["hovedverneombud-varslet"]
    assert duty.due_at == at(2026, 4, 7, 16)
    assert duty.due_at == utc(2026, 4, 7, 14)
    assert (duty.kind, duty.legal_ref, duty.due_label) == ("routine", None, "neste virkedag")
    assert (duty.title, duty.responsible) == ("Hovedverneombudet varslet", "nearest_leader")


@pytest.mark.parametrize(
    ("occurred", "due"),
    [
        (at(2026, 5, 13), date(2026, 5, 15)),
        (at(2028, 5, 16), date(2028, 5, 18)),
        (at(2026, 12, 24), date(2026, 12, 28)),
        # 22:30 UTC on Tuesday 12 May is already Wednesday in Oslo: counted from Wednesday.
        (utc(2026, 5, 12, 22, 30), date(2026, 5, 15)),
        (utc(2026, 5, 12, 21, 30), date(2026, 5, 13)),
    ],
)
def test_next_working_day_duties_count_from_the_local_date(occurred: datetime, due: date) -> None:
    assert by_id(occurred)["hovedverneombud-varslet"].due_at == at(due.year, due.month, due.day, 16)


def test_one_week_follow_up_on_a_holiday_moves_to_the_next_working_day() -> None:
    # Thursday 26 March + 7 days = Maundy Thursday 2 April; Easter ends Monday 6 April.
    duty = by_id(at(2026, 3, 26))["oppfolging-en-uke"]
    assert duty.due_at == at(2026, 4, 7, 16)
    assert duty.due_label == "etter en uke"


def test_one_week_follow_up_on_a_working_day_stays() -> None:
    assert by_id(at(2026, 9, 8))["oppfolging-en-uke"].due_at == at(2026, 9, 15, 16)


def test_one_month_from_the_31st_of_january() -> None:
    # 2026: 28 February is a Saturday, so Monday 2 March.
    assert by_id(at(2026, 1, 31))["oppfolging-en-maned"].due_at == at(2026, 3, 2, 16)
    # 2028: leap year, 29 February is a Tuesday.
    duty = by_id(at(2028, 1, 31))["oppfolging-en-maned"]
    assert duty.due_at == at(2028, 2, 29, 16)
    assert duty.due_label == "etter en måned"


def test_due_at_is_utc_and_16_oslo_across_the_dst_change() -> None:
    # Thursday 26 March 2026; summer time starts Sunday 29 March.
    found = by_id(at(2026, 3, 26))
    winter = found["hovedverneombud-varslet"].due_at  # Friday 27 March
    summer = found["oppfolging-en-uke"].due_at  # Tuesday 7 April
    for due in (winter, summer):
        assert due is not None  # routine steps always have a date
        assert due.tzinfo is not None and due.utcoffset() == timedelta(0)
        assert due.astimezone(OSLO).hour == 16
    assert winter == utc(2026, 3, 27, 15)
    assert summer == utc(2026, 4, 7, 14)


def test_no_injury_means_only_the_routine() -> None:
    assert list(by_id(at(2026, 9, 8), {"injury": False, "police_involved": True})) == [
        "hovedverneombud-varslet",
        "oppfolging-en-uke",
        "oppfolging-en-maned",
    ]


def test_the_routine_step_that_tells_the_main_safety_rep_is_left_out_of_personal_crises() -> None:
    """aml § 6-2 is the basis for telling safety reps: work-environment events only."""
    assert list(by_id(at(2026, 9, 8), kind="personlig")) == [
        "oppfolging-en-uke",
        "oppfolging-en-maned",
    ]


def test_routine_deadlines_follow_the_organisations_time_zone() -> None:
    found = duties(
        occurred_at=utc(2026, 9, 8, 8),
        learnt_at=utc(2026, 9, 8, 8),
        facts={},
        kind="arbeidsmiljo",
        routine=None,
        timezone="America/New_York",
    )
    due = {d.id: d.due_at for d in found}["hovedverneombud-varslet"]
    assert due == datetime(2026, 9, 9, 16, tzinfo=ZoneInfo("America/New_York"))


def test_a_directorys_routine_replaces_the_defaults_and_is_sorted_by_due() -> None:
    directory = Directory.model_validate(
        {
            "org": {"id": "o", "name": "O"},
            "units": [{"id": "u", "name": "U"}],
            "routine": [
                {"id": "to-mnd", "title": "Samtale etter to måneder", "after_months": 2},
                {
                    "id": "hr-tre",
                    "title": "HR orientert",
                    "after_working_days": 3,
                    "responsible": "hr",
                },
                {"id": "ti-dager", "title": "Ti dager", "after_days": 10},
            ],
        }
    )
    assert directory.problems() == []
    found = duties(
        occurred_at=at(2026, 4, 1),
        learnt_at=at(2026, 4, 1, 11),
        facts={},
        kind="arbeidsmiljo",
        routine=directory.routine,
    )
    assert [(d.id, d.due_label, d.responsible, d.due_at) for d in found] == [
        # Three working days after Wednesday 1 April: 7, 8, 9 April.
        ("hr-tre", "etter 3 virkedager", "hr", at(2026, 4, 9, 16)),
        ("ti-dager", "etter 10 dager", "nearest_leader", at(2026, 4, 13, 16)),
        # 1 June 2026 is a Monday.
        ("to-mnd", "etter 2 måneder", "nearest_leader", at(2026, 6, 1, 16)),
    ]


def test_no_routine_configured_means_the_default_and_an_empty_one_means_none() -> None:
    directory = Directory.model_validate(
        {"org": {"id": "o", "name": "O"}, "units": [{"id": "u", "name": "U"}]}
    )
    assert directory.routine is None
    assert [d.id for d in by_id(at(2026, 9, 8), routine=directory.routine).values()] == [
        r.id for r in DEFAULT_ROUTINE
    ]
    assert by_id(at(2026, 9, 8), routine=[]) == {}


@pytest.mark.parametrize(
    "rule",
    [
        {},
        {"after_days": 7, "after_months": 1},
        {"after_days": 7, "after_working_days": 1, "after_months": 1},
        {"after_days": 0},
        {"after_working_days": -1},
    ],
)
def test_a_routine_duty_needs_exactly_one_positive_rule(rule: dict[str, int]) -> None:
    with pytest.raises(pydantic.ValidationError):
        RoutineDuty.model_validate({"id": "r", "title": "R", **rule})


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="occurred_at must be timezone-aware"):
        duties(
            occurred_at=datetime(2026, 9, 8, 10),  # naive: the point of the test
            learnt_at=at(2026, 9, 8),
            facts={},
            kind="arbeidsmiljo",
            routine=None,
        )


def test_reminder_a_day_ahead_for_a_long_deadline() -> None:
    assert reminder_at(utc(2026, 9, 8, 8), utc(2027, 9, 8, 14)) == utc(2027, 9, 7, 14)


def test_reminder_halfway_for_a_one_day_deadline() -> None:
    assert reminder_at(utc(2026, 9, 8, 14), utc(2026, 9, 9, 14)) == utc(2026, 9, 9, 2)


def test_reminder_halfway_for_a_one_hour_deadline() -> None:
    assert reminder_at(utc(2026, 9, 8, 20, 5), utc(2026, 9, 8, 21, 5)) == utc(2026, 9, 8, 20, 35)


def test_reminder_for_an_overdue_duty_is_at_once() -> None:
    assert reminder_at(utc(2026, 9, 8, 12), utc(2026, 9, 8, 11)) == utc(2026, 9, 8, 12)


def test_reminder_is_utc_whatever_zone_it_was_given_in() -> None:
    reminder = reminder_at(at(2026, 9, 8, 10), at(2026, 9, 10, 16))
    assert reminder == utc(2026, 9, 9, 14)
    assert reminder.utcoffset() == timedelta(0)
