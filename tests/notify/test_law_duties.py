"""Which legal duties an incident starts, and when they fall due: the registry (shared/law.yaml)
applied by notify. Every row names the provision it checks; the statute is the authority."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.notify.domain import Directory, Duty, duties
from shared.law import category_kind, registry, safety_rep_may_know

OSLO = ZoneInfo("Europe/Oslo")
LEARNT = datetime(2026, 9, 8, 20, 5, tzinfo=UTC)  # a Tuesday evening
OCCURRED = LEARNT - timedelta(minutes=30)

SERIOUS = ["aml-5-2", "aml-5-2-skriftlig", "aml-5-1", "ftrl-13-14", "aml-7-2"]
INJURY = ["aml-5-1", "ftrl-13-14", "aml-7-2"]


def law(facts: dict[str, Any], category: str, **kw: Any) -> dict[str, Duty]:
    found = duties(
        occurred_at=OCCURRED,
        learnt_at=LEARNT,
        facts=facts,
        kind=category_kind(category),
        routine=[],
        **kw,
    )
    return {d.id: d for d in found if d.kind == "law"}


FACTS = {
    "death": {"death": True},
    "serious physical": {"serious_injury": True},
    "serious psychological": {"serious_psychological_injury": True},
    "injury": {"injury": True},
    "none": {"injury": False, "serious_injury": False, "death": False},
}
CATEGORIES = {
    "violence": "vold-fysisk",
    "threat": "trusler-personlig",
    "fire": "brann-arbeidsplassen",
    "personal": "dodsfall-naere-relasjoner",
}


@pytest.mark.parametrize(
    ("facts", "category", "expected", "provision"),
    [
        # aml § 5-2 (1): death or serious injury at work -> Arbeidstilsynet and police at once,
        # then written confirmation with a copy to the safety rep; aml § 5-1 register; ftrl §
        # 13-14 injury report to Nav; aml § 7-2 AMU reviews the accident report.
        ("death", "violence", SERIOUS, "aml § 5-2 (1), § 5-1, ftrl § 13-14, aml § 7-2"),
        ("death", "threat", SERIOUS, "aml § 5-2 (1): work-related threats count"),
        ("death", "fire", SERIOUS, "aml § 5-2 (1)"),
        ("serious physical", "violence", SERIOUS, "aml § 5-2 (1): alvorlig skadet"),
        ("serious physical", "threat", SERIOUS, "aml § 5-2 (1)"),
        ("serious physical", "fire", SERIOUS, "aml § 5-2 (1)"),
        # Arbeidstilsynet reads "alvorlig skade" in § 5-2 as physical or psychological injury.
        ("serious psychological", "violence", SERIOUS, "aml § 5-2 (1): psychological injury"),
        ("serious psychological", "threat", SERIOUS, "aml § 5-2 (1): psychological injury"),
        ("serious psychological", "fire", SERIOUS, "aml § 5-2 (1): psychological injury"),
        # A lesser injury: registered (aml § 5-1), reported to Nav (ftrl § 13-14), to AMU
        # (aml § 7-2); no notice to the inspectorate (§ 5-2 needs death or serious injury).
        ("injury", "violence", INJURY, "aml § 5-1, ftrl § 13-14, aml § 7-2; not § 5-2"),
        ("injury", "threat", INJURY, "aml § 5-1, ftrl § 13-14, aml § 7-2; not § 5-2"),
        ("injury", "fire", INJURY, "aml § 5-1, ftrl § 13-14, aml § 7-2; not § 5-2"),
        ("none", "violence", [], "no harm: no legal duty starts"),
        ("none", "threat", [], "no harm: no legal duty starts"),
        ("none", "fire", [], "no harm: no legal duty starts"),
        # A personal crisis (a death among the employee's relatives) is no work accident:
        # none of aml §§ 5-1, 5-2, 7-2 or ftrl § 13-14 applies.
        ("death", "personal", [], "aml § 5-2 applies to work accidents only"),
        ("serious physical", "personal", [], "aml § 5-2, ftrl § 13-14: not in the work"),
        ("serious psychological", "personal", [], "aml § 5-2: not a work accident"),
        ("injury", "personal", [], "aml § 5-1: injuries in the work only"),
        ("none", "personal", [], "no harm: no legal duty starts"),
    ],
)
def test_the_duties_each_fact_and_kind_start(
    facts: str, category: str, expected: list[str], provision: str
) -> None:
    assert list(law(FACTS[facts], CATEGORIES[category])) == expected, provision


def test_unknown_is_not_yes() -> None:
    """Null (unknown) starts nothing: a duty starts when the fact is known (aml § 5-2)."""
    unknown = dict.fromkeys(["death", "serious_injury", "serious_psychological_injury", "injury"])
    assert law(unknown, "vold-fysisk") == {}


def test_aml_5_2_is_straks_from_when_the_employer_learnt_it_and_the_nearest_leader_acts() -> None:
    """aml § 5-2 (1): "straks og på hurtigste måte": shown due at once, overdue within the hour
    of when the employer learnt of it (not when it happened)."""
    notice = law({"serious_injury": True}, "vold-fysisk")["aml-5-2"]
    assert (notice.due_label, notice.due_at) == ("straks", LEARNT + timedelta(hours=1))
    assert (notice.legal_ref, notice.responsible) == ("aml § 5-2", "nearest_leader")
    assert "Arbeidstilsynet" in notice.title and "politiet" in notice.title


def test_aml_5_2_written_confirmation_has_no_invented_date_and_the_safety_rep_gets_a_copy() -> None:
    """aml § 5-2 (1): the notice is confirmed in writing; the safety rep has a copy."""
    confirmation = law({"death": True}, "ulykke-arbeidsplassen")["aml-5-2-skriftlig"]
    assert confirmation.due_at is None and confirmation.due_label == "etter varselet"
    provision = registry().provision("aml-5-2-skriftlig")
    assert provision is not None and provision.duty is not None
    assert "safety_rep" in provision.duty.audience
    assert "kopi" in provision.title and "verneombudet" in provision.title


def test_ftrl_13_14_is_snarest_mulig_with_a_reminder_and_the_one_year_limit_as_information() -> (
    None
):
    """ftrl § 13-14: the employer reports to Nav "snarest"; one year is the injured person's
    own limit for coverage, information to them and never the employer's deadline."""
    nav = law({"injury": True}, "vold-fysisk")["ftrl-13-14"]
    assert (nav.due_at, nav.due_label, nav.responsible) == (None, "snarest mulig", "hr")
    # Nudged at the end of the next working day (Wednesday 16:00 Oslo), not due then.
    assert nav.remind_at == datetime(2026, 9, 9, 16, tzinfo=OSLO)
    provision = registry().provision("ftrl-13-14")
    assert provision is not None and provision.info is not None
    assert "ett år" in provision.info and "Nav" in provision.title


