"""Running kriselogg as a user does: real processes on real ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


def kriselogg_command() -> list[str]:
    """The installed console script, as a user would type it."""
    script = Path(sys.executable).parent / "kriselogg"
    if not script.exists():
        raise RuntimeError(
            f"the 'kriselogg' console script is not installed beside {sys.executable}"
        )
    return [str(script)]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            kriselogg_command() + args,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until_ready(urls: list[str], proc_logs: list[Path], deadline_s: float) -> float:
    """Poll the readiness probes until all answer 200; returns the seconds it took.

    Polling is the point here: a fresh process has no event to await, and the acceptance
    criterion is itself a deadline.
    """
    started = time.monotonic()
    pending = list(urls)
    with httpx.Client(timeout=1.0) as client:
        while pending:
            if time.monotonic() - started > deadline_s:
                logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in proc_logs)
                raise AssertionError(f"not ready within {deadline_s}s: {pending}\n{logs}")
            try:
                if client.get(pending[0]).status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    return time.monotonic() - started


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
