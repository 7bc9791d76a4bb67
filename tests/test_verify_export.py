"""scripts/verify_export.py, run as an outsider runs it: `python -I -S`, nothing but the stdlib."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.incidents.settings import IncidentSettings
from services.incidents.store import IncidentLog
from shared.canonical import GENESIS_HASH, canonical_json, event_hash

ACTOR = {"id": "p-ln", "name": "Lise Nord"}
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "verify_export.py"


def _events(tmp_path: Path, notes: list[str]) -> list[dict[str, Any]]:
    """A reported incident with `notes`, in exported form, from the store on SQLite."""
    log = IncidentLog(IncidentSettings(data_dir=tmp_path / "incidents"))
    try:
        incident = log.report(
            org_id="demo",
            actor=ACTOR,
            data={"category": "vold-fysisk", "title": "Slått – ærlig talt", "unit_id": "u-nord",
                  "affected": ["p-ansatt"], "severity": "high"},
            occurred_at=datetime(2026, 11, 25, 18, tzinfo=UTC),
        )  # fmt: skip
        for text in notes:
            log.append(incident.id, "demo", "NoteAdded", actor=ACTOR, data={"text": text})
        # Copies: the store's cached list must not be changed by the tests that forge events.
        return copy.deepcopy(log.exported_events(incident.id))
    finally:
        log.close()


def _write(path: Path, events: list[dict[str, Any]]) -> Path:
    """As `GET .../export` writes an incident: one canonical JSON event per line."""
    path.write_bytes(b"".join(canonical_json(e) + b"\n" for e in events))
    return path


def _relink(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recompute every prev_hash and hash, as a forger who rewrote the chain would."""
    prev = GENESIS_HASH
    for event in events:
        event["prev_hash"] = prev
        event["hash"] = prev = event_hash(event)
    return events


def _verify(path: Path | str) -> subprocess.CompletedProcess[str]:
    # -I -S: no site-packages, no environment, no kriselogg: only the standard library at work.
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


@pytest.fixture
def events(tmp_path: Path) -> list[dict[str, Any]]:
    return _events(tmp_path, ["Notat A", "Notat B", "Notat C"])


@pytest.fixture
def export(tmp_path: Path, events: list[dict[str, Any]]) -> Path:
    return _write(tmp_path / "export.jsonl", events)


def test_intact_export_is_valid(export: Path, events: list[dict[str, Any]]) -> None:
    result = _verify(export)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"VALID 4 events, head {events[-1]['hash']}\n"


def test_line_separators_inside_a_note_do_not_split_its_event(tmp_path: Path) -> None:
    # Canonical JSON keeps U+2028, U+2029 and U+0085 raw; they are not line ends of JSON Lines.
    events = _events(tmp_path, ["før\u2028etter", "a\u2029b\x85c"])
    export = _write(tmp_path / "export.jsonl", events)
    assert "\u2028".encode() in export.read_bytes()
    result = _verify(export)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("VALID 3 events, head ")


def test_one_changed_byte_is_reported_at_its_seq(export: Path) -> None:
    lines = export.read_bytes().split(b"\n")
    assert b'"seq":3' in lines[2] and b"Notat B" in lines[2]
    lines[2] = lines[2].replace(b"Notat B", b"Notat X")
    export.write_bytes(b"\n".join(lines))
    result = _verify(export)
    assert result.returncode == 1
    assert result.stdout == "INVALID at seq 3 (line 3): hash does not match content\n"


def test_a_removed_event_is_reported_at_its_seq(export: Path) -> None:
    lines = export.read_bytes().split(b"\n")
    del lines[1]
    export.write_bytes(b"\n".join(lines))
    result = _verify(export)
    assert result.returncode == 1
    assert result.stdout == "INVALID at seq 2 (line 2): expected seq 2, found 3\n"


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_unreadable_file_is_a_one_line_message(tmp_path: Path, what: str) -> None:
    path = tmp_path / "missing.jsonl" if what == "missing" else tmp_path
    result = _verify(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"verify_export: cannot read {path}: ")
    assert result.stderr.count("\n") == 1


