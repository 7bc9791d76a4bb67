"""`kriselogg up` logs ids, never what people wrote or who they are (at INFO and above).

A whole journey runs over HTTP against `kriselogg up` as a user starts it: a report through the
portal, the alerts, a guidance search through the portal (which calls the API in process with
the words in the query string), an acknowledgement, a measure, notes, the incident page and the
Word log. Every value anyone typed carries a marker of its own; neither the markers, the values,
nor the names, e-mail addresses and phone numbers of the directory may appear in the output.

`--no-demo`, with the demo directory imported: the demo's login banner names its people on
purpose, and this test reads every line the process wrote.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, quote_plus
from zoneinfo import ZoneInfo

import httpx

from services.cli import READY_LINE, demo_directory
from shared.auth import issue_token
from shared.infra import free_port
from shared.subjects import Subjects
from tests.e2e.portal_client import logged_in
from tests.e2e.processes import kriselogg_command, start, stop, wait_until_ready
from tests.support import BusWatcher

DIRECTORY = Path(__file__).parents[2] / "services" / "demo_directory.yaml"


def _typed(field: str) -> tuple[str, str]:
    """(marker, value): a value as a person would type it, with a marker found in any encoding."""
    marker = f"Zq{field}{uuid.uuid4().hex[:10]}"
    return marker, f"{marker} Ærlig talt, Kari Østbø sa at det gjorde vondt"


def _spellings(text: str) -> set[str]:
    """The ways a log line could carry `text`: as is, in a URL, and JSON-escaped."""
    return {text, quote(text), quote_plus(text), quote(text, safe=""), json.dumps(text)[1:-1]}


async def test_up_logs_ids_and_never_what_people_wrote(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "up.log"
    env = {"KRISELOGG_NATS_URL": "", "KRISELOGG_LOG_LEVEL": "INFO"}
    proc = start(["up", "--data", str(data), "--port", str(port), "--no-demo"], env, log)
    fields = "title place description affected query apiquery measure note apinote invalid"
    typed = {field: _typed(field) for field in fields.split()}
    watcher = BusWatcher()
    try:
        await asyncio.to_thread(wait_until_ready, [proc], [f"{base}/readyz"], 30)
        bus = re.search(r"bus: (nats://\S+)", log.read_text())
        assert bus, log.read_text()
        names = Subjects("kriselogg")
        await watcher.start(bus.group(1), names.stream, names.all_orgs("incident"))

        # The directory goes in as an administrator does it: with the CLI and the instance's key.
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("KRISELOGG_")}
        imported = await asyncio.to_thread(
            subprocess.run,
            [*kriselogg_command(), "directory", "import", str(DIRECTORY), "--org", "demo",
             "--url", base, "--data", str(data)],
            capture_output=True, text=True, timeout=60, env=clean_env,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stdout + imported.stderr
        key = (data / "secret.key").read_text().strip()

        def token(person: str, name: str, role: str) -> str:
            return issue_token(key, org_id="demo", person_id=person, name=name, roles=[role])

        leader_token = token("p-ln", "Lise Nord", "leader")
        bearer = {"Authorization": f"Bearer {leader_token}"}

        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            # Portal sessions, opened in the instance's content store as its login does.
            reporter_token = token("p-ansatt", "Ali Ansatt", "reporter")
            reporter = await logged_in(client, data, key, reporter_token)
            leader = await logged_in(client, data, key, leader_token)
            now = datetime.now(ZoneInfo("Europe/Oslo")).strftime("%Y-%m-%dT%H:%M")
            reported = await client.post(
                "/meld",
                data={
                    "title": typed["title"][1], "category": "vold-fysisk",
                    "place": typed["place"][1], "occurred_at": now, "unit_id": "u-nord",
                    "affected_text": typed["affected"][1], "affected_me": "true",
                    "fact_injury": "true", "severity": "high",
                    "description": typed["description"][1],
                },
                headers=reporter,
            )  # fmt: skip
            assert reported.status_code == 303, reported.text
            # The reporter lands on the receipt: /hendelser/<id>/kvittering.
            incident = reported.headers["location"].split("/")[2]
            await watcher.wait_for(lambda alerts: len(alerts[incident]) >= 2, timeout=30)
            mine = next(
                e["data"]["alert_id"]
                for e in watcher.by_incident[incident]
                if e["data"]["recipient"]["id"] == "p-ln"
            )

            # The leader searches the guidance, in the portal and on the API.
            searched = await client.get("/sok", params={"q": typed["query"][1]}, headers=leader)
            assert searched.status_code == 200, searched.text
            api_search = await client.get(
                "/api/v1/guidance/search", params={"q": typed["apiquery"][1]}, headers=bearer
            )
            assert api_search.status_code == 200, api_search.text

            acked = await client.post(
                f"/hendelser/{incident}/varsler/{mine}/bekreft", headers=leader
            )
            assert acked.status_code == 303, acked.text
            guidance = (
                await client.get("/api/v1/guidance/subthemes/vold-fysisk", headers=bearer)
            ).json()
            measure = next(p for p in guidance["phases"] if p["id"] == "akutt")["measures"][0]
            logged = await client.post(
                f"/hendelser/{incident}/tiltak",
                data={"measure_id": measure["id"], "title": measure["title"],
                      "note": typed["measure"][1], "status": "done"},
                headers=leader,
            )  # fmt: skip
            assert logged.status_code == 303, logged.text
            noted = await client.post(
                f"/hendelser/{incident}/notater", data={"text": typed["note"][1]}, headers=leader
            )
            assert noted.status_code == 303, noted.text
            api_note = await client.post(
                f"/api/v1/incidents/{incident}/notes",
                json={"text": typed["apinote"][1]},
                headers=bearer,
            )
            assert api_note.status_code == 201, api_note.text
            # A refused write quotes nothing it was sent in the log either.
            refused = await client.post(
                f"/api/v1/incidents/{incident}/measures",
                json={"title": typed["invalid"][1], "status": "not-a-status"},
                headers=bearer,
            )
            assert refused.status_code == 422, refused.text

            await watcher.wait_for_events(
                lambda events: (
                    {"AlertAcknowledged", "MeasureLogged"} <= {e["type"] for e in events[incident]}
                    and [e["type"] for e in events[incident]].count("NoteAdded") >= 2
                ),
                timeout=30,
            )
            page = await client.get(f"/hendelser/{incident}", headers=leader)
            assert page.status_code == 200 and typed["title"][1] in page.text
            timeline = await client.get(f"/api/v1/incidents/{incident}/timeline", headers=bearer)
            assert timeline.status_code == 200, timeline.text
            word = await client.get(
                f"/api/v1/documents/incidents/{incident}/log.docx", headers=bearer
            )
            assert word.status_code == 200, word.text
    finally:
        await watcher.stop()
        code = stop(proc, signal.SIGINT)
    output = log.read_text(errors="replace")
    assert code == 0, output[-3000:]

    # Not vacuous: the process did write its log, at INFO, and it names ids.
    assert READY_LINE in output, output
    info = [line for line in output.splitlines() if re.search(r" INFO [\w.]+: ", line)]
    assert info, f"no INFO line in the log of `kriselogg up`:\n{output}"
    assert mine in output, f"the alert id {mine} is not in the log:\n{output}"

    people = demo_directory()["people"]
    personal = [p[k] for p in people for k in ("name", "email", "mobile") if p.get(k)]
    personal += ["Kari Østbø"]  # a name inside what people wrote
    for marker, value in typed.values():
        personal += [marker, value]
    leaked = sorted(
        {text for text in personal for spelling in _spellings(text) if spelling in output}
    )
    assert leaked == [], f"personal data in the log of `kriselogg up`: {leaked}\n{output}"
    assert not any(marker.lower() in output.lower() for marker, _ in typed.values()), output
