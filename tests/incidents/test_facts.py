"""Facts from notify and documents reach an incident's log exactly once (issue 3).

`append_fact` is the consumer behind the alert, deadline and document subscriptions. These tests
call it as the subscriptions do (fact, JetStream stream sequence, tracker) on SQLite and on
PostgreSQL, and prove that:

- a redelivery (same stream sequence) appends nothing, because the tracking record of the
  sequence was written in the same transaction as the event;
- an event whose tracking record is refused is not stored either (one transaction), also when
  two replicas race for one delivery;
- the same fact under a new stream sequence (a rebuilt stream) is recognised by its fact id and
  only moves the tracker forward;
- a fact for an unknown incident or an incident of another organisation is a permanent error
  (dead-lettered by the caller) and changes nothing;
- every kind of fact (RecipientAlerted, AlertAcknowledged, AlertEscalated, DeadlineSet,
  DocumentIssued) becomes an event of that type carrying the fact's data, in an intact chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from services.incidents.bus import (
    DEADLINES_DURABLE,
    DOCUMENTS_ACTOR,
    DOCUMENTS_DURABLE,
    NOTIFY_ACTOR,
    append_fact,
    facts_tracker,
)
from services.incidents.domain import Incident
from services.incidents.settings import IncidentSettings
from services.incidents.store import IncidentLog
from shared.bus import PermanentError
from shared.schemas import Actor, AlertFactV1, DeadlineFactV1, DocumentFactV1
from shared.subjects import Subjects

ACTOR = {"id": "p-ln", "name": "Lise Nord"}
NAMES = Subjects("kriselogg")
ALERTS = facts_tracker(NAMES)
DEADLINES = facts_tracker(NAMES, DEADLINES_DURABLE)
DOCUMENTS = facts_tracker(NAMES, DOCUMENTS_DURABLE)
LEADER = Actor(id="p-leder", name="Per Leder")
DEPUTY = Actor(id="p-stedfortreder", name="Siri Stedfortreder")


@pytest.fixture
def store(settings: IncidentSettings) -> Iterator[IncidentLog]:
    log = IncidentLog(settings)
    yield log
    log.close()


def new_incident(store: IncidentLog, org_id: str = "demo") -> UUID:
    incident = store.report(
        org_id=org_id,
        actor=ACTOR,
        data={"category": "vold-fysisk", "title": "Slått i resepsjonen", "unit_id": "u-nord",
              "affected": ["p-ansatt"], "severity": "high"},
        occurred_at=datetime(2026, 11, 25, 18, tzinfo=UTC),
    )  # fmt: skip
    return incident.id


def alerted(incident_id: UUID, alert_id: str = "a-1", org_id: str = "demo") -> AlertFactV1:
    return AlertFactV1(
        fact_id=f"{alert_id}:RecipientAlerted",
        type="RecipientAlerted",
        alert_id=alert_id,
        incident_id=str(incident_id),
        org_id=org_id,
        at=datetime(2026, 11, 25, 18, 1, tzinfo=UTC),
        recipient=LEADER,
        role="nearest_leader",
        channel="sms",
    )


def types_of(store: IncidentLog, incident_id: UUID) -> list[str]:
    return [e["type"] for e in store.exported_events(incident_id)]


def test_a_redelivery_with_the_same_stream_seq_is_appended_once(store: IncidentLog) -> None:
    incident_id = new_incident(store)
    fact = alerted(incident_id)
    assert not store.process_recorder.has_tracking_id(ALERTS, 7)

    assert append_fact(store, fact, 7, ALERTS) == "recorded"
    # The tracking record of seq 7 was stored by the same write as the event.
    assert store.process_recorder.has_tracking_id(ALERTS, 7)
    assert not store.process_recorder.has_tracking_id(ALERTS, 8)
    assert store.position(ALERTS) == 7

    assert append_fact(store, fact, 7, ALERTS) == "duplicate delivery"
    assert types_of(store, incident_id) == ["IncidentReported", "RecipientAlerted"]
    assert store.position(ALERTS) == 7
    assert store.verify(incident_id)[0].valid


def test_an_event_whose_tracking_record_is_refused_is_not_stored(store: IncidentLog) -> None:
    """Event and tracking record are one transaction: a refused tracking record stores nothing."""
    incident_id = new_incident(store)
    store.set_position(ALERTS, 9)  # seq 9 is already consumed
    with pytest.raises(IntegrityError):
        store.append(
            incident_id,
            "demo",
            "RecipientAlerted",
            actor=NOTIFY_ACTOR,
            data={
                "fact_id": "a-1:RecipientAlerted",
                "alert_id": "a-1",
                "role": "nearest_leader",
                "recipient": LEADER.model_dump(),
                "channel": "sms",
            },
            tracking=Tracking(ALERTS, 9),
        )
    assert types_of(store, incident_id) == ["IncidentReported"]
    # The aggregate the failed write had changed was not left behind in the cache.
    incident = store.get(incident_id, "demo", fresh=False)
    assert incident is not None and incident.version == 1
    assert store.position(ALERTS) == 9
    assert append_fact(store, alerted(incident_id), 9, ALERTS) == "duplicate delivery"
    assert types_of(store, incident_id) == ["IncidentReported"]


def test_two_replicas_racing_for_one_delivery_append_it_once(
    store: IncidentLog, settings: IncidentSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica B loaded the incident before replica A stored the same delivery (ack_wait ran out
    on A and JetStream redelivered to B): B's write is refused and reported as a duplicate."""
    incident_id = new_incident(store)
    fact = alerted(incident_id)
    other = IncidentLog(settings)
    try:
        real_get = other.get
        raced: list[str] = []

        def get_then_lose_the_race(
            incident_id: UUID, org_id: str, version: int | None = None, *, fresh: bool = True
        ) -> Incident | None:
            incident = real_get(incident_id, org_id, version, fresh=fresh)
            if not raced:
                raced.append(append_fact(store, fact, 7, ALERTS))
            return incident

        monkeypatch.setattr(other, "get", get_then_lose_the_race)
        assert append_fact(other, fact, 7, ALERTS) == "duplicate delivery"
        assert raced == ["recorded"]
        assert types_of(other, incident_id) == ["IncidentReported", "RecipientAlerted"]
        assert other.position(ALERTS) == 7
        assert other.verify(incident_id)[0].valid
    finally:
        other.close()


