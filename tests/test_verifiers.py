"""The two verifiers of an exported incident, held to the same lines for the same findings.

`kriselogg verify FILE` (run in process with typer's CliRunner) and scripts/verify_export.py (run
as an outsider runs it: `python -I -S`, so nothing but the standard library can be at work) get
every case below, and each case states once what both must answer: exit code, stdout, stderr.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.cli import cli
from services.incidents.settings import IncidentSettings
from services.incidents.store import IncidentLog
from shared.canonical import GENESIS_HASH, canonical_json, event_hash

ACTOR = {"id": "p-ln", "name": "Lise Nord"}
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "verify_export.py"


# --- the two tools behind one adapter ---------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Verifier:
    name: str  # how the tool names itself on stderr
    run: Callable[[list[str]], Outcome]  # the arguments after the command

    def __call__(self, *args: Path | str) -> Outcome:
        outcome = self.run([str(a) for a in args])
        assert "Traceback" not in outcome.stdout + outcome.stderr
        return outcome


def _cli(args: list[str]) -> Outcome:
    result = CliRunner().invoke(cli, ["verify", *args])
    # CliRunner catches what the command raises, so a crash would not show as a traceback in
    # its output: anything but the SystemExit of an exit code is one.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def _script(args: list[str]) -> Outcome:
    # -I -S: no site-packages, no environment, no kriselogg: only the standard library at work.
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


@pytest.fixture(params=["cli", "script"])
def verify(request: pytest.FixtureRequest) -> Verifier:
    if request.param == "cli":
        return Verifier("kriselogg verify", _cli)
    return Verifier("verify_export", _script)


def _invalid(line: str) -> Outcome:
    return Outcome(1, line + "\n", "")


# --- exports ----------------------------------------------------------------------------------


def _incident(data_dir: Path, notes: list[str]) -> list[dict[str, Any]]:
    """A reported incident with `notes`, in exported form, from the store on SQLite."""
    log = IncidentLog(IncidentSettings(data_dir=data_dir))
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


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """A report and three notes; built once, every test gets its own copy through `events`."""
    return _incident(tmp_path_factory.mktemp("incidents"), ["Notat A", "Notat B", "Notat C"])


@pytest.fixture
def events(reported: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return copy.deepcopy(reported)


def _write(path: Path, events: list[dict[str, Any]]) -> Path:
    """As `GET .../export` writes an incident: one canonical JSON event per line."""
    path.write_bytes(b"".join(canonical_json(e) + b"\n" for e in events))
    return path


@pytest.fixture
def export(tmp_path: Path, events: list[dict[str, Any]]) -> Path:
    return _write(tmp_path / "export.jsonl", events)


def _relink(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recompute every prev_hash and hash, as a forger who rewrote the chain would."""
    prev = GENESIS_HASH
    for event in events:
        event["prev_hash"] = prev
        event["hash"] = prev = event_hash(event)
    return events


# --- intact -----------------------------------------------------------------------------------


def test_intact_export_is_valid(
    verify: Verifier, export: Path, events: list[dict[str, Any]]
) -> None:
    assert verify(export) == Outcome(0, f"VALID 4 events, head {events[-1]['hash']}\n", "")


def test_line_separators_inside_a_note_do_not_split_its_event(
    verify: Verifier, tmp_path: Path
) -> None:
    # Canonical JSON keeps U+2028, U+2029 and U+0085 raw; they are not line ends of JSON Lines.
    events = _incident(tmp_path / "incidents", ["før\u2028etter", "a\u2029b\x85c"])
    export = _write(tmp_path / "export.jsonl", events)
    assert "\u2028".encode() in export.read_bytes()
    assert verify(export) == Outcome(0, f"VALID 3 events, head {events[-1]['hash']}\n", "")


# --- damaged chains ---------------------------------------------------------------------------


def test_one_changed_byte_is_reported_at_its_seq(verify: Verifier, export: Path) -> None:
    lines = export.read_bytes().split(b"\n")
    assert b'"seq":3' in lines[2] and b"Notat B" in lines[2]
    lines[2] = lines[2].replace(b"Notat B", b"Notat X")
    export.write_bytes(b"\n".join(lines))
    assert verify(export) == _invalid("INVALID at seq 3 (line 3): hash does not match content")


def test_a_removed_event_is_reported_at_its_seq(verify: Verifier, export: Path) -> None:
    lines = export.read_bytes().split(b"\n")
    del lines[1]
    export.write_bytes(b"\n".join(lines))
    assert verify(export) == _invalid("INVALID at seq 2 (line 2): expected seq 2, found 3")


@pytest.mark.parametrize("seq", [True, 1.0, "1", None])
def test_a_first_seq_that_is_not_an_integer_does_not_verify(
    verify: Verifier, tmp_path: Path, events: list[dict[str, Any]], seq: object
) -> None:
    # True == 1 == 1.0 in Python; the chain is relinked, so only the type of seq is wrong.
    events[0]["seq"] = seq
    export = _write(tmp_path / "forged.jsonl", _relink(events))
    assert verify(export) == _invalid("INVALID at seq 1 (line 1): seq is not an integer")


