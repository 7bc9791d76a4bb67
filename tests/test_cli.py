"""The `token` and `verify` commands of the CLI, run in process with typer's CliRunner."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from services.cli import cli
from services.incidents.settings import IncidentSettings
from services.incidents.store import IncidentLog
from shared.auth import verify_token
from shared.canonical import GENESIS_HASH, canonical_json, event_hash

ACTOR = {"id": "p-ln", "name": "Lise Nord"}


def _run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    # CliRunner catches what the command raises, so a crash would not show as a traceback in
    # `output`: anything but the SystemExit of an exit code is one.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


# --- token ----------------------------------------------------------------------------------


@pytest.fixture(params=["data_dir", "secret_key"])
def key(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The instance key from KRISELOGG_SECRET_KEY, or "" for the key file that the command
    creates in its data dir (read with `_instance_key` once the command has made it)."""
    monkeypatch.setenv("KRISELOGG_DATA_DIR", str(tmp_path))
    if request.param == "secret_key":
        monkeypatch.setenv("KRISELOGG_SECRET_KEY", "a test key that is long enough for HS256")
        return "a test key that is long enough for HS256"
    monkeypatch.delenv("KRISELOGG_SECRET_KEY", raising=False)
    return ""  # the key file does not exist until `token` runs


def _instance_key(key: str, data_dir: Path) -> str:
    return key or (data_dir / "secret.key").read_text().strip()


def test_token_verifies_with_the_instance_key(key: str, tmp_path: Path) -> None:
    before = time.time()
    result = _run(
        "token", "--org", "demo", "--person", "p-ln", "--roles", "leader", "--name", "Lise Nord"
    )
    assert result.exit_code == 0, result.output
    principal = verify_token(_instance_key(key, tmp_path), result.stdout.strip())
    assert principal.person_id == "p-ln"
    assert principal.org_id == "demo"
    assert principal.roles == frozenset({"leader"})
    assert principal.name == "Lise Nord"
    # The default lifetime is 12 hours.
    assert before < principal.expires_at <= time.time() + 12 * 3600 + 1


def test_token_refuses_an_unknown_role(key: str, tmp_path: Path) -> None:
    result = _run("token", "--org", "demo", "--person", "p-ln", "--roles", "leader,boss")
    assert result.exit_code != 0
    assert "unknown roles: boss" in result.output
    assert "eyJ" not in result.output  # every JWT starts with the base64 of '{"'
    # Refused before the key is read, so no key file is left behind.
    assert not (tmp_path / "secret.key").exists()


# --- verify ---------------------------------------------------------------------------------


def _export(tmp_path: Path, notes: list[str]) -> Path:
    """An incident with `notes`, exported as `GET .../export` writes it: canonical JSON lines."""
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
        events = log.exported_events(incident.id)
    finally:
        log.close()
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"".join(canonical_json(e) + b"\n" for e in events))
    return path


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return _export(tmp_path, ["Notat A", "Notat B", "Notat C"])


def test_intact_export_is_valid(export: Path) -> None:
    result = _run("verify", str(export))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("VALID: 4 events, head ")


def test_line_separators_inside_a_note_do_not_split_its_event(tmp_path: Path) -> None:
    # Canonical JSON keeps U+2028, U+2029 and U+0085 raw; they are not line ends of JSON Lines.
    export = _export(tmp_path, ["før\u2028etter", "a\u2029b\x85c"])
    result = _run("verify", str(export))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("VALID: 3 events, head ")


