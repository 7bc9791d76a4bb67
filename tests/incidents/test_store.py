"""The incident store on SQLite and PostgreSQL: tamper evidence, concurrency, export."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from services.incidents.settings import IncidentSettings
from services.incidents.store import IncidentLog
from shared.canonical import canonical_json, verify_chain
from tests.incidents.tampering import flip_byte

ACTOR = {"id": "p-ln", "name": "Lise Nord"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IncidentLog]:
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        settings = IncidentSettings(data_dir=tmp_path, event_store="postgres", postgres_dsn=dsn)
    else:
        settings = IncidentSettings(data_dir=tmp_path)
    log = IncidentLog(settings)
    yield log
    log.close()


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