def test_aml_5_1_register_has_no_statutory_deadline() -> None:
    """aml § 5-1 sets no time limit for registering the injury."""
    register = law({"injury": True}, "vold-fysisk")["aml-5-1"]
    assert register.due_at is None and register.remind_at is None
    assert "ingen lovbestemt frist" in register.due_label


def test_aml_7_2_is_due_at_the_next_amu_meeting_of_the_directory() -> None:
    """aml § 7-2: AMU reviews accident reports; the date is its meeting plan, not the law."""
    meetings = [date(2026, 6, 1), date(2026, 10, 12), date(2026, 12, 7)]
    amu = law({"injury": True}, "vold-fysisk", amu_meetings=meetings)["aml-7-2"]
    assert amu.due_at == datetime(2026, 10, 12, 16, tzinfo=OSLO)
    assert amu.due_label == "neste AMU-møte 12.10.2026"
    without = law({"injury": True}, "vold-fysisk")["aml-7-2"]
    assert without.due_at is None and "ingen møtedato" in without.due_label


@pytest.mark.parametrize("category", ["vold-fysisk", "sykdom-utenfor-arbeid"])
def test_sick_leave_follow_up_counts_from_the_first_day_of_sick_leave(category: str) -> None:
    """aml § 4-6 (3) plan within 4 weeks, (4) dialogue meeting within 7 weeks of being fully
    away; ftrl § 8-7 a: Nav's dialogue meeting by 26 weeks. Whatever the cause of the leave."""
    found = law({"sick_leave_from": "2026-09-10"}, category)
    assert list(found) == ["aml-4-6-plan", "aml-4-6-dialogmote", "ftrl-8-7a"]
    assert found["aml-4-6-plan"].due_at == datetime(2026, 10, 8, 16, tzinfo=OSLO)
    assert found["aml-4-6-plan"].due_label == "innen 4 uker"
    assert found["aml-4-6-dialogmote"].due_at == datetime(2026, 10, 29, 16, tzinfo=OSLO)
    assert found["ftrl-8-7a"].due_at == datetime(2027, 3, 11, 16, tzinfo=OSLO)
    assert {d.responsible for d in found.values()} == {"nearest_leader"}


