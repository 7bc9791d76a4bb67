"""Running kriselogg as a user does: real processes on real ports."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from services.cli import READY_LINE

# pid -> (set when the process prints its ready line, its log file)
_watched: dict[int, tuple[threading.Event, Path]] = {}


def kriselogg_command() -> list[str]:
    """The installed console script, as a user would type it."""
    script = Path(sys.executable).parent / "kriselogg"
    if not script.exists():
        raise RuntimeError(
            f"the 'kriselogg' console script is not installed beside {sys.executable}"
        )
    return [str(script)]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `kriselogg ARGS`; its output goes to `log`, and its ready line is watched for."""
    proc = subprocess.Popen(
        kriselogg_command() + args,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ready = threading.Event()
    _watched[proc.pid] = (ready, log)

    def copy_output() -> None:
        assert proc.stdout is not None
        with log.open("wb") as out:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if line.startswith(READY_LINE.encode()):
                    ready.set()

    threading.Thread(target=copy_output, daemon=True).start()
    return proc


def wait_until_ready(
    procs: list[subprocess.Popen[bytes]], urls: list[str], deadline_s: float
) -> float:
    """Await every process's ready line, then check each probe answers 200 once.

    Returns the seconds from the call until all were ready.
    """
    started = time.monotonic()
    for proc in procs:
        ready, log = _watched[proc.pid]
        left = max(0.0, deadline_s - (time.monotonic() - started))
        if not ready.wait(left):
            raise AssertionError(
                f"not ready within {deadline_s}s (exit code {proc.poll()}):\n"
                + log.read_text(errors="replace")[-3000:]
            )
    took = time.monotonic() - started
    with httpx.Client(timeout=5.0) as client:
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, f"{url}: {response.status_code} {response.text}"
    return took


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def start_up(
    tmp_path: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`kriselogg up` with the demo on a free port, as a user starts it: (process, URL, log)."""
    from shared.infra import free_port

    port = free_port()
    log = tmp_path / "up.log"
    proc = start(
        ["up", "--data", str(tmp_path / "data"), "--port", str(port)],
        {"KRISELOGG_NATS_URL": "", **(env or {})},
        log,
    )
    return proc, f"http://127.0.0.1:{port}", log


@contextlib.contextmanager
def running_up(tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`kriselogg up` (start_up) until ready; yields its URL, and on leaving stops it with Ctrl-C
    and expects a clean exit (the log's tail in the failure otherwise)."""
    proc, base, log = start_up(tmp_path, env)
    try:
        wait_until_ready([proc], [f"{base}/readyz"], deadline_s=30)
        yield base
    finally:
        code = stop(proc, signal.SIGINT)
        assert code == 0, log.read_text(errors="replace")[-3000:]
