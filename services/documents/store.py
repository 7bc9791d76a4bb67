"""The documents service's own store (SQLite in its data dir): the anchors of incident heads.

Anchors live here, not beside the incident events, so that whoever can rewrite the event store
still cannot make a truncated or rewritten log verify (docs/architecture.md, "The hash chain
and the anchors").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from services.documents.domain import log_context, render_docx
from shared.canonical import recorded_by, verify_chain
from shared.clock import SYSTEM_CLOCK, Clock
from shared.schemas import Actor, DocumentFactV1
from shared.sqlite import SqliteStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS anchors (
  incident_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,
  anchored_at TEXT NOT NULL);
"""


class AnchorStore(SqliteStore):
    def __init__(self, path: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(path, SCHEMA)
        self.clock = clock
        self._changed = threading.Condition()

    def anchor(self, org_id: str, incident_id: str, seq: int, hash_: str) -> None:
        """Keep the highest seq seen; events may arrive out of order or twice."""
        with self._lock:
            self._db.execute(
                "INSERT INTO anchors VALUES (?, ?, ?, ?, ?) ON CONFLICT (incident_id) DO UPDATE "
                "SET seq = excluded.seq, hash = excluded.hash, anchored_at = excluded.anchored_at "
                "WHERE excluded.seq > anchors.seq",
                (incident_id, org_id, seq, hash_, self.clock.now().isoformat()),
            )
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, org_id: str, incident_id: str, seq: int, timeout: float) -> bool:
        """Block until the incident is anchored at `seq` or later (for callers that must know)."""

        def reached() -> bool:
            latest = self.latest(org_id, incident_id)
            return latest is not None and latest[0] >= seq

        with self._changed:
            return self._changed.wait_for(reached, timeout)

    def latest(self, org_id: str, incident_id: str) -> tuple[int, str, str] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT seq, hash, anchored_at FROM anchors WHERE incident_id = ? AND org_id = ?",
                (incident_id, org_id),
            ).fetchone()
        return (int(row[0]), str(row[1]), str(row[2])) if row else None


class Archive:
    """The final log forms of closed incidents, as files under the data dir, per organisation."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._changed = threading.Condition()

    def _dir(self, org_id: str, incident_id: str) -> Path:
        # Ids are validated by the API (UUIDs) and the bus contracts before they get here; the
        # check keeps a path from ever leaving the archive all the same.
        for part in (org_id, incident_id):
            if not part or "/" in part or part.startswith("."):
                raise ValueError(f"bad path component {part!r}")
        return self.root / org_id / incident_id

    def put(self, org_id: str, incident_id: str, filename: str, content: bytes) -> Path:
        folder = self._dir(org_id, incident_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_bytes(content)
        partial.replace(path)  # atomic: a reader never sees half a file
        with self._changed:
            self._changed.notify_all()
        return path

    def wait_for(self, org_id: str, incident_id: str, filename: str, timeout: float) -> bool:
        """Block until the file is archived (for callers that must know, e.g. tests)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.has(org_id, incident_id, filename), timeout)

    def has(self, org_id: str, incident_id: str, filename: str) -> bool:
        return (self._dir(org_id, incident_id) / filename).is_file()

    def list(self, org_id: str, incident_id: str) -> list[dict[str, Any]] | None:
        folder = self._dir(org_id, incident_id)
        if not folder.is_dir():
            return None
        return [
            {
                "filename": p.name,
                "size": p.stat().st_size,
                "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                "stored_at": datetime.fromtimestamp(p.stat().st_mtime, UTC).isoformat(),
            }
            for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith(".partial")
        ]

    def read(self, org_id: str, incident_id: str, filename: str) -> bytes | None:
        if "/" in filename or filename.startswith("."):
            return None
        path = self._dir(org_id, incident_id) / filename
        return path.read_bytes() if path.is_file() else None


# --- the edges both the API and the bus consumer use: LibreOffice, and the incidents service ----


class ConverterMissing(Exception):
    """No LibreOffice on this machine: PDF is unavailable, Word still works."""


class ConversionFailed(Exception):
    pass


