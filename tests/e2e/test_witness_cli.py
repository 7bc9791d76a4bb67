"""Issue 17, items 3 and 6: a safety rep's own witness catches a rewritten or forked log.

Real processes as a user runs them: `kriselogg up` with the demo, the admin's
`kriselogg witness-token`, and `kriselogg witness` on the safety rep's side. The attacker has
the servers: they rewrite an event and rebuild the organisation's tree to match, and the service
signs the rewritten log with its own key. Only the witnesses' kept checkpoints can tell.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import httpx

from tests.e2e.processes import kriselogg_command, running_up
from tests.support import REPORT


def kriselogg(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KRISELOGG_WITNESS_TOKEN": token or ""}
    return subprocess.run(
        kriselogg_command() + list(args), capture_output=True, text=True, env=env, timeout=60
    )


def _token(data: Path, *roles: str) -> str:
    made = kriselogg("token", "--org", "demo", "--person", "p-ln", "--roles", ",".join(roles),
                     "--data", str(data))  # fmt: skip
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def _report(base: str, data: Path) -> str:
    auth = {"Authorization": f"Bearer {_token(data, 'reporter', 'leader')}"}
    response = httpx.post(f"{base}/api/v1/incidents", json=REPORT, headers=auth, timeout=10)
    assert response.status_code == 201, response.text
    incident_id: str = response.json()["id"]
    note = httpx.post(f"{base}/api/v1/incidents/{incident_id}/notes", json={"text": "Ringte"},
                      headers=auth, timeout=10)  # fmt: skip
    assert note.status_code == 201, note.text
    return incident_id


def test_the_witness_accepts_growth_and_catches_a_re_signed_rewrite(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    rep, colleague = tmp_path / "verneombud", tmp_path / "amu-leder"
    with running_up(tmp_path) as base:
        issued = kriselogg("witness-token", "--org", "demo", "--data", str(data))
        assert issued.returncode == 0, issued.stderr
        token = issued.stdout.strip()
        # A witness token opens nothing else.
        nothing = httpx.get(
            f"{base}/api/v1/incidents", headers={"Authorization": f"Bearer {token}"}
        )
        assert nothing.status_code == 403

        _report(base, data)
        first = kriselogg("witness", "--url", base, "--state", str(rep), token=token)
        assert first.returncode == 0, first.stderr
        assert "Første kjøring" in first.stdout and "OK: kriselogg.local/demo har" in first.stdout
        kept = int((rep / "latest").read_text())
        assert kept > 0

        _report(base, data)
        grown = kriselogg("witness", "--url", base, "--state", str(rep), token=token)
        assert grown.returncode == 0, grown.stderr
        assert f"vokst fra {kept} til" in grown.stdout
        size = int((rep / "latest").read_text())

    # The attacker, with the servers stopped: the first event of the organisation rewritten,
    # and the tree rebuilt to match it (as if every hash had been recomputed).
    with sqlite3.connect(data / "incidents" / "log.sqlite") as db:
        db.execute(
            "UPDATE leaves SET hash = randomblob(32) WHERE org_id = 'demo' AND leaf_index = 0"
        )

    with running_up(tmp_path) as base:
        # The service now signs the rewritten log, with its own key. Whether it has grown since
        # (late alerts and deadlines) or not, it does not extend what the safety rep kept.
        caught = kriselogg("witness", "--url", base, "--state", str(rep), token=token)
        assert caught.returncode == 1, (caught.stdout, caught.stderr)
        assert "ADVARSEL" in caught.stderr
        assert int((rep / "latest").read_text()) == size  # the honest checkpoint is kept

        # A colleague who starts witnessing only now sees nothing wrong on their own ...
        fresh = kriselogg("witness", "--url", base, "--state", str(colleague), token=token)
        assert fresh.returncode == 0, fresh.stderr

        # ... and a later, longer log built on the rewrite is still caught by the safety rep.
        _report(base, data)
        later = kriselogg("witness", "--url", base, "--state", str(rep), token=token)
        assert later.returncode == 1, (later.stdout, later.stderr)
        assert "bygger ikke videre" in later.stderr