def test_without_a_file_it_says_how_to_call_it() -> None:
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b"", b"\n", b"\n  \n"])
def test_empty_export_is_invalid(tmp_path: Path, content: bytes) -> None:
    # An empty chain links up trivially, but every incident starts with its report.
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(content)
    result = _verify(empty)
    assert result.returncode == 1
    assert result.stdout.startswith("INVALID: no events")


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (b"[1,2]", "not a JSON object"),
        (b'"IncidentReported"', "not a JSON object"),
        (b"{not json", "not JSON"),
        (b'{"seq": 5, "x": NaN}', "not JSON"),
        (b'{"seq": 5, "x": ' + b"[" * 100_000, "not JSON"),  # too deep for json.loads
        (b'{"seq": 5, "x": "\xff"}', "not UTF-8"),
        (b'{"seq": 5, "seq": 5}', "the key 'seq' appears twice"),
        (b'{"prev_hash": "HEAD", "hash": "x"}', "seq is missing or not an integer"),
        (b'{"seq": "5", "prev_hash": "HEAD", "hash": "x"}', "seq is missing or not an integer"),
        (b'{"seq": 5, "hash": "x"}', "prev_hash is missing or not a string"),
        (b'{"seq": 5, "prev_hash": "HEAD", "hash": null}', "hash is missing or not a string"),
    ],
)
def test_a_line_that_is_not_an_event_is_named(export: Path, line: bytes, said: str) -> None:
    intact = export.read_bytes()
    head = json.loads(intact.split(b"\n")[-2])["hash"]
    # After a blank line, which is skipped but counted: line numbers are those of the file.
    export.write_bytes(intact + b"\n" + line.replace(b"HEAD", head.encode()) + b"\n")
    result = _verify(export)
    assert result.returncode == 1
    assert result.stdout == f"INVALID at line 6: {said}\n"


def test_a_line_that_cannot_be_hashed_is_named(export: Path) -> None:
    # Parses and links, but a lone surrogate cannot be written as UTF-8: no hash can match.
    intact = export.read_bytes()
    head = json.loads(intact.split(b"\n")[-2])["hash"]
    line = b'{"seq":5,"prev_hash":"%s","hash":"x","x":"\\ud800"}' % head.encode()
    export.write_bytes(intact + line + b"\n")
    result = _verify(export)
    assert result.returncode == 1
    assert result.stdout == "INVALID at seq 5 (line 5): cannot be hashed as canonical JSON\n"


@pytest.mark.parametrize("where", ["top", "nested"])
def test_a_duplicate_key_does_not_verify(export: Path, where: str) -> None:
    """A forged value put before the hashed one: Python reads the last, other parsers the first.

    The line hashes correctly as Python reads it, so it is the duplicate that must fail it.
    """
    lines = export.read_bytes().split(b"\n")
    original = json.loads(lines[2])
    if where == "top":
        lines[2] = b'{"data":{"text":"Forfalsket"},' + lines[2][1:]
        said = "the key 'data' appears twice"
    else:
        lines[2] = lines[2].replace(b'"data":{', b'"data":{"text":"Forfalsket",', 1)
        said = "the key 'text' appears twice"
    assert json.loads(lines[2]) == original  # invisible to a parser that keeps the last value
    export.write_bytes(b"\n".join(lines))
    result = _verify(export)
    assert result.returncode == 1
    assert result.stdout == f"INVALID at line 3: {said}\n"


@pytest.mark.parametrize("seq", [True, 1.0])
def test_a_first_seq_that_only_equals_one_does_not_verify(
    tmp_path: Path, events: list[dict[str, Any]], seq: object
) -> None:
    # True == 1 == 1.0 in Python; the chain is relinked, so only the type of seq is wrong.
    events[0]["seq"] = seq
    export = _write(tmp_path / "forged.jsonl", _relink(events))
    result = _verify(export)
    assert result.returncode == 1
    assert result.stdout == "INVALID at line 1: seq is missing or not an integer\n"


def test_a_chain_that_does_not_start_with_the_report_does_not_verify(
    tmp_path: Path, events: list[dict[str, Any]]
) -> None:
    # The report cut off, the rest renumbered and relinked: it links up, but is no incident.
    tail = events[1:]
    for seq, event in enumerate(tail, start=1):
        event["seq"] = seq
    export = _write(tmp_path / "tail.jsonl", _relink(tail))
    result = _verify(export)
    assert result.returncode == 1
    assert result.stdout == "INVALID at seq 1 (line 1): the first event is not IncidentReported\n"
