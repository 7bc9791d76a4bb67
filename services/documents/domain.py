"""The log form (loggskjema) of one incident: its template context and the rendered Word file.

Pure: the events and the template come in as values and the document goes out as bytes, so the
same functions serve the HTTP endpoint, the issued snapshots and the tests. The template itself
is built by `scripts/build_log_template.py`; every value in the context is a display-ready
Norwegian string, so the template needs no logic beyond loops and ifs.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from docxtpl import DocxTemplate

from shared.labels import (
    CHANNEL_TITLES,
    DEADLINE_KIND_TITLES,
    INCIDENT_STATUS_TITLES,
    PHASE_TITLES,
    ROLE_TITLES,
    SEVERITY_TITLES,
    fact_answer,
)
from shared.labels import MEASURE_STATUS_TITLES as STATUS_TITLES
from shared.law import registry

TEMPLATE_PATH = Path(__file__).with_name("loggskjema.docx")
"""The committed template; reading it is the caller's business (this module does no I/O)."""

TIME_FORMAT = "%d.%m.%Y %H:%M"  # 25.11.2026 19:05, as Norwegians write it by hand
MISSING = "ikke oppgitt"

# The registry's facts read as their questions; the others as plain words.
FACT_TITLES: dict[str, str] = {
    **{f.id: f.question for f in registry().facts},
    "affected_description": "Rammet",
    "police_report": "Anmeldt til politiet",
    "medical_help": "Lege eller legevakt kontaktet",
    "weapon": "Våpen involvert",
}
FORMAT_TITLES: dict[str, str] = {"docx": "Word (.docx)", "pdf": "PDF"}

# Characters XML 1.0 cannot carry. docxtpl parses the rendered XML with recover=True, which would
# silently cut the text at such a character, so they are removed here instead. Form feed and
# \a are included: docxtpl would turn them into page and paragraph breaks.
_NOT_IN_XML = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff\ud800-\udfff]")


