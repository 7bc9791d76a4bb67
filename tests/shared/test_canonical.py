from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.canonical import GENESIS_HASH, canonical_json, event_hash, rfc3339, verify_chain


def chain(datas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    prev = GENESIS_HASH
    for seq, data in enumerate(datas, start=1):
        kind = "IncidentReported" if seq == 1 else "NoteAdded"
        event: dict[str, Any] = {"seq": seq, "type": kind, "data": data, "prev_hash": prev}
        event["hash"] = event_hash(event)
        prev = event["hash"]
        events.append(event)
    return events


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": "æøå", "a": [1, {"d": None, "c": True}]}) == (
        '{"a":[1,{"c":true,"d":null}],"b":"æøå"}'.encode()
    )


def test_rfc3339_is_utc_with_microseconds() -> None:
    oslo = timezone(timedelta(hours=1))
    assert rfc3339(datetime(2026, 4, 1, 12, 0, tzinfo=oslo)) == "2026-04-01T11:00:00.000000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        rfc3339(datetime(2026, 4, 1, 12, 0))


def test_intact_chain_is_valid() -> None:
    events = chain([{"text": "a"}, {"text": "b"}, {"text": "c"}])
    report = verify_chain(events)
    assert report.valid and report.length == 3 and report.head_hash == events[-1]["hash"]


def test_edited_middle_event_is_reported_at_its_seq() -> None:
    events = chain([{"text": "a"}, {"text": "b"}, {"text": "c"}])
    events[1]["data"]["text"] = "B"
    report = verify_chain(events)
    assert not report.valid and report.first_invalid_seq == 2 and report.length == 1


def test_removed_or_reordered_events_are_reported() -> None:
    events = chain([{"text": "a"}, {"text": "b"}, {"text": "c"}])
    assert verify_chain([events[0], events[2]]).first_invalid_seq == 2
    assert verify_chain([events[1], events[0]]).first_invalid_seq == 1


@given(st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=4), max_size=8))
def test_any_chain_verifies_and_any_single_change_is_caught(datas: list[dict[str, str]]) -> None:
    events = chain(datas)
    assert verify_chain(events).valid
    if events:
        events[-1]["data"] = {**events[-1]["data"], "tamper": "x"}
        assert verify_chain(events).first_invalid_seq == len(events)


def test_now_is_accepted() -> None:
    assert rfc3339(datetime.now(UTC)).endswith("Z")


def test_a_chain_must_start_with_the_report() -> None:
    """A well-linked chain that starts anywhere else is not an incident's whole log."""
    events = chain([{"n": 1}, {"n": 2}])
    forged = {**events[0], "type": "NoteAdded"}
    forged["hash"] = event_hash({k: v for k, v in forged.items() if k != "hash"})
    report = verify_chain([forged])
    assert not report.valid and report.first_invalid_seq == 1
    assert report.reason is not None and "IncidentReported" in report.reason