def test_a_chain_that_does_not_start_with_the_report_does_not_verify(
    verify: Verifier, tmp_path: Path, events: list[dict[str, Any]]
) -> None:
    # The report cut off, the rest renumbered and relinked: it links up, but is no incident.
    tail = events[1:]
    for seq, event in enumerate(tail, start=1):
        event["seq"] = seq
    export = _write(tmp_path / "tail.jsonl", _relink(tail))
    assert verify(export) == _invalid(
        "INVALID at seq 1 (line 1): the first event is not IncidentReported"
    )


# --- lines that are no (intact) event ---------------------------------------------------------

SEQ_5 = "INVALID at seq 5 (line 6)"


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (b"[1,2]", "INVALID at line 6: not a JSON object"),
        (b'"IncidentReported"', "INVALID at line 6: not a JSON object"),
        (b"{not json", "INVALID at line 6: not JSON"),
        (b'{"seq": 5, "x": NaN}', "INVALID at line 6: not JSON"),
        (b'{"seq": 5, "x": ' + b"[" * 100_000, "INVALID at line 6: not JSON"),  # too deep
        (b'{"seq": 5, "x": "\xff"}', "INVALID at line 6: not UTF-8"),
        (b'{"seq": 5, "seq": 5}', "INVALID at line 6: the key 'seq' appears twice"),
        (b'{"seq": 5, "x": {"y": 1, "y": 2}}', "INVALID at line 6: the key 'y' appears twice"),
        (b'{"prev_hash": "HEAD", "hash": "x"}', f"{SEQ_5}: seq is missing"),
        (b'{"seq": "5", "prev_hash": "HEAD", "hash": "x"}', f"{SEQ_5}: seq is not an integer"),
        (b'{"seq": 6, "prev_hash": "HEAD", "hash": "x"}', f"{SEQ_5}: expected seq 5, found 6"),
        (b'{"seq": 5, "hash": "x"}', f"{SEQ_5}: prev_hash does not link"),
        (b'{"seq": 5, "prev_hash": "HEAD", "hash": null}', f"{SEQ_5}: hash does not match content"),
        # Parse, and link to the chain, but no canonical JSON can be written for them: a lone
        # surrogate is not UTF-8, and 1e400 reads as infinity.
        (
            b'{"seq":5,"prev_hash":"HEAD","hash":"x","x":"\\ud800"}',
            f"{SEQ_5}: cannot be hashed as canonical JSON",
        ),
        (
            b'{"seq":5,"prev_hash":"HEAD","hash":"x","x":1e400}',
            f"{SEQ_5}: cannot be hashed as canonical JSON",
        ),
    ],
)
def test_a_bad_line_after_the_chain_is_named(
    verify: Verifier, export: Path, line: bytes, said: str
) -> None:
    intact = export.read_bytes()
    head = json.loads(intact.split(b"\n")[-2])["hash"]
    # After a blank line, which is skipped but counted: line numbers are those of the file.
    export.write_bytes(intact + b"\n" + line.replace(b"HEAD", head.encode()) + b"\n")
    assert verify(export) == _invalid(said)


@pytest.mark.parametrize(("where", "key"), [("top", "data"), ("nested", "text")])
def test_a_duplicate_key_does_not_verify(
    verify: Verifier, export: Path, where: str, key: str
) -> None:
    """A forged value put before the hashed one: Python reads the last, other parsers the first.

    The line hashes correctly as Python reads it, so it is the duplicate that must fail it.
    """
    lines = export.read_bytes().split(b"\n")
    original = json.loads(lines[2])
    if where == "top":
        lines[2] = b'{"data":{"text":"Forfalsket"},' + lines[2][1:]
    else:
        lines[2] = lines[2].replace(b'"data":{', b'"data":{"text":"Forfalsket",', 1)
    assert json.loads(lines[2]) == original  # invisible to a parser that keeps the last value
    export.write_bytes(b"\n".join(lines))
    assert verify(export) == _invalid(f"INVALID at line 3: the key '{key}' appears twice")


@pytest.mark.parametrize("content", [b"", b"\n", b"\n  \n"])
def test_empty_export_is_invalid(verify: Verifier, tmp_path: Path, content: bytes) -> None:
    # An empty chain links up trivially, but every incident starts with its report.
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(content)
    assert verify(empty) == _invalid(
        "INVALID: no events (an incident starts with IncidentReported)"
    )


# --- no file to verify ------------------------------------------------------------------------


@pytest.mark.parametrize(("what", "code"), [("missing", errno.ENOENT), ("directory", errno.EISDIR)])
def test_unreadable_file_is_a_one_line_message(
    verify: Verifier, tmp_path: Path, what: str, code: int
) -> None:
    path = tmp_path / "missing.jsonl" if what == "missing" else tmp_path
    said = f"{verify.name}: cannot read {path}: {os.strerror(code)}\n"
    assert verify(path) == Outcome(2, "", said)


def test_without_a_file_it_says_how_to_call_it(verify: Verifier) -> None:
    outcome = verify()
    assert (outcome.code, outcome.stdout) == (2, "")
    assert outcome.stderr.lower().startswith("usage: ")
