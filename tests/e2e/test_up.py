"""Acceptance 1 of issue 2: `kriselogg up` serves everything on one port; Ctrl-C stops it all."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import psutil

from tests.e2e.processes import start_up, stop, wait_until_ready

SERVICES = ("content", "incidents", "documents", "notify")


def test_up_serves_every_service_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    proc, base, log = start_up(tmp_path)
    try:
        probes = [f"{base}/{kind}/{name}" for name in SERVICES for kind in ("healthz", "readyz")]
        took = wait_until_ready([proc], probes, deadline_s=20)
        assert took < 20
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("nats-server" in c.name() for c in children), "embedded NATS not started"
        output = log.read_text()
        assert base in output and "Lise Nord" in output  # the URL and a demo login
        page = httpx.get(f"{base}/", timeout=5)
        assert page.status_code == 200 and "kriselogg" in page.text
    finally:
        code = stop(proc, signal.SIGINT)
    assert code == 0, log.read_text()
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left running after Ctrl-C: {[p.name() for p in alive]}"
    # The console stays readable: no library chatter (colour codes, a line per task) on stop.
    after_ready = log.read_text().split("ready on", 1)[1]
    assert "\x1b[" not in after_ready and "is being executed" not in after_ready, after_ready
