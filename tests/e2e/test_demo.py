"""`kriselogg demo` tells the violence-report story against a running `up`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from tests.e2e.processes import kriselogg_command, start_up, stop, wait_until_ready


def test_demo_walks_the_story_on_a_running_instance(tmp_path: Path) -> None:
    proc, base, log = start_up(tmp_path)
    try:
        wait_until_ready([proc], [f"{base}/readyz/notify", f"{base}/readyz/incidents"], 20)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRISELOGG_")}
        demo = subprocess.run(
            [*kriselogg_command(), "demo", "--url", base, "--data", str(tmp_path / "data")],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
    finally:
        stop(proc, signal.SIGINT)
    assert demo.returncode == 0, demo.stdout + demo.stderr + log.read_text()
    out = demo.stdout
    for line in (
        r"IncidentReported\s+Ali Ansatt: Slått av bruker",
        r"RecipientAlerted\s+Lise Nord",
        r"RecipientAlerted\s+Vera Verneombud",
        r"AlertAcknowledged\s+Lise Nord",
        r"MeasureLogged\s+Lise Nord: ",
        r"NoteAdded\s+Lise Nord: Ali er sendt til legevakten",
    ):
        assert re.search(line, out), f"{line!r} not in:\n{out}"
    assert re.search(r"The log is intact: \d+ events, head [0-9a-f]{64}", out), out
    assert f"{base}/hendelser/" in out


def test_demo_without_the_instance_key_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRISELOGG_")}
    demo = subprocess.run(
        [*kriselogg_command(), "demo", "--data", str(tmp_path / "nowhere")],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert demo.returncode == 2
    assert "no instance key" in demo.stderr and "Traceback" not in demo.stderr
    assert not (tmp_path / "nowhere").exists()  # it made no key of its own
