"""The `token` command of the CLI, run in process with typer's CliRunner.

`verify` is tested in tests/test_verifiers.py, together with scripts/verify_export.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from services.cli import cli
from shared.auth import verify_token


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