def test_one_changed_byte_is_reported_at_its_seq(export: Path) -> None:
    lines = export.read_bytes().splitlines(keepends=True)
    assert b'"seq":3' in lines[2] and b"Notat B" in lines[2]
    lines[2] = lines[2].replace(b"Notat B", b"Notat X")
    export.write_bytes(b"".join(lines))
    result = _run("verify", str(export))
    assert result.exit_code == 1
    assert result.output.startswith("INVALID: first bad seq 3: hash does not match content")


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (b"[1,2]", "line 6 is not a JSON object"),
        (b'"IncidentReported"', "line 6 is not a JSON object"),
        (b"{not json", "line 6 is not JSON"),
        (b'{"seq": 5, "x": NaN}', "line 6 is not JSON"),
        (b'{"seq": 5, "x": "\xff"}', "line 6 is not UTF-8"),
        (b'{"seq": 5, "seq": 5}', "line 6 has the key 'seq' twice"),
        (b'{"seq": 5, "x": {"y": 1, "y": 2}}', "line 6 has the key 'y' twice"),
        # Parses, and links to the chain (HEAD is replaced), but cannot be written as UTF-8.
        (
            b'{"seq":5,"prev_hash":"HEAD","x":"\\ud800"}',
            "line 6 cannot be hashed as canonical JSON",
        ),
    ],
)
def test_a_line_that_is_not_an_event_is_named(export: Path, line: bytes, said: str) -> None:
    intact = export.read_bytes()
    head = json.loads(intact.splitlines()[-1])["hash"]
    # After a blank line, which is skipped but counted: line numbers are those of the file.
    export.write_bytes(intact + b"\n" + line.replace(b"HEAD", head.encode()) + b"\n")
    result = _run("verify", str(export))
    assert result.exit_code == 1
    assert result.output == f"INVALID: {said}\n"


def test_empty_export_is_invalid(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n")
    result = _run("verify", str(empty))
    assert result.exit_code == 1
    assert result.output.startswith("INVALID: no events")


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_unreadable_file_is_a_one_line_message(tmp_path: Path, what: str) -> None:
    path = tmp_path / "missing.jsonl" if what == "missing" else tmp_path
    result = _run("verify", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"kriselogg verify: cannot read {path}: ")
    assert result.stderr.count("\n") == 1


def _relink(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recompute every prev_hash and hash, as a forger who rewrote the chain would."""
    prev = GENESIS_HASH
    for event in events:
        event["prev_hash"] = prev
        event["hash"] = prev = event_hash(event)
    return events


def _events(export: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in export.read_bytes().split(b"\n") if line]


def _write(export: Path, events: list[dict[str, Any]]) -> None:
    export.write_bytes(b"".join(canonical_json(e) + b"\n" for e in events))


@pytest.mark.parametrize("where", ["top", "nested"])
def test_a_duplicate_key_does_not_verify(export: Path, where: str) -> None:
    """A forged value put before the hashed one: Python reads the last, other parsers the first.

    The line hashes correctly as Python reads it, so it is the duplicate that must fail it.
    """
    lines = export.read_bytes().split(b"\n")
    original = json.loads(lines[2])
    if where == "top":
        lines[2] = b'{"data":{"text":"Forfalsket"},' + lines[2][1:]
        said = "line 3 has the key 'data' twice"
    else:
        lines[2] = lines[2].replace(b'"data":{', b'"data":{"text":"Forfalsket",', 1)
        said = "line 3 has the key 'text' twice"
    assert json.loads(lines[2]) == original  # invisible to a parser that keeps the last value
    export.write_bytes(b"\n".join(lines))
    result = _run("verify", str(export))
    assert result.exit_code == 1
    assert result.output == f"INVALID: {said}\n"


@pytest.mark.parametrize("seq", [True, 1.0, "1", None])
def test_a_first_seq_that_is_not_an_integer_does_not_verify(export: Path, seq: object) -> None:
    # True == 1 == 1.0 in Python; the chain is relinked, so only the type of seq is wrong.
    events = _events(export)
    events[0]["seq"] = seq
    _write(export, _relink(events))
    result = _run("verify", str(export))
    assert result.exit_code == 1
    assert result.output == "INVALID: first bad seq 1: seq is not an integer\n"


def test_a_chain_that_does_not_start_with_the_report_does_not_verify(export: Path) -> None:
    # The report cut off, the rest renumbered and relinked: it links up, but is no incident.
    tail = _events(export)[1:]
    for seq, event in enumerate(tail, start=1):
        event["seq"] = seq
    _write(export, _relink(tail))
    result = _run("verify", str(export))
    assert result.exit_code == 1
    assert result.output == "INVALID: first bad seq 1: the first event is not IncidentReported\n"
