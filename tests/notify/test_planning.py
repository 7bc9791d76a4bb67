"""Who a report tells, decided by notify's planning from the category's kind, the facts and the
directory (no bus: the planner is pure apart from the clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.cli import demo_directory
from services.notify.bus import Channels, Dispatcher, plan_report
from services.notify.domain import Directory
from services.notify.store import NotifyStore
from shared.clock import ManualClock
from shared.schemas import Actor, IncidentEventV1
from shared.settings import Settings

REPORTED = datetime(2026, 9, 8, 21, 30, tzinfo=UTC)  # Tuesday 23:30 in Oslo


def event(category: str, facts: dict[str, Any] | None = None) -> IncidentEventV1:
    return IncidentEventV1(
        seq=1,
        type="IncidentReported",
        incident_id="i-1",
        org_id="demo",
        recorded_at=REPORTED.isoformat(),
        occurred_at=(REPORTED - timedelta(minutes=10)).isoformat(),
        actor=Actor(id="p-ansatt", name="Ali Ansatt"),
        data={
            "category": category,
            "title": "Hva som skjedde",
            "unit_id": "u-nord",
            "affected": ["p-ansatt"],
            "severity": "high",
            "facts": facts or {},
        },
        prev_hash="0" * 64,
        hash="f" * 64,
    )


@pytest.fixture
def plan(tmp_path: Path) -> Any:
    clock = ManualClock(REPORTED)
    settings = Settings(data_dir=tmp_path)
    store = NotifyStore(tmp_path / "n.sqlite", clock)
    dispatcher = Dispatcher(store, None, settings, Channels(settings, "k" * 43, clock))  # type: ignore[arg-type]

    def run(
        category: str, facts: dict[str, Any] | None = None, **org: Any
    ) -> list[tuple[str, str]]:
        raw = demo_directory()
        raw["org"] = {**raw["org"], **org}
        directory = Directory.model_validate(raw)
        planned = plan_report(event(category, facts), directory, settings, dispatcher)
        return [(a.role, a.person_id) for a in planned["alerts"]]

    return run


def test_a_work_environment_event_tells_the_leader_and_the_safety_rep(plan: Any) -> None:
    """aml § 6-2: the safety rep is to know of work accidents and near misses in their area."""
    assert plan("vold-fysisk") == [("nearest_leader", "p-ln"), ("safety_rep", "p-vo")]


def test_a_personal_crisis_tells_the_leader_only(plan: Any) -> None:
    assert plan("sykdom-utenfor-arbeid") == [("nearest_leader", "p-ln")]
    assert plan("samlivsbrudd", {"consent_safety_rep": False}) == [("nearest_leader", "p-ln")]


def test_with_consent_the_safety_rep_is_told_of_a_personal_crisis_too(plan: Any) -> None:
    assert plan("dodsfall-naere-relasjoner", {"consent_safety_rep": True}) == [
        ("nearest_leader", "p-ln"),
        ("safety_rep", "p-vo"),
    ]


def test_hr_is_alerted_of_the_kinds_the_organisation_names(plan: Any) -> None:
    assert plan("sykdom-utenfor-arbeid", alert_hr_for=["personlig"]) == [
        ("nearest_leader", "p-ln"),
        ("hr", "p-hr"),
    ]
    assert ("hr", "p-hr") not in plan("vold-fysisk", alert_hr_for=["personlig"])


def test_absence_is_judged_on_the_day_of_the_report_not_the_day_it_is_processed(
    tmp_path: Path,
) -> None:
    """Reported Tuesday 23:30 Oslo; notify gets to it Wednesday (after an outage). The leader
    away on Tuesday only is skipped; one away on Wednesday only is not."""
    clock = ManualClock(REPORTED + timedelta(hours=12))
    settings = Settings(data_dir=tmp_path)
    store = NotifyStore(tmp_path / "n.sqlite", clock)
    dispatcher = Dispatcher(store, None, settings, Channels(settings, "k" * 43, clock))  # type: ignore[arg-type]

    def first_leader(absent: str) -> str:
        raw = demo_directory()
        for person in raw["people"]:
            if person["id"] == "p-ln":
                person["absences"] = [{"from": absent, "to": absent}]
        plan = plan_report(
            event("vold-fysisk"), Directory.model_validate(raw), settings, dispatcher
        )
        return str(plan["alerts"][0].person_id)

    assert first_leader("2026-09-08") == "p-ln2"  # away on the day of the report: the deputy
    assert first_leader("2026-09-09") == "p-ln"  # away only on the day notify processed it