def test_the_same_fact_under_a_new_stream_seq_only_moves_the_tracker(store: IncidentLog) -> None:
    incident_id = new_incident(store)
    fact = alerted(incident_id)
    assert append_fact(store, fact, 7, ALERTS) == "recorded"
    # The stream was rebuilt and notify's outbox published the fact again: a new sequence.
    assert append_fact(store, fact, 12, ALERTS) == "already recorded"
    assert types_of(store, incident_id) == ["IncidentReported", "RecipientAlerted"]
    assert store.position(ALERTS) == 12
    assert store.process_recorder.has_tracking_id(ALERTS, 12)
    assert append_fact(store, fact, 12, ALERTS) == "duplicate delivery"
    assert types_of(store, incident_id) == ["IncidentReported", "RecipientAlerted"]
    assert store.verify(incident_id)[0].valid


@pytest.mark.parametrize("target", ["another organisation", "unknown incident"])
def test_a_fact_for_a_foreign_or_unknown_incident_is_permanent_and_appends_nothing(
    store: IncidentLog, target: str
) -> None:
    ours = new_incident(store, org_id="demo")
    theirs = new_incident(store, org_id="annen")
    if target == "another organisation":
        fact = alerted(theirs, org_id="demo")  # names our org, points at theirs
    else:
        fact = alerted(uuid4(), org_id="demo")
    with pytest.raises(PermanentError):
        append_fact(store, fact, 7, ALERTS)
    assert types_of(store, ours) == ["IncidentReported"]
    assert types_of(store, theirs) == ["IncidentReported"]
    assert types_of(store, UUID(fact.incident_id)) == (
        ["IncidentReported"] if target == "another organisation" else []
    )
    assert not store.process_recorder.has_tracking_id(ALERTS, 7)