def _text(value: Any) -> str:
    """User text as it can appear in the document; newlines become line breaks (docxtpl)."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    return _NOT_IN_XML.sub("", text)


def _title(titles: Mapping[str, str], key: Any) -> str:
    """The Norwegian title, or the raw value: an unknown value is shown, never dropped."""
    if key is None or key == "":
        return ""
    return titles.get(str(key), _text(key))


def _name(person: Any) -> str:
    if isinstance(person, Mapping):
        return _text(person.get("name") or person.get("id"))
    return _text(person)


class _Clock:
    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    def local(self, moment: Any) -> str:
        """RFC 3339 (UTC in events) as local wall-clock time, e.g. 25.11.2026 19:05."""
        if not moment:
            return ""
        try:
            parsed = datetime.fromisoformat(str(moment))
        except ValueError:
            return _text(moment)  # shown as stored rather than hidden
        if parsed.tzinfo is None:
            # Events store UTC; a naive value would otherwise be read as the server's own zone.
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(self.zone).strftime(TIME_FORMAT)

    def when(self, event: Mapping[str, Any]) -> str:
        """When it happened in the world if known, otherwise when it was recorded."""
        return self.local(event.get("occurred_at") or event.get("recorded_at"))


def _included(
    events: Sequence[Mapping[str, Any]], as_of_seq: int | None
) -> list[Mapping[str, Any]]:
    """The events up to and including as_of_seq, checked to be one unbroken prefix of the log.

    The form prints "Nr." and the head hash as evidence, so a list with a gap, in the wrong
    order or not linked by prev_hash is refused rather than printed. Recomputing every hash is
    the job of verify (and of anyone holding the export), not of the printer.
    """
    if as_of_seq is not None and as_of_seq < 1:
        raise ValueError("as_of_seq must be 1 or more: the log starts with the report")
    included: list[Mapping[str, Any]] = []
    prev_hash: str | None = None
    for expected, event in enumerate(events, start=1):
        if as_of_seq is not None and expected > as_of_seq:
            break
        if event.get("seq") != expected:
            raise ValueError(f"events must be the log in order: expected seq {expected}")
        if prev_hash is not None and event.get("prev_hash") != prev_hash:
            raise ValueError(f"seq {expected} does not link to seq {expected - 1} (prev_hash)")
        prev_hash = str(event.get("hash"))
        included.append(event)
    if not included or included[0].get("type") != "IncidentReported":
        raise ValueError("the log must start with IncidentReported")
    return included


def _fact_value(value: Any) -> str:
    # Lower case after the label's colon on paper ("Skadet?: ja"); other values as typed.
    if value is None or isinstance(value, bool):
        return fact_answer(value).lower()
    return _text(value)


def _facts(facts: Any) -> list[dict[str, str]]:
    if not isinstance(facts, Mapping):
        return []
    rows = []
    for key, value in facts.items():
        label = FACT_TITLES.get(str(key)) or _text(key).replace("_", " ").replace("-", " ")
        rows.append({"label": label[:1].upper() + label[1:], "value": _fact_value(value)})
    return rows


class _Form:
    """Folds the events, in log order, into the rows of the form's sections.

    Every row keeps the seq of the event it comes from, so the paper can be checked against
    the export line by line; `targets` remembers which cell of which row says that an event
    was later corrected.
    """

    def __init__(self, report: Mapping[str, Any], clock: _Clock) -> None:
        self.clock = clock
        self.entries: list[dict[str, Any]] = []
        self.alerts: dict[str, dict[str, Any]] = {}
        self.deadlines: dict[str, dict[str, Any]] = {}
        self.phase = "akutt"
        self.closing: dict[str, Any] = {
            "closed": False,
            "closed_at": "",
            "closed_by": "",
            "summary": "",
        }
        self.reported_by = _name(report.get("actor"))
        self.reported_at = clock.local(report.get("recorded_at"))
        self.header: dict[str, Any] = {"reported": f"{self.reported_by}, {self.reported_at}"}
        self.targets: dict[int, tuple[dict[str, Any], str]] = {1: (self.header, "reported")}
        self.corrections: dict[int, list[int]] = {}

    def fold(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("type"))
        body: Mapping[str, Any] = event.get("data") or {}
        if kind in ("RecipientAlerted", "AlertAcknowledged", "AlertEscalated"):
            self.alert(kind, event, body)
        elif kind == "DeadlineSet":
            self.deadline_set(event, body)
        elif kind == "DeadlineMet":
            self.deadline_met(event, body)
        else:
            self.entry_of(kind, event, body)

    def entry(self, event: Mapping[str, Any], text: str, **cells: str) -> None:
        row = {
            "seq": event["seq"],
            "time": cells.get("time") or self.clock.when(event),
            "text": text,
            "by": cells.get("by", _name(event.get("actor"))),
            "status": cells.get("status", ""),
            "remark": cells.get("remark", ""),
        }
        self.entries.append(row)
        self.targets[int(event["seq"])] = (row, "status")

    def entry_of(self, kind: str, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        if kind == "MeasureLogged":
            self.entry(
                event,
                _text(body.get("title") or body.get("measure_id") or "Tiltak"),
                time=self.clock.local(body.get("performed_at")),
                by=_name(body.get("performed_by") or event.get("actor")),
                status=_title(STATUS_TITLES, body.get("status")),
                remark=_text(body.get("note")),
            )
        elif kind == "NoteAdded":
            self.entry(event, "Notat: " + _text(body.get("text")))
        elif kind == "FactsRecorded":
            given = "; ".join(f"{r['label']} {r['value']}" for r in _facts(body.get("facts")))
            self.entry(event, "Opplysninger lagt til: " + given)
        elif kind == "EntryCorrected":
            target = body.get("corrects_seq")
            reason = _text(body.get("reason"))
            self.entry(
                event, f"Rettelse av nr. {_text(target)}: {reason}", remark=_text(body.get("note"))
            )
            if isinstance(target, int):
                self.corrections.setdefault(target, []).append(int(event["seq"]))
        elif kind == "PhaseChanged":
            self.phase = str(body.get("phase") or self.phase)
            self.entry(event, "Fase endret: " + _title(PHASE_TITLES, body.get("phase")))
        elif kind == "DocumentIssued":
            remark = []
            if body.get("as_of_seq"):
                remark.append(f"Loggen per nr. {_text(body.get('as_of_seq'))}")
            if body.get("sha256"):
                remark.append(f"SHA-256 {_text(body.get('sha256'))}")
            format_ = _title(FORMAT_TITLES, body.get("format"))
            self.entry(event, f"Dokument utstedt: {format_}", remark="; ".join(remark))
        elif kind == "IncidentClosed":
            summary = _text(body.get("summary"))
            self.closing = {
                "closed": True,
                "closed_at": self.clock.local(event.get("recorded_at")),
                "closed_by": _name(event.get("actor")),
                "summary": summary,
            }
            self.phase = "avsluttet"
            self.entry(event, "Hendelsen avsluttet", remark=summary)
        else:
            # A kind this form does not know yet still appears, by name, in the log order.
            self.entry(event, _text(kind))

    def alert(self, kind: str, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        alert_id = str(body.get("alert_id"))
        alert = self.alerts.get(alert_id)
        if alert is None:
            # Every alert fact carries recipient, role and channel, so even a fact whose
            # RecipientAlerted is missing still shows whom it was about.
            alert = self.alerts[alert_id] = {
                "seq": event["seq"],
                "alert_id": alert_id,
                "person": _name(body.get("recipient")),
                "role": _title(ROLE_TITLES, body.get("role")),
                "channel": _title(CHANNEL_TITLES, body.get("channel")),
                "alerted": "",
                "acknowledged": "Ikke bekreftet",
                "escalated": "–",
            }
        when = self.clock.when(event)
        if kind == "RecipientAlerted":
            alert["alerted"] = when
            field = "alerted"
        elif kind == "AlertAcknowledged":
            alert["acknowledged"] = when
            field = "acknowledged"
        else:
            reason = _text(body.get("reason"))
            alert["escalated"] = f"{when}: {reason}" if reason else when
            field = "escalated"
        self.targets[int(event["seq"])] = (alert, field)

    def deadline_set(self, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        # Law and the organisation's own routine are kept apart on paper as everywhere else:
        # a local routine must never read as a legal requirement.
        if body.get("kind") == "law":
            provision = registry().provision(str(body.get("deadline_id")))
            ref = provision.citation if provision else _text(body.get("legal_ref"))
            basis = f"Lov: {ref}" if ref else "Lov"
        else:
            basis = _title(DEADLINE_KIND_TITLES, body.get("kind"))
        task = _text(body.get("title"))
        responsible = _name(body.get("responsible"))
        if responsible:
            task += f"\nAnsvarlig: {responsible}"
        due = self.clock.local(body.get("due_at"))
        label = _text(body.get("due_label"))
        row = {
            "seq": event["seq"],
            "deadline_id": _text(body.get("deadline_id")),
            "task": task,
            "basis": basis,
            "due": f"{label} ({due})" if label and due else label or due,
            "met": "Ikke utført",
        }
        self.deadlines[str(body.get("deadline_id"))] = row
        self.targets[int(event["seq"])] = (row, "met")

    def deadline_met(self, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        row = self.deadlines.get(str(body.get("deadline_id")))
        note = _text(body.get("note"))
        if row is None:
            # Not among the deadlines set (the incident log refuses this): shown as an entry
            # rather than lost.
            self.entry(event, f"Frist utført: {_text(body.get('deadline_id'))}", remark=note)
            return
        who = _name(body.get("met_by") or event.get("actor"))
        row["met"] = self.clock.when(event) + (f" av {who}" if who else "")
        if note:
            row["met"] += f"\n{note}"
        self.targets[int(event["seq"])] = (row, "met")

    def mark_corrections(self) -> None:
        """Point each corrected row at its corrections; the row itself stays as it was."""
        for corrected, by in self.corrections.items():
            if corrected in self.targets:
                row, field = self.targets[corrected]
                mark = "Rettet, se nr. " + ", ".join(str(seq) for seq in by)
                row[field] = f"{row[field]}\n{mark}" if row[field] else mark


def log_context(
    events: Sequence[Mapping[str, Any]],
    *,
    as_of_seq: int | None = None,
    org_name: str | None = None,
    timezone: str = "Europe/Oslo",
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The template context of the log form: the exported events folded up to `as_of_seq`.

    `events` is the incident's export (one dict per event, in seq order); None for `as_of_seq`
    means all of them. `names` optionally maps person and unit ids to display names: the
    report carries only ids for the unit and the affected people. Raises ValueError when the
    events are not an unbroken log starting with the report.
    """
    clock = _Clock(timezone)
    names = names or {}
    included = _included(events, as_of_seq)
    report = included[0]
    data: Mapping[str, Any] = report.get("data") or {}
    form = _Form(report, clock)
    for event in included[1:]:
        form.fold(event)
    form.mark_corrections()

    def display(ident: Any) -> str:
        return _text(names.get(str(ident), ident)) if ident else ""

    category = _text(data.get("category")) or MISSING
    version = _text(data.get("content_version"))
    phase = _title(PHASE_TITLES, form.phase)
    last = included[-1]
    return {
        "incident_id": _text(report.get("incident_id")),
        "org_id": _text(report.get("org_id")),
        "org_name": _text(org_name or report.get("org_id")),
        "title": _text(data.get("title")),
        "category_id": _text(data.get("category")),
        "content_version": version,
        "category": f"{category} (innholdsversjon {version or 'ikke registrert'})",
        "occurred_at": clock.local(report.get("occurred_at") or data.get("occurred_at")) or MISSING,
        "place": _text(data.get("place")) or MISSING,
        "unit": display(data.get("unit_id")) or MISSING,
        "affected": ", ".join(display(p) for p in data.get("affected") or []) or MISSING,
        "severity": _title(SEVERITY_TITLES, data.get("severity")) or MISSING,
        "reported_by": form.reported_by,
        "reported_at": form.reported_at,
        "reported": form.header["reported"],
        "status": INCIDENT_STATUS_TITLES["closed"]
        if form.closing["closed"]
        else f"{INCIDENT_STATUS_TITLES['open']} (fase: {phase})",
        "phase": phase,
        "description": _text(data.get("description")),
        "facts": _facts(data.get("facts")),
        "entries": form.entries,
        "alerts": list(form.alerts.values()),
        "deadlines": list(form.deadlines.values()),
        **form.closing,
        "events": len(included),
        "head_hash": _text(last.get("hash")),
        "as_of_seq": int(last["seq"]),
        "as_of_time": clock.local(last.get("recorded_at")),
        "timezone": timezone,
    }


def render_docx(template: bytes, context: Mapping[str, Any]) -> bytes:
    """The log form as a .docx file: `template` (the .docx bytes) rendered with `context`.

    The same template and context always give the same bytes.
    """
    document = DocxTemplate(BytesIO(template))
    # autoescape=True is not optional: without it docxtpl writes "<" and "&" into the XML raw
    # and its forgiving parser then silently drops the rest of that text.
    document.render(dict(context), autoescape=True)
    saved = BytesIO()
    document.save(saved)
    return _fixed_zip_times(saved.getvalue())


def _fixed_zip_times(package: bytes) -> bytes:
    """The same .docx with every zip entry dated 1980-01-01 instead of the moment of saving.

    So the same log as of the same seq always gives the same bytes, and the SHA-256 recorded
    when a document is issued can be checked later by rendering it again.
    """
    out = BytesIO()
    with (
        zipfile.ZipFile(BytesIO(package)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            entry = zipfile.ZipInfo(item.filename, (1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            target.writestr(entry, source.read(item.filename))
    return out.getvalue()