def test_the_dialogue_meeting_is_not_owed_when_the_sick_leave_is_known_to_be_partial() -> None:
    """aml § 4-6 (4): the dialogue meeting is owed when the employee is fully away from work."""
    found = law({"sick_leave_from": "2026-09-10", "sick_leave_full": False}, "vold-fysisk")
    assert list(found) == ["aml-4-6-plan", "ftrl-8-7a"]


def test_sick_leave_duties_are_for_the_leader_and_hr_only() -> None:
    """Sick leave is health data (GDPR art. 9): its duties are told to the leader and HR."""
    for duty_id in ("aml-4-6-plan", "aml-4-6-dialogmote", "ftrl-8-7a"):
        provision = registry().provision(duty_id)
        assert provision is not None and provision.duty is not None
        assert set(provision.duty.audience) == {"nearest_leader", "hr"}, duty_id


def test_an_organisation_can_name_another_responsible_role_within_the_audience() -> None:
    directory = Directory.model_validate(
        {
            "org": {"id": "o", "name": "O", "duty_responsible": {"aml-5-2": "hr"}},
            "units": [{"id": "u", "name": "U"}],
        }
    )
    assert directory.problems() == []
    found = law({"death": True}, "vold-fysisk", responsible=directory.org.duty_responsible)
    assert found["aml-5-2"].responsible == "hr"
    wrong = Directory.model_validate(
        {
            "org": {"id": "o", "name": "O", "duty_responsible": {"aml-4-6-plan": "safety_rep"}},
            "units": [{"id": "u", "name": "U"}],
        }
    )
    assert any("kan ikke få vite om lovplikten" in p for p in wrong.problems())


@pytest.mark.parametrize(
    ("category", "facts", "told"),
    [
        ("vold-fysisk", {}, True),  # aml § 6-2: work accidents and near misses in their area
        ("brann-arbeidsplassen", {}, True),
        ("seksuell-trakassering", {}, True),
        ("sykdom-utenfor-arbeid", {}, False),  # personal: never without consent
        ("samlivsbrudd", {"consent_safety_rep": False}, False),
        ("dodsfall-naere-relasjoner", {"consent_safety_rep": True}, True),
        ("ukjent-kategori", {}, False),  # unknown ids tell the fewest people
    ],
)
def test_who_may_tell_the_safety_rep(category: str, facts: dict[str, Any], told: bool) -> None:
    assert safety_rep_may_know(facts, category_kind(category)) is told


def test_every_duty_is_cited_linked_to_its_paragraph_and_left_for_a_lawyer_to_review() -> None:
    for provision in registry().provisions:
        assert provision.url.startswith("https://lovdata.no/"), provision.id
        tail = provision.url.rsplit("/", 1)[-1]
        assert tail.startswith(("§", "KAPITTEL_", "a")), f"{provision.id}: not a paragraph"
        assert provision.citation and provision.summary, provision.id
        assert provision.reviewed_by is None and provision.reviewed_at is None, provision.id
        assert "NAV" not in provision.summary + provision.title, provision.id
