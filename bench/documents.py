"""Log form benchmark (budget: a 1,000-entry log form as .docx in ≤ 1 s).

Starts `kriselogg up` as a subprocess (what users run), writes an incident with 1,000 measures,
notes and corrections over HTTP, then times over HTTP:

* `GET .../log.docx`: verify over the bus, export, our own chain check, context, docxtpl render,
  DocumentIssued published and acknowledged by the stream, the bytes returned;
* `GET .../log.pdf`: the same plus LibreOffice headless.

Beside them, in the same run and on the same events: `log_context` alone and raw `docxtpl`
rendering of that same context with the same template (the floor).

Run from the repository root:  /work/venv/bin/python bench/documents.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.resources import files
from io import BytesIO
from pathlib import Path

import httpx
from common import bearer, leader_token, ready_process
from docxtpl import DocxTemplate

from services.documents.domain import log_context, render_docx
from shared.infra import free_port

REPORT = {
    "category": "vold-fysisk",
    "title": "Slått og truet av bruker under hjemmebesøk",
    "place": "Storgata 1, Tromsø",
    "unit_id": "u-nord",
    "affected": ["p-ansatt"],
    "severity": "high",
    "facts": {"injury": True},
}


@contextmanager
def kriselogg_up(data: Path, key: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "KRISELOGG_SECRET_KEY": key, "KRISELOGG_LOG_LEVEL": "WARNING"}
    with ready_process(["up", "--data", str(data), "--port", str(port)], env, "kriselogg up"):
        yield f"http://127.0.0.1:{port}"


def stats(label: str, seconds: list[float], extra: str = "") -> None:
    ms = sorted(s * 1000 for s in seconds)
    print(
        f"{label:<48} n={len(ms):<3} median {statistics.median(ms):8.1f} ms"
        f"   min {ms[0]:8.1f}   max {ms[-1]:8.1f}{extra}"
    )


async def write_incident(client: httpx.AsyncClient, entries: int) -> str:
    body = {**REPORT, "occurred_at": datetime.now(UTC).isoformat()}
    incident_id: str = (await client.post("/api/v1/incidents", json=body)).json()["id"]
    base = f"/api/v1/incidents/{incident_id}"
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        async with sem:
            if i % 10 == 9:
                response = await client.post(
                    f"{base}/notes", json={"text": f"Notat {i}: ringte pårørende, æøå & <ok>"}
                )
            else:
                response = await client.post(
                    f"{base}/measures",
                    json={"title": f"Tiltak {i}: fulgte opp", "status": "done", "note": "Utført"},
                )
            assert response.status_code == 201, response.text

    await asyncio.gather(*(one(i) for i in range(entries)))
    for seq in (10, 20, 30):  # a few corrections, shown beside the entry they correct
        response = await client.post(
            f"{base}/corrections", json={"seq": seq, "reason": "Feil klokkeslett"}
        )
        assert response.status_code == 201
    return incident_id


async def main(entries: int, rounds: int, pdf_rounds: int) -> None:
    key = secrets.token_urlsafe(32)
    token = leader_token(key)
    template = (files("services.documents") / "loggskjema.docx").read_bytes()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {entries} entries")
    with tempfile.TemporaryDirectory() as tmp, kriselogg_up(Path(tmp) / "data", key) as url:
        headers = bearer(token)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
            t0 = time.perf_counter()
            incident_id = await write_incident(client, entries)
            print(f"wrote the incident in {time.perf_counter() - t0:.1f} s")
            export = await client.get(f"/api/v1/incidents/{incident_id}/export")
            events = [json.loads(line) for line in export.text.splitlines()]
            print(f"events in the log: {len(events)}")
            path = f"/api/v1/documents/incidents/{incident_id}/log"

            docx_times: list[float] = []
            size = 0
            for _ in range(rounds + 1):  # the first is a warm-up
                t0 = time.perf_counter()
                response = await client.get(f"{path}.docx")
                docx_times.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text
                size = len(response.content)
            stats("HTTP GET log.docx (verify+export+render+fact)", docx_times[1:],
                  f"   {size / 1024:.0f} KiB")  # fmt: skip

            pdf_times: list[float] = []
            for _ in range(pdf_rounds):
                t0 = time.perf_counter()
                response = await client.get(f"{path}.pdf")
                pdf_times.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    print(f"PDF not measured: {response.status_code} {response.text[:200]}")
                    break
                size = len(response.content)
            if pdf_times and response.status_code == 200:
                stats("HTTP GET log.pdf (the same + LibreOffice)", pdf_times,
                      f"   {size / 1024:.0f} KiB")  # fmt: skip

    context_times, render_times, raw_times = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        context = log_context(events)
        context_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        render_docx(template, context)
        render_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        document = DocxTemplate(BytesIO(template))
        document.render(context, autoescape=True)
        document.save(BytesIO())
        raw_times.append(time.perf_counter() - t0)
    stats("in process: log_context (events -> context)", context_times)
    stats("in process: render_docx (context -> bytes)", render_times)
    stats("floor: raw docxtpl render + save, same context", raw_times)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pdf-rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.entries, args.rounds, args.pdf_rounds))
