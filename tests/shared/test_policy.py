"""The access rules of shared.policy, one test per rule, on a four-level tree."""

from __future__ import annotations

import pytest

from shared.auth import Principal
from shared.policy import IncidentFacts, OrgTree, Unit, allowed, visible

TREE = OrgTree(
    units=(
        Unit("top", None, leader="kd"),
        Unit("helse", "top", leader="ks", deputies=("ks2",)),
        Unit("hjemme", "helse", leader="hl", safety_rep="vo-h"),
        Unit("nord", "hjemme", leader="ln", deputies=("ln2",), safety_rep="vo"),
        Unit("sor", "hjemme", leader="ls"),  # no safety rep of its own: vo-h covers it
        Unit("skole", "top", leader="os", safety_rep="vo-s"),
    ),
    main_safety_rep="hvo",
)
VIOLENCE = IncidentFacts(unit_id="nord", category="vold-fysisk", reported_by="ansatt")
CONFLICT = IncidentFacts(unit_id="nord", category="konflikt-mellom-ansatte", reported_by="ansatt")


def who(person: str, *roles: str) -> Principal:
    return Principal(person_id=person, org_id="o", roles=frozenset(roles), name=person)


@pytest.mark.parametrize("person", ["ln", "ln2", "hl", "ks", "ks2", "kd"])
def test_leaders_of_the_unit_and_every_unit_above_may_do_everything(person: str) -> None:
    for action in ("read", "note", "write", "deadline", "export"):
        assert allowed(who(person, "leader"), action, VIOLENCE, TREE), (person, action)


@pytest.mark.parametrize("person", ["os", "ls"])
def test_leaders_of_other_units_may_do_nothing(person: str) -> None:
    for action in ("read", "note", "write", "export"):
        assert not allowed(who(person, "leader"), action, VIOLENCE, TREE)


def test_the_leader_role_is_needed_not_just_the_position() -> None:
    assert not allowed(who("ln", "reporter"), "write", VIOLENCE, TREE)


def test_safety_reps_read_and_note_work_environment_incidents_in_the_units_they_cover() -> None:
    """aml § 6-2: the safety rep follows work accidents and the work environment, not the
    employee's personal crises."""
    rep = who("vo", "safety_rep")
    assert allowed(rep, "read", VIOLENCE, TREE) and allowed(rep, "note", VIOLENCE, TREE)
    assert not allowed(rep, "write", VIOLENCE, TREE)
    assert allowed(rep, "read", CONFLICT, TREE)  # a conflict at work: the work environment
    for personal in ("sykdom-utenfor-arbeid", "samlivsbrudd", "dodsfall-naere-relasjoner"):
        facts = IncidentFacts(unit_id="nord", category=personal, reported_by="ansatt")
        assert not allowed(rep, "read", facts, TREE), personal
    # The unit above has its own rep, who does not cover a unit with a rep of its own ...
    assert not allowed(who("vo-h", "safety_rep"), "read", VIOLENCE, TREE)
    # ... but does cover the sibling without one.
    south = IncidentFacts(unit_id="sor", category="trusler-personlig", reported_by="x")
    assert allowed(who("vo-h", "safety_rep"), "read", south, TREE)
    assert not allowed(who("vo-s", "safety_rep"), "read", VIOLENCE, TREE)
    assert allowed(who("hvo", "safety_rep"), "read", VIOLENCE, TREE)  # the main safety rep


def test_hr_reads_everything_notes_and_marks_deadlines_but_does_not_log_measures() -> None:
    hr = who("per", "hr")
    for incident in (VIOLENCE, CONFLICT):
        assert allowed(hr, "read", incident, TREE)
        assert allowed(hr, "note", incident, TREE) and allowed(hr, "deadline", incident, TREE)
        assert not allowed(hr, "write", incident, TREE)


def test_auditors_read_export_and_verify_and_write_nothing() -> None:
    auditor = who("aud", "auditor")
    assert allowed(auditor, "read", CONFLICT, TREE) and allowed(auditor, "export", VIOLENCE, TREE)
    for action in ("note", "write", "deadline", "report"):
        assert not allowed(auditor, action, VIOLENCE, TREE)


def test_reporters_report_and_follow_only_their_own_reports() -> None:
    own, other = who("ansatt", "reporter"), who("kollega", "reporter")
    assert allowed(own, "report", None, TREE)
    assert allowed(own, "read", VIOLENCE, TREE) and allowed(own, "note", VIOLENCE, TREE)
    assert not allowed(own, "write", VIOLENCE, TREE)
    assert not allowed(other, "read", VIOLENCE, TREE)


def test_admins_see_no_incident_data_by_that_role_alone() -> None:
    admin = who("adm", "admin")
    assert not allowed(admin, "report", None, TREE)
    assert not allowed(admin, "read", VIOLENCE, TREE)


def test_a_list_shows_only_what_may_be_read() -> None:
    skole = IncidentFacts(unit_id="skole", category="vold-fysisk", reported_by="elev")
    listed = visible(who("ln", "leader"), [("a", VIOLENCE), ("b", skole)], TREE)
    assert listed == ["a"]


def test_an_empty_tree_gives_leaders_no_scope() -> None:
    assert not allowed(who("ln", "leader"), "read", VIOLENCE, OrgTree())
