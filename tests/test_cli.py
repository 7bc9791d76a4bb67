"""The CLI tells the truth: `--data` everywhere, no new keys but from `up`, one-line errors.

Most commands run in process with typer's CliRunner; the cases of the acceptance that a user
meets first (no key, no server) also run the installed `kriselogg` script as a real process.
`verify` is tested in tests/test_verifiers.py, together with scripts/verify_export.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from services.cli import cli
from shared.auth import verify_token
from shared.infra import free_port

KEY = "a test key that is long enough for HS256"
DIRECTORY = Path(__file__).parents[1] / "services" / "demo_directory.yaml"
KRISELOGG = Path(sys.executable).parent / "kriselogg"


@pytest.fixture(autouse=True)
def _no_instance_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No KRISELOGG_* from the machine, and a working directory of the test's own."""
    for name in [n for n in os.environ if n.startswith("KRISELOGG_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), env=env)
    # CliRunner catches what the command raises, so a crash would not show as a traceback in
    # `output`: anything but the SystemExit of an exit code is one.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def _one_line_error(result: Result | subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The command failed with `code` and said why on one line of stderr, and nothing else."""
    if isinstance(result, Result):
        returncode, stdout, stderr = result.exit_code, result.stdout, result.stderr
    else:
        returncode, stdout, stderr = result.returncode, result.stdout, result.stderr
    assert returncode == code, stdout + stderr
    assert "Traceback" not in stdout + stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("kriselogg "), stderr
    return lines[0]


def _data_dir(parent: Path) -> Path:
    """A data directory as `kriselogg up` leaves it: with its key file."""
    data = parent / "instance"
    data.mkdir()
    (data / "secret.key").write_text("the key of the instance, long enough for HS256\n")
    return data


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def _kriselogg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user types it, without any KRISELOGG_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRISELOGG_")}
    return subprocess.run(
        [str(KRISELOGG), *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env
    )


# --- token ----------------------------------------------------------------------------------


@pytest.fixture(params=["data_option", "data_env", "secret_key"])
def key_args(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[list[str], str]]:
    """(arguments, key): the key from --data, KRISELOGG_DATA_DIR or KRISELOGG_SECRET_KEY."""
    if request.param == "secret_key":
        monkeypatch.setenv("KRISELOGG_SECRET_KEY", KEY)
        yield ["--data", str(tmp_path / "nowhere")], KEY  # the key file is not needed then
        assert not (tmp_path / "nowhere").exists()
        return
    data = _data_dir(tmp_path)
    key = (data / "secret.key").read_text().strip()
    if request.param == "data_env":
        monkeypatch.setenv("KRISELOGG_DATA_DIR", str(data))
        yield [], key
    else:
        yield ["--data", str(data)], key


def test_token_verifies_with_the_instance_key(key_args: tuple[list[str], str]) -> None:
    args, key = key_args
    before = time.time()
    result = _run(
        "token", "--org", "demo", "--person", "p-ln", "--roles", "leader", "--name", "Lise Nord",
        *args,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    principal = verify_token(key, result.stdout.strip())
    assert principal.person_id == "p-ln"
    assert principal.org_id == "demo"
    assert principal.roles == frozenset({"leader"})
    assert principal.name == "Lise Nord"
    # The default lifetime is 12 hours.
    assert before < principal.expires_at <= time.time() + 12 * 3600 + 1


def test_token_refuses_an_unknown_role(tmp_path: Path) -> None:
    data = _data_dir(tmp_path)
    before = _files(tmp_path)
    result = _run(
        "token", "--org", "demo", "--person", "p-ln", "--roles", "leader,boss",
        "--data", str(data),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "unknown roles: boss" in result.output
    assert "eyJ" not in result.output  # every JWT starts with the base64 of '{"'
    assert _files(tmp_path) == before


# --- no key, no data directory: exit 2, one line, and no key of its own ---------------------

COMMANDS_WITH_KEY = {
    "token": ["token", "--org", "demo", "--person", "p-ln"],
    "demo": ["demo", "--url", "http://127.0.0.1:9"],
    "directory import": ["directory", "import", str(DIRECTORY), "--org", "demo"],
}


@pytest.mark.parametrize("command", COMMANDS_WITH_KEY)
def test_without_a_data_dir_the_real_cli_says_so_and_makes_no_key(
    command: str, tmp_path: Path
) -> None:
    """Run where no instance is: the default ./kriselogg-data is not made, nor a key in it."""
    line = _one_line_error(_kriselogg(*COMMANDS_WITH_KEY[command], cwd=tmp_path))
    assert line.startswith(f"kriselogg {command}: no instance key")
    assert "kriselogg-data" in line and "--data" in line and "KRISELOGG_SECRET_KEY" in line
    assert _files(tmp_path) == []


@pytest.mark.parametrize("command", COMMANDS_WITH_KEY)
@pytest.mark.parametrize("where", ["missing", "empty"])
def test_a_data_dir_without_its_key_is_refused(command: str, where: str, tmp_path: Path) -> None:
    data = tmp_path / "elsewhere"
    if where == "empty":
        data.mkdir()
    result = _run(*COMMANDS_WITH_KEY[command], "--data", str(data))
    line = _one_line_error(result)
    assert f"kriselogg {command}: no instance key" in line and str(data) in line
    assert _files(tmp_path) == ([data] if where == "empty" else [])


def test_an_empty_key_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("")
    result = _run("token", "--org", "demo", "--person", "p", "--data", str(tmp_path))
    assert "empty key file" in _one_line_error(result)


def test_serve_makes_no_key_of_its_own(tmp_path: Path) -> None:
    result = _run("serve", "content", "--data", str(tmp_path / "content"))
    line = _one_line_error(result)
    assert "no instance key" in line and str(tmp_path / "content") in line
    assert _files(tmp_path) == []


def test_up_names_a_data_dir_it_cannot_use(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    line = _one_line_error(_run("up", "--data", str(tmp_path / "a-file")))
    assert "is a file, not a directory" in line


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    data = _data_dir(tmp_path)
    result = _run(
        "token", "--org", "demo", "--person", "p", "--data", str(data),
        env={"KRISELOGG_ESCALATION_SECONDS": "soon"},
    )  # fmt: skip
    assert "KRISELOGG_ESCALATION_SECONDS" in _one_line_error(result)


# --- --data is the key of every command that needs one -------------------------------------


@pytest.mark.parametrize(
    "command", [["up"], ["serve"], ["demo"], ["token"], ["directory", "import"]]
)
def test_every_command_that_needs_the_instance_takes_data(command: list[str]) -> None:
    result = _run(*command, "--help")
    assert result.exit_code == 0
    assert "--data" in result.output and "KRISELOGG_DATA_DIR" in result.output


@pytest.mark.parametrize("command", ["demo", "directory import"])
def test_with_the_key_from_data_an_absent_server_is_one_clear_line(
    command: str, tmp_path: Path
) -> None:
    """The key is found in --data; then nothing listens at --url: said so, on one line."""
    data = _data_dir(tmp_path)
    url = f"http://127.0.0.1:{free_port()}"  # free: nothing listens there
    args = [*COMMANDS_WITH_KEY[command], "--url", url, "--data", str(data)]  # the last --url wins
    line = _one_line_error(_kriselogg(*args, cwd=tmp_path), code=1)
    assert f"nothing answers at {url}" in line and "kriselogg up" in line, line


def test_a_url_that_is_no_url_is_named(tmp_path: Path) -> None:
    data = _data_dir(tmp_path)
    result = _run(
        "directory", "import", str(DIRECTORY), "--org", "demo",
        "--url", "localhost:8000", "--data", str(data),
    )  # fmt: skip
    assert "--url 'localhost:8000' is not an http(s) URL" in _one_line_error(result)


# --- directory import: the file is checked before anything is sent -------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("org: {id: demo\npeople: []\n", "line 2, column 7"),  # an unclosed flow mapping
        ("org:\n  id: demo\n units: []\n", "line 3, column 2"),  # a bad indentation
        ("org: {id: demo}\npeople:\n  - {id: p-1, name: 'Kari\n", "line 4"),  # open quote
    ],
)
def test_bad_yaml_is_named_with_its_file_and_line(text: str, where: str, tmp_path: Path) -> None:
    data = _data_dir(tmp_path)
    file = tmp_path / "katalog.yaml"
    file.write_text(text)
    result = _run("directory", "import", str(file), "--org", "demo", "--data", str(data))
    line = _one_line_error(result)
    assert f"{file}, {where}" in line and "not valid YAML" in line, line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read {file}: No such file or directory"),
        (b"\xff\xfe org", "{file}: not UTF-8 text"),
        (b"- just\n- a list\n", "{file}: not a directory"),
    ],
)
def test_a_file_that_is_no_directory_is_named(
    content: bytes | None, expected: str, tmp_path: Path
) -> None:
    data = _data_dir(tmp_path)
    file = tmp_path / "directory.yaml"
    if content is not None:
        file.write_bytes(content)
    result = _run("directory", "import", str(file), "--org", "demo", "--data", str(data))
    assert expected.format(file=file) in _one_line_error(result)


def test_catalogue_check_names_a_missing_directory(tmp_path: Path) -> None:
    result = _run("catalogue", "check", "--dir", str(tmp_path / "nowhere"))
    assert "is not a directory" in _one_line_error(result)


# --- help ------------------------------------------------------------------------------------


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[list[str]]:
    """Every command and group under `command` (typer's own click: a group has `commands`)."""
    yield list(path)
    if isinstance(getattr(command, "commands", None), dict):
        for name, sub in command.commands.items():
            yield from _command_paths(sub, (*path, name))


def test_no_help_shows_a_bool_placeholder() -> None:
    paths = list(_command_paths(typer.main.get_command(cli)))
    assert ["directory", "import"] in paths and ["up"] in paths  # the whole tree is walked
    for path in paths:
        result = _run(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
        assert "--help" in result.output
    up_help = _run("up", "--help").output
    assert "--no-demo " in up_help and "--no-demo <" not in up_help  # a flag, without a value