class PdfConverter:
    """.docx → PDF with LibreOffice headless, a few at a time, each with its own profile.

    LibreOffice refuses a second instance on one user profile, so every worker slot has its own
    profile directory; a conversion that hangs is killed after the timeout.
    """

    def __init__(self, command: str, work_dir: Path, workers: int, timeout: float) -> None:
        self.command = command
        self.work_dir = work_dir
        self.timeout = timeout
        self._slots: asyncio.Queue[int] = asyncio.Queue()
        for slot in range(workers):
            self._slots.put_nowait(slot)

    def available(self) -> bool:
        return shutil.which(self.command) is not None

    async def convert(self, docx: bytes) -> bytes:
        executable = shutil.which(self.command)
        if executable is None:
            raise ConverterMissing(
                f"Fant ikke '{self.command}'. Installer LibreOffice Writer for å lage PDF, "
                "på Debian eller Ubuntu: apt-get install libreoffice-writer-nogui "
                "fonts-crosextra-carlito fonts-crosextra-caladea. Word-filen kan lastes ned."
            )
        slot = await self._slots.get()
        try:
            with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
                source = Path(tmp) / "loggskjema.docx"
                source.write_bytes(docx)
                profile = (self.work_dir / f"lo-profile-{slot}").resolve()
                proc = await asyncio.create_subprocess_exec(
                    executable, f"-env:UserInstallation=file://{profile}", "--headless",
                    "--norestore", "--convert-to", "pdf", "--outdir", tmp, str(source),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip
                try:
                    async with asyncio.timeout(self.timeout):
                        output, _ = await proc.communicate()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
                    raise ConversionFailed(
                        f"LibreOffice brukte mer enn {self.timeout:.0f} s"
                    ) from None
                result = Path(tmp) / "loggskjema.pdf"
                if proc.returncode != 0 or not result.is_file():
                    raise ConversionFailed(
                        f"LibreOffice feilet ({proc.returncode}): {output.decode()[-300:]}"
                    )
                return result.read_bytes()
        finally:
            self._slots.put_nowait(slot)


class IncidentUnavailable(Exception):
    pass


class NotAllowed(Exception):
    """Incidents refused the caller (a role rule): documents refuses too."""


class IncidentSource:
    """Reads an incident's verification and export from the incidents service over HTTP.

    It forwards the caller's own token, so incidents applies the same organisation and role
    rules as when the caller asks it directly.
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _get(self, path: str, token: str) -> httpx.Response:
        try:
            return await self.client.get(path, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise IncidentUnavailable(type(exc).__name__) from exc

    async def verify(self, incident_id: str, token: str) -> dict[str, Any] | None:
        response = await self._get(f"/api/v1/incidents/{incident_id}/verify", token)
        if response.status_code == 404:
            return None
        if response.status_code == 403:
            raise NotAllowed(response.json().get("detail", ""))
        if response.status_code == 409:  # events that no longer decrypt or parse
            detail = response.json().get("detail", "the stored events cannot be read")
            return {"valid": False, "first_invalid_seq": None, "reason": detail}
        if response.status_code != 200:
            raise IncidentUnavailable(f"verify answered {response.status_code}")
        body: dict[str, Any] = response.json()
        return body

    async def check_read(self, incident_id: str, token: str) -> None:
        """Raise unless the caller may read the incident (the same rule as incidents applies)."""
        response = await self._get(f"/api/v1/incidents/{incident_id}", token)
        if response.status_code == 404:
            raise NotFound(incident_id)
        if response.status_code == 403:
            raise NotAllowed(response.json().get("detail", ""))
        if response.status_code != 200:
            raise IncidentUnavailable(f"incident answered {response.status_code}")

    async def export(self, incident_id: str, token: str) -> list[dict[str, Any]] | None:
        response = await self._get(f"/api/v1/incidents/{incident_id}/export", token)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise IncidentUnavailable(f"export answered {response.status_code}")
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]


class NotFound(Exception):
    pass


class BrokenChain(Exception):
    def __init__(self, first_invalid_seq: int | None, reason: str | None) -> None:
        self.first_invalid_seq = first_invalid_seq
        self.reason = reason or "the chain does not verify"
        super().__init__(self.reason)


@dataclass(frozen=True)
class Issued:
    content: bytes
    fact: DocumentFactV1

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.fact.format]


MEDIA_TYPES = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}


class LogForms:
    """Issues the log form of an incident: verified first, rendered, converted, and logged.

    A document is never handed out unless its DocumentIssued fact was accepted by the stream,
    so the incident's log always says who took which copy, as of which event.
    """

    def __init__(
        self,
        source: IncidentSource,
        converter: PdfConverter,
        anchors: AnchorStore,
        template: bytes,
        publish: Callable[[DocumentFactV1], Awaitable[None]],
        timezone: str,
    ) -> None:
        self.source = source
        self.converter = converter
        self.anchors = anchors
        self.template = template
        self.publish = publish
        self.timezone = timezone

    async def issue(
        self,
        *,
        org_id: str,
        incident_id: str,
        token: str,
        fmt: str,
        as_of: datetime | None,
        issued_by: Actor,
        purpose: str = "download",
        as_of_seq: int | None = None,
        fact_id: str | None = None,
    ) -> Issued:
        report = await self.source.verify(incident_id, token)
        if report is None:
            raise NotFound(incident_id)
        if not report["valid"]:
            raise BrokenChain(report.get("first_invalid_seq"), report.get("reason"))
        # The anchor is read before the export: anchors only follow committed events, so the
        # export then always reaches at least the anchored head.
        anchor = await asyncio.to_thread(self.anchors.latest, org_id, incident_id)
        events = await self.source.export(incident_id, token)
        if events is None:
            raise NotFound(incident_id)
        # Check again what we were given, and against our own anchor: trust nothing on the way.
        chain = verify_chain(events)
        if not chain.valid:
            raise BrokenChain(chain.first_invalid_seq, chain.reason)
        if anchor is not None and (
            anchor[0] > chain.length or events[anchor[0] - 1]["hash"] != anchor[1]
        ):
            raise BrokenChain(
                min(anchor[0], chain.length + 1), "the log does not match its anchored head"
            )
        if as_of_seq is not None:
            as_of_seq = min(as_of_seq, chain.length)
        elif as_of is None:
            as_of_seq = chain.length
        else:
            as_of_seq = recorded_by(events, as_of)  # a prefix, as the timeline shows it
            if not as_of_seq:
                raise NotFound(incident_id)
        context = log_context(events, as_of_seq=as_of_seq, timezone=self.timezone)
        content = await asyncio.to_thread(render_docx, self.template, context)
        if fmt == "pdf":
            content = await self.converter.convert(content)
        head = events[as_of_seq - 1]["hash"]
        fact = DocumentFactV1(
            fact_id=fact_id or f"{incident_id}:document:{uuid.uuid4().hex}",
            incident_id=incident_id,
            org_id=org_id,
            at=self.anchors.clock.now(),
            format=fmt,  # type: ignore[arg-type]
            as_of_seq=as_of_seq,
            head_hash=head,
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
            filename=f"loggskjema-{incident_id[:8]}-{as_of_seq}.{fmt}",
            issued_by=issued_by,
            purpose=purpose,  # type: ignore[arg-type]
        )
        await self.publish(fact)
        return Issued(content, fact)
