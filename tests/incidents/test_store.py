"""The incident store on SQLite and PostgreSQL: tamper evidence, concurrency, export."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from services.incidents.settings import IncidentSettings
from services.incidents.store import FairLock, IncidentLog
from shared.canonical import canonical_json, verify_chain
from tests.incidents.tampering import flip_byte

ACTOR = {"id": "p-ln", "name": "Lise Nord"}
REPO = Path(__file__).resolve().parents[2]


def new_incident(store: IncidentLog, notes: int = 0) -> UUID:
    incident = store.report(
        org_id="demo",
        actor=ACTOR,
        data={"category": "vold-fysisk", "title": "Slått – ærlig talt", "unit_id": "u-nord",
              "affected": ["p-ansatt"], "severity": "high"},
        occurred_at=datetime(2026, 11, 25, 18, tzinfo=UTC),
    )  # fmt: skip
    for i in range(notes):
        store.append(incident.id, "demo", "NoteAdded", actor=ACTOR, data={"text": f"Notat {i}"})
    return incident.id


def test_intact_log_verifies(store: IncidentLog) -> None:
    incident_id = new_incident(store, notes=5)
    report, _ = store.verify(incident_id)
    assert report.valid and report.length == 6
    assert report.head_hash == store.exported_events(incident_id)[-1]["hash"]


def test_edited_stored_bytes_are_reported_at_that_seq(store: IncidentLog) -> None:
    incident_id = new_incident(store, notes=5)
    # Verified once first: what verify remembers between runs must not hide a later change.
    assert store.verify(incident_id)[0].valid
    flip_byte(store, incident_id, 4)
    report, _ = store.verify(incident_id)
    assert not report.valid
    assert report.first_invalid_seq == 4
    assert report.length == 3
    assert report.reason is not None and "cannot be read" in report.reason


def test_concurrent_leaders_all_succeed_in_one_unbroken_chain(store: IncidentLog) -> None:
    incident_id = new_incident(store)

    def write(writer: int) -> None:
        for i in range(10):
            store.append(incident_id, "demo", "NoteAdded", actor=ACTOR,
                         data={"text": f"leder {writer} notat {i}"})  # fmt: skip

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    events = store.exported_events(incident_id)
    assert [e["seq"] for e in events] == list(range(1, 82))
    texts = [e["data"]["text"] for e in events[1:]]
    assert len(set(texts)) == 80
    for writer in range(8):  # each writer's own notes keep their order
        mine = [t for t in texts if t.startswith(f"leder {writer} ")]
        assert mine == [f"leder {writer} notat {i}" for i in range(10)]
    assert store.verify(incident_id)[0].valid


def test_export_verifies_with_a_standard_library_script(store: IncidentLog, tmp_path: Path) -> None:
    incident_id = new_incident(store, notes=3)
    export = tmp_path / "incident.jsonl"
    export.write_bytes(
        b"".join(canonical_json(e) + b"\n" for e in store.exported_events(incident_id))
    )
    script = REPO / "scripts" / "verify_export.py"
    # -I -S: no site-packages, no environment: only the standard library can be at work.
    ok = subprocess.run(
        [sys.executable, "-I", "-S", script, export], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VALID 4 events" in ok.stdout

    lines = export.read_text("utf-8").splitlines()
    lines[2] = lines[2].replace("Notat 1", "Notat X")
    export.write_text("\n".join(lines) + "\n", "utf-8")
    bad = subprocess.run(
        [sys.executable, "-I", "-S", script, export], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "INVALID at seq 3" in bad.stdout
    assert not verify_chain([]).first_invalid_seq


def test_two_replicas_writing_to_one_incident_lose_nothing(
    store: IncidentLog, settings: IncidentSettings
) -> None:
    """Each replica writes on its cached incident; a stale one loses the version race, reloads."""
    other = IncidentLog(settings)
    try:
        incident_id = new_incident(store)
        for i in range(5):
            for name, replica in (("a", store), ("b", other)):
                written = replica.append(incident_id, "demo", "NoteAdded", actor=ACTOR,
                                         data={"text": f"{name}{i}"})  # fmt: skip
                assert written is not None and written.version == 2 + 2 * i + (name == "b")
        texts = [e["data"]["text"] for e in other.exported_events(incident_id)[1:]]
        assert texts == [f"{name}{i}" for i in range(5) for name in "ab"]
        assert other.verify(incident_id)[0].valid
        # A read that must be current reads past its replica's cache.
        assert len(store.get(incident_id, "demo").state["notes"]) == 10  # type: ignore[union-attr]
    finally:
        other.close()


def test_snapshots_are_taken_in_the_background_and_serve_a_cold_load(
    settings: IncidentSettings,
) -> None:
    settings = settings.model_copy(update={"snapshot_interval": 5})
    log = IncidentLog(settings)
    try:
        incident_id = new_incident(log, notes=11)
        log.flush_snapshots()
        assert log.snapshots is not None
        versions = [s.originator_version for s in log.snapshots.get(incident_id)]
        assert versions == [5, 10]
        warm = log.get(incident_id, "demo")
        assert warm is not None
    finally:
        log.close()
    cold = IncidentLog(settings)  # a restarted service: nothing cached
    try:
        loaded = cold.get(incident_id, "demo")
        assert loaded is not None and loaded.version == 12
        assert loaded.state == warm.state
        assert [n["text"] for n in loaded.state["notes"]] == [f"Notat {i}" for i in range(11)]
    finally:
        cold.close()


def test_writers_waiting_for_one_incident_take_turns_in_arrival_order() -> None:
    lock = FairLock()
    order: list[int] = []
    with lock:
        with lock:  # reentrant: the writer's own nested reads
            pass
        threads = []
        for n in range(5):
            thread = threading.Thread(target=_take, args=(lock, order, n))
            thread.start()
            threads.append(thread)
            assert lock.wait_for_waiters(n + 1, timeout=5), "a writer never queued for the lock"
    for thread in threads:
        thread.join(timeout=5)
    assert order == [0, 1, 2, 3, 4]


def _take(lock: FairLock, order: list[int], n: int) -> None:
    with lock:
        order.append(n)


def test_the_locks_of_idle_incidents_are_not_kept(store: IncidentLog) -> None:
    """A long-running service touches thousands of incidents; their locks must not pile up."""
    for _ in range(50):
        new_incident(store, notes=1)
    gc.collect()
    assert len(store._locks) == 0  # the service's memory: nothing held once no one writes
