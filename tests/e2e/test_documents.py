"""Issue 6 end to end: the log form as Word and PDF from the verified log, logged when issued."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
from io import BytesIO
from pathlib import Path
from typing import Any
from uuid import UUID

import docx
import pytest

from services.incidents.store import IncidentLog
from tests.incidents.tampering import delete_from
from tests.support import Stack

NOTE = "Blåmerker på armen; «slag» mot hode & skulder <ikke innlagt>"


def docx_text(content: bytes) -> str:
    """Every text of the document, body, tables, headers and footers, as python-docx reads it."""
    document = docx.Document(BytesIO(content))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.extend(cell.text for cell in row.cells)
    for section in document.sections:
        parts.extend(p.text for p in section.footer.paragraphs)
        for table in section.footer.tables:
            for row in table.rows:
                parts.extend(cell.text for cell in row.cells)
    return "\n".join(parts)


async def logged(stack: Stack) -> tuple[str, list[dict[str, Any]]]:
    incident_id = (await stack.report())["id"]
    await stack.settle(incident_id)
    base = f"/api/v1/incidents/{incident_id}"
    for title in ("Trakk seg unna og tilkalte hjelp", "Ringte politiet", "Fulgte til legevakt"):
        written = await stack.client.post(
            f"{base}/measures", json={"title": title, "status": "done"}, headers=stack.auth()
        )
        assert written.status_code == 201
    note = await stack.client.post(f"{base}/notes", json={"text": NOTE}, headers=stack.auth())
    assert note.status_code == 201
    events = (await stack.timeline(incident_id))["events"]
    politi = next(e for e in events if e["data"].get("title") == "Ringte politiet")
    correction = await stack.client.post(
        f"{base}/corrections",
        json={"seq": politi["seq"], "reason": "Det var legevakten som ringte politiet"},
        headers=stack.auth(),
    )
    assert correction.status_code == 201
    return incident_id, (await stack.timeline(incident_id))["events"]


async def download(stack: Stack, incident_id: str, fmt: str, **params: str) -> bytes:
    response = await stack.client.get(
        f"/api/v1/documents/incidents/{incident_id}/log.{fmt}", params=params, headers=stack.auth()
    )
    assert response.status_code == 200, response.text
    return response.content


async def test_the_word_log_form_holds_every_entry_and_the_head_hash(stack: Stack) -> None:
    incident_id, events = await logged(stack)
    response = await stack.client.get(
        f"/api/v1/documents/incidents/{incident_id}/log.docx", headers=stack.auth()
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    text = docx_text(response.content)
    assert "Slått og truet av bruker under hjemmebesøk" in text  # the title, letters intact
    for title in ("Trakk seg unna og tilkalte hjelp", "Ringte politiet", "Fulgte til legevakt"):
        assert title in text
    assert NOTE in text  # < and & survive (autoescape)
    politi = next(e for e in events if e["data"].get("title") == "Ringte politiet")
    assert f"Rettelse av nr. {politi['seq']}" in text
    assert "Det var legevakten som ringte politiet" in text
    head = events[-1]["hash"]
    assert head in text and response.headers["X-Kriselogg-Head-Hash"] == head
    assert "Lise Nord" in text and "Vera Verneombud" in text  # who was alerted
    assert "folketrygdloven § 13-14" in text  # the deadlines, law labelled with its citation

    # Issuing it is itself in the log, with the file's SHA-256.
    digest = hashlib.sha256(response.content).hexdigest()
    await stack.alerts.wait_for_events(
        lambda seen: any(e["type"] == "DocumentIssued" for e in seen[incident_id])
    )
    issued = [
        e for e in (await stack.timeline(incident_id))["events"] if e["type"] == "DocumentIssued"
    ]
    assert [(e["data"]["sha256"], e["data"]["format"]) for e in issued] == [(digest, "docx")]
    assert issued[0]["data"]["as_of_seq"] == events[-1]["seq"]
    assert issued[0]["actor"]["id"] == "system:documents"
    assert issued[0]["data"]["issued_by"]["id"] == "p-ln"  # the person who took the copy


async def test_as_of_leaves_out_what_came_later(stack: Stack) -> None:
    incident_id, events = await logged(stack)
    legevakt = next(e for e in events if e["data"].get("title") == "Fulgte til legevakt")
    before = events[legevakt["seq"] - 2]  # the event just before it
    text = docx_text(await download(stack, incident_id, "docx", as_of=str(before["recorded_at"])))
    assert "Ringte politiet" in text
    assert "Fulgte til legevakt" not in text
    assert str(before["hash"]) in text and str(events[-1]["hash"]) not in text


async def test_the_pdf_holds_the_same_entries_and_hash(stack: Stack, tmp_path: Path) -> None:
    assert shutil.which("soffice"), "LibreOffice is missing: run scripts/install-system-packages"
    assert shutil.which("pdftotext"), "pdftotext is missing: run scripts/install-system-packages"
    incident_id, events = await logged(stack)
    content = await download(stack, incident_id, "pdf")
    assert content.startswith(b"%PDF")
    path = tmp_path / "log.pdf"
    path.write_bytes(content)
    text = await asyncio.to_thread(
        subprocess.run, ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True
    )
    pdf = " ".join(text.stdout.decode().split())  # the layout wraps long lines
    for title in ("Trakk seg unna og tilkalte hjelp", "Ringte politiet", "Fulgte til legevakt"):
        assert title in pdf
    assert "Blåmerker på armen" in pdf
    assert str(events[-1]["hash"])[:32] in pdf.replace(" ", "")


async def test_a_tampered_store_gets_409_and_no_document(stack: Stack) -> None:
    incident_id, events = await logged(stack)
    head = int(events[-1]["seq"])
    anchors = stack.apps["documents"].state.anchors
    assert await asyncio.to_thread(anchors.wait_for, "demo", incident_id, head, 20)
    store: IncidentLog = stack.apps["incidents"].state.store
    delete_from(store, UUID(incident_id), head - 1)  # an intruder removes the last two events
    response = await stack.client.get(
        f"/api/v1/documents/incidents/{incident_id}/log.docx", headers=stack.auth()
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["first_invalid_seq"] == head - 1
    remaining = (await stack.timeline(incident_id))["events"]
    assert all(e["type"] != "DocumentIssued" for e in remaining)


async def test_another_organisation_gets_404(stack: Stack) -> None:
    incident_id = (await stack.report())["id"]
    for fmt in ("docx", "pdf"):
        response = await stack.client.get(
            f"/api/v1/documents/incidents/{incident_id}/log.{fmt}",
            headers=stack.auth("other_org"),
        )
        assert response.status_code == 404
    listed = await stack.client.get(
        f"/api/v1/documents/incidents/{incident_id}", headers=stack.auth("other_org")
    )
    assert listed.status_code == 404


async def test_closing_archives_the_final_word_and_pdf(stack: Stack) -> None:
    incident_id, _ = await logged(stack)
    closed = await stack.client.post(
        f"/api/v1/incidents/{incident_id}/close",
        json={"summary": "Fulgt opp; saken er anmeldt."},
        headers=stack.auth(),
    )
    assert closed.status_code == 201
    closing_seq = closed.json()["seq"]

    def finals(seen: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        return [
            e for e in seen[incident_id]
            if e["type"] == "DocumentIssued" and e["data"]["purpose"] == "final"
        ]  # fmt: skip

    await stack.alerts.wait_for_events(lambda seen: len(finals(seen)) == 2, timeout=90)
    listed = await stack.client.get(
        f"/api/v1/documents/incidents/{incident_id}", headers=stack.auth()
    )
    assert listed.status_code == 200
    files = {f["filename"]: f for f in listed.json()["files"]}
    assert set(files) == {
        f"loggskjema-endelig-{closing_seq}.docx",
        f"loggskjema-endelig-{closing_seq}.pdf",
    }
    by_format = {e["data"]["format"]: e["data"] for e in finals(stack.alerts.events)}
    for fmt, data in by_format.items():
        assert files[f"loggskjema-endelig-{closing_seq}.{fmt}"]["sha256"] == data["sha256"]
        assert data["as_of_seq"] == closing_seq
    word = await stack.client.get(
        f"/api/v1/documents/incidents/{incident_id}/archive/loggskjema-endelig-{closing_seq}.docx",
        headers=stack.auth(),
    )
    assert "Fulgt opp; saken er anmeldt." in docx_text(word.content)


async def test_without_libreoffice_a_pdf_is_503_naming_the_package(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support import running_stack

    monkeypatch.setenv("KRISELOGG_SOFFICE", "soffice-is-not-installed")
    async with running_stack(nats_url, tmp_path) as stack:
        incident_id = (await stack.report())["id"]
        await stack.settle(incident_id)
        response = await stack.client.get(
            f"/api/v1/documents/incidents/{incident_id}/log.pdf", headers=stack.auth()
        )
        assert response.status_code == 503
        assert "libreoffice-writer" in response.json()["detail"]
        word = await stack.client.get(
            f"/api/v1/documents/incidents/{incident_id}/log.docx", headers=stack.auth()
        )
        assert word.status_code == 200