def test_every_kind_of_fact_becomes_its_event_with_the_facts_data(store: IncidentLog) -> None:
    incident_id = new_incident(store)
    first = store.exported_events(incident_id)[0]
    at = datetime(2026, 11, 25, 18, 1, tzinfo=UTC)
    iid = str(incident_id)
    common: dict[str, Any] = {"incident_id": iid, "org_id": "demo"}
    document = b"%PDF-1.7 loggskjema"
    facts: list[tuple[AlertFactV1 | DeadlineFactV1 | DocumentFactV1, int, str]] = [
        (alerted(incident_id), 3, ALERTS),
        (AlertFactV1(fact_id="a-1:AlertEscalated", type="AlertEscalated", alert_id="a-1",
                     at=at.replace(minute=16), recipient=LEADER, role="nearest_leader",
                     channel="sms", reason="Ingen kvittering på 15 minutter", **common),
         4, ALERTS),
        (AlertFactV1(fact_id="a-2:RecipientAlerted", type="RecipientAlerted", alert_id="a-2",
                     at=at.replace(minute=16), recipient=DEPUTY, role="deputy",
                     channel="email", replaces_alert_id="a-1", **common),
         5, ALERTS),
        (AlertFactV1(fact_id="a-2:AlertAcknowledged", type="AlertAcknowledged", alert_id="a-2",
                     at=at.replace(minute=20), recipient=DEPUTY, role="deputy",
                     channel="email", **common),
         8, ALERTS),
        (DeadlineFactV1(fact_id=f"{iid}:deadline:varsle-arbeidstilsynet",
                        deadline_id="varsle-arbeidstilsynet", at=at, kind="law",
                        title="Varsle Arbeidstilsynet", legal_ref="aml. § 5-2",
                        due_at=datetime(2026, 11, 25, 19, tzinfo=UTC),
                        due_label="straks", responsible=LEADER,
                        responsible_role="nearest_leader", **common),
         6, DEADLINES),
        (DocumentFactV1(fact_id=f"{iid}:document:1", at=at.replace(minute=30), format="pdf",
                        as_of_seq=1, head_hash=first["hash"],
                        sha256=hashlib.sha256(document).hexdigest(), size=len(document),
                        filename=f"loggskjema-{iid[:8]}-1.pdf", issued_by=LEADER,
                        purpose="final", **common),
         9, DOCUMENTS),
    ]  # fmt: skip
    for fact, seq, tracker in facts:
        assert append_fact(store, fact, seq, tracker) == "recorded", fact.type

    events = store.exported_events(incident_id)
    assert [e["type"] for e in events] == [
        "IncidentReported",
        "RecipientAlerted",
        "AlertEscalated",
        "RecipientAlerted",
        "AlertAcknowledged",
        "DeadlineSet",
        "DocumentIssued",
    ]
    leader = {"id": "p-leder", "name": "Per Leder"}
    deputy = {"id": "p-stedfortreder", "name": "Siri Stedfortreder"}
    assert [e["data"] for e in events[1:]] == [
        {"fact_id": "a-1:RecipientAlerted", "alert_id": "a-1", "recipient": leader,
         "role": "nearest_leader", "channel": "sms"},
        {"fact_id": "a-1:AlertEscalated", "alert_id": "a-1", "recipient": leader,
         "role": "nearest_leader", "channel": "sms",
         "reason": "Ingen kvittering på 15 minutter"},
        {"fact_id": "a-2:RecipientAlerted", "alert_id": "a-2", "recipient": deputy,
         "role": "deputy", "channel": "email", "replaces_alert_id": "a-1"},
        {"fact_id": "a-2:AlertAcknowledged", "alert_id": "a-2", "recipient": deputy,
         "role": "deputy", "channel": "email"},
        {"fact_id": f"{iid}:deadline:varsle-arbeidstilsynet",
         "deadline_id": "varsle-arbeidstilsynet", "kind": "law",
         "title": "Varsle Arbeidstilsynet", "legal_ref": "aml. § 5-2",
         "due_at": "2026-11-25T19:00:00Z", "due_label": "straks", "responsible": leader,
         "responsible_role": "nearest_leader"},
        {"fact_id": f"{iid}:document:1", "format": "pdf", "as_of_seq": 1,
         "head_hash": first["hash"], "sha256": hashlib.sha256(document).hexdigest(),
         "size": len(document), "filename": f"loggskjema-{iid[:8]}-1.pdf",
         "issued_by": leader, "purpose": "final"},
    ]  # fmt: skip
    assert [e["occurred_at"] for e in events[1:]] == [
        "2026-11-25T18:01:00.000000Z",
        "2026-11-25T18:16:00.000000Z",
        "2026-11-25T18:16:00.000000Z",
        "2026-11-25T18:20:00.000000Z",
        "2026-11-25T18:01:00.000000Z",
        "2026-11-25T18:30:00.000000Z",
    ]
    assert [e["actor"] for e in events[1:]] == [NOTIFY_ACTOR] * 5 + [DOCUMENTS_ACTOR]
    assert all(e["org_id"] == "demo" and e["incident_id"] == iid for e in events)

    report, hashes = store.verify(incident_id)
    assert report.valid and report.length == 7
    assert hashes == [e["hash"] for e in events]

    # The facts also add up to the incident's state.
    incident = store.get(incident_id, "demo")
    assert incident is not None
    alerts = incident.state["alerts"]
    assert alerts["a-1"]["status"] == "escalated"
    assert alerts["a-1"]["escalation_reason"] == "Ingen kvittering på 15 minutter"
    assert alerts["a-2"]["status"] == "acknowledged"
    assert alerts["a-2"]["recipient"] == deputy
    assert incident.state["deadlines"]["varsle-arbeidstilsynet"]["due_at"] == (
        "2026-11-25T19:00:00Z"
    )
    assert [d["purpose"] for d in incident.state["documents"]] == ["final"]
    assert set(incident.fact_ids) == {fact.fact_id for fact, _, _ in facts}
    for _, seq, tracker in facts:
        assert store.process_recorder.has_tracking_id(tracker, seq)
    assert (store.position(ALERTS), store.position(DEADLINES), store.position(DOCUMENTS)) == (
        8,
        6,
        9,
    )
