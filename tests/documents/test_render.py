"""The log form (loggskjema): the context folded from a hash-chained export, rendered with the
committed template and read back with python-docx, as a reader of the printed form would see it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import docx
import pytest
from docx.document import Document as DocxDocument

from services.documents.domain import TEMPLATE_PATH, log_context, render_docx
from shared.canonical import GENESIS_HASH, event_hash, rfc3339, verify_chain

ROOT = Path(__file__).resolve().parents[2]
INCIDENT = "6f1c2a9e-4b7d-4c1e-9a51-0d3f2b8e7c10"
ORG = "demo"
LEADER = {"id": "p-ln", "name": "Lise Nord"}
REPORTER = {"id": "p-ansatt", "name": "Ali Ansatt"}
NOTIFY = {"id": "system:notify", "name": "Varsling i kriselogg"}
# 19:00 in Oslo on 25 November 2026 (UTC+1).
START = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
TRICKY = "Truget med kniv <stor> & «kaldt» – ÆØÅ æøå"


class Log:
    """Builds an export exactly like the store: seq from 1, each event chained to the last."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        minutes: float,
        actor: dict[str, str] = LEADER,
        occurred_minutes: float | None = None,
    ) -> int:
        occurred = (
            rfc3339(START + timedelta(minutes=occurred_minutes))
            if occurred_minutes is not None
            else None
        )
        event: dict[str, Any] = {
            "seq": len(self.events) + 1,
            "type": kind,
            "incident_id": INCIDENT,
            "org_id": ORG,
            "recorded_at": rfc3339(START + timedelta(minutes=minutes, microseconds=123456)),
            "occurred_at": occurred,
            "actor": dict(actor),
            "data": data,
            "prev_hash": self.events[-1]["hash"] if self.events else GENESIS_HASH,
        }
        event["hash"] = event_hash(event)
        self.events.append(event)
        return int(event["seq"])


def relink(events: list[dict[str, Any]]) -> None:
    """Recompute the chain after a test changed an event, as a consistent rewrite would."""
    prev = GENESIS_HASH
    for event in events:
        event["prev_hash"] = prev
        event["hash"] = prev = event_hash(event)


def incident(*, closed: bool = True) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A violence report with measures, notes, a correction, alerts and deadlines."""
    log = Log()
    seqs: dict[str, int] = {}
    seqs["report"] = log.add(
        "IncidentReported",
        {
            "category": "vold-fysisk",
            "content_version": "c0ffee12",
            "title": "Slått av bruker i gangen",
            "description": f"Bruker slo ansatt i ansiktet.\n{TRICKY}",
            "place": "Storgata 1 & 3, 2. etasje",
            "unit_id": "u-nord",
            "affected": ["p-ansatt"],
            "severity": "high",
            "facts": {
                "injury": True,
                "police_involved": False,
                "serious_psychological_injury": None,
                "sykmelding_dager": 3,
            },
        },
        minutes=5,
        actor=REPORTER,
        occurred_minutes=0,
    )
    seqs["alert_leader"] = log.add(
        "RecipientAlerted",
        {
            "fact_id": "a1:RecipientAlerted",
            "alert_id": "a1",
            "recipient": LEADER,
            "role": "nearest_leader",
            "channel": "email",
        },
        minutes=5.1,
        actor=NOTIFY,
        occurred_minutes=5.05,
    )
    seqs["alert_rep"] = log.add(
        "RecipientAlerted",
        {
            "fact_id": "a2:RecipientAlerted",
            "alert_id": "a2",
            "recipient": {"id": "p-vo", "name": "Vera Verneombud"},
            "role": "safety_rep",
            "channel": "log",
        },
        minutes=5.2,
        actor=NOTIFY,
        occurred_minutes=5.1,
    )
    seqs["deadline_law"] = log.add(
        "DeadlineSet",
        {
            "fact_id": f"{INCIDENT}:deadline:aml-5-1",
            "deadline_id": "aml-5-1",
            "kind": "law",
            "title": "Registrer personskaden",
            "legal_ref": "aml § 5-1",
            "due_at": "2026-11-26T22:59:59.999999Z",
            "due_label": "neste virkedag",
            "responsible": LEADER,
            "responsible_role": "nearest_leader",
        },
        minutes=5.3,
        actor=NOTIFY,
        occurred_minutes=5.2,
    )
    seqs["deadline_routine"] = log.add(
        "DeadlineSet",
        {
            "fact_id": f"{INCIDENT}:deadline:oppfolging-1-uke",
            "deadline_id": "oppfolging-1-uke",
            "kind": "routine",
            "title": "Oppfølgingssamtale etter en uke",
            "due_at": "2026-12-02T22:59:59.999999Z",
            "due_label": "etter en uke",
            "responsible": LEADER,
            "responsible_role": "nearest_leader",
        },
        minutes=5.4,
        actor=NOTIFY,
        occurred_minutes=5.3,
    )
    seqs["ack"] = log.add(
        "AlertAcknowledged",
        {
            "fact_id": "a1:AlertAcknowledged",
            "alert_id": "a1",
            "recipient": LEADER,
            "role": "nearest_leader",
            "channel": "email",
        },
        minutes=9,
        actor=NOTIFY,
        occurred_minutes=8,
    )
    seqs["measure_safe"] = log.add(
        "MeasureLogged",
        {
            "measure_id": "vold-fysisk-akutt-1",
            "title": "Sørg for at den ansatte er i sikkerhet",
            "status": "done",
            "performed_by": LEADER,
        },
        minutes=10,
        occurred_minutes=6,
    )
    seqs["measure_police"] = log.add(
        "MeasureLogged",
        {
            "title": "Ring politiet",
            "status": "started",
            "performed_by": {"id": "p-ks", "name": "Kari Sjef"},
            "note": "Venter i kø på 02800",
        },
        minutes=12,
    )
    seqs["measure_na"] = log.add(
        "MeasureLogged",
        {"measure_id": "vold-fysisk-akutt-5", "status": "not_applicable"},
        minutes=13,
    )
    seqs["note"] = log.add("NoteAdded", {"text": f"Samtale med vitne. {TRICKY}"}, minutes=15)
    seqs["escalated"] = log.add(
        "AlertEscalated",
        {
            "fact_id": "a2:AlertEscalated",
            "alert_id": "a2",
            "recipient": {"id": "p-vo", "name": "Vera Verneombud"},
            "role": "safety_rep",
            "channel": "log",
            "reason": "Ingen bekreftelse innen 15 minutter",
        },
        minutes=20.2,
        actor=NOTIFY,
        occurred_minutes=20.1,
    )
    seqs["correction"] = log.add(
        "EntryCorrected",
        {
            "corrects_seq": seqs["measure_police"],
            "reason": "Politiet ble ringt av Lise, ikke Kari",
            "note": "Se samtalelogg",
        },
        minutes=25,
    )
    seqs["deadline_met"] = log.add(
        "DeadlineMet",
        {"deadline_id": "aml-5-1", "met_by": LEADER, "note": "Registrert i avvikssystemet"},
        minutes=40,
        occurred_minutes=35,
    )
    seqs["phase"] = log.add("PhaseChanged", {"phase": "oppfolging"}, minutes=60)
    if closed:
        seqs["closed"] = log.add(
            "IncidentClosed", {"summary": "Fulgt opp; saken er anmeldt & avsluttet."}, minutes=90
        )
    assert verify_chain(log.events).valid
    return log.events, seqs


def template() -> bytes:
    return TEMPLATE_PATH.read_bytes()


def render(events: list[dict[str, Any]], **options: Any) -> DocxDocument:
    context = log_context(events, org_name="Demo kommune", **options)
    return docx.Document(BytesIO(render_docx(template(), context)))


def body_lines(document: DocxDocument) -> list[str]:
    """The body's paragraphs, then every table cell, in order: what a reader sees on paper."""
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.extend(cell.text for cell in row.cells)
    return lines


def body_text(document: DocxDocument) -> str:
    return "\n".join(body_lines(document))


def table_rows(document: DocxDocument, first_heading: str) -> list[list[str]]:
    """The data rows of the table whose header row starts with `first_heading`."""
    for table in document.tables:
        rows = [[cell.text for cell in row.cells] for row in table.rows]
        if rows and rows[0][0] == first_heading:
            return rows[1:]
    raise AssertionError(f"no table headed {first_heading!r}")


def footer_text(document: DocxDocument) -> str:
    return "".join(document.sections[0].footer._element.itertext())


def header_value(document: DocxDocument, label: str) -> str:
    for row in document.tables[0].rows:
        if row.cells[0].text == label:
            return str(row.cells[1].text)
    raise AssertionError(f"no header row {label!r}")


# --- the header -------------------------------------------------------------------------------


def test_title_and_header_fields() -> None:
    events, seqs = incident()
    document = render(events, names={"u-nord": "Hjemmetjenesten nord", "p-ansatt": "Ali Ansatt"})
    assert document.paragraphs[0].text == "Loggskjema"
    assert document.paragraphs[1].text == "Slått av bruker i gangen"
    assert header_value(document, "Virksomhet") == "Demo kommune"
    assert header_value(document, "Hendelse") == "Slått av bruker i gangen"
    assert header_value(document, "Kategori / veiledning fulgt") == (
        "vold-fysisk (innholdsversjon c0ffee12)"
    )
    # 18:00 UTC is 19:00 in Oslo in November.
    assert header_value(document, "Tidspunkt for hendelsen") == "25.11.2026 19:00"
    assert header_value(document, "Sted") == "Storgata 1 & 3, 2. etasje"
    assert header_value(document, "Enhet") == "Hjemmetjenesten nord"
    assert header_value(document, "Berørte") == "Ali Ansatt"
    assert header_value(document, "Alvorlighet") == "Høy"
    assert header_value(document, "Meldt av") == "Ali Ansatt, 25.11.2026 19:05"
    assert header_value(document, "Status") == "Avsluttet"
    last = len(events)
    assert header_value(document, "Loggen per") == f"25.11.2026 20:30 (nr. {last})"
    assert seqs["closed"] == last


def test_open_incident_shows_phase_and_no_closing() -> None:
    events, _ = incident(closed=False)
    document = render(events)
    assert header_value(document, "Status") == "Åpen (fase: Oppfølging)"
    # Without names, the ids are shown rather than nothing.
    assert header_value(document, "Enhet") == "u-nord"
    text = body_text(document)
    assert "Hendelsen er ikke avsluttet." in text
    assert "Avsluttet " not in text


def test_description_and_facts() -> None:
    events, _ = incident()
    text = body_text(render(events))
    assert "Beskrivelse" in text
    # A newline in the description is a line break in Word (python-docx reads it back as \n).
    assert f"Bruker slo ansatt i ansiktet.\n{TRICKY}" in text
    assert "Opplysninger ved melding" in text
    lines = body_lines(render(events))
    # The registry's facts read as the questions the reporter answered, unknown as unknown.
    assert "Er noen skadet, også lettere?: ja" in lines
    assert "Er politiet varslet eller involvert?: nei" in lines
    assert "Er noen alvorlig psykisk skadet?: vet ikke" in lines
    # A fact the form has no title for is still printed.
    assert "Sykmelding dager: 3" in lines


def test_report_without_description_or_facts_says_so() -> None:
    log = Log()
    log.add(
        "IncidentReported",
        {
            "category": "trusler",
            "title": "Trussel på telefon",
            "unit_id": "u-nord",
            "affected": [],
            "severity": "low",
        },
        minutes=0,
    )
    document = render(log.events)
    text = body_text(document)
    assert "Beskrivelse" not in text
    assert "Ingen opplysninger ble registrert ved meldingen." in text
    assert "Ingen tiltak eller notater er registrert." in text
    assert "Ingen varsler er registrert." in text
    assert "Ingen frister er registrert." in text
    assert header_value(document, "Sted") == "ikke oppgitt"
    assert header_value(document, "Kategori / veiledning fulgt") == (
        "trusler (innholdsversjon ikke registrert)"
    )
    assert "1 hendelse i loggen" in footer_text(document)


# --- entries ----------------------------------------------------------------------------------


def test_every_entry_with_its_seq_time_person_and_status() -> None:
    events, seqs = incident()
    rows = table_rows(render(events), "Tid")
    by_seq = {int(row[1]): row for row in rows}
    assert by_seq[seqs["measure_safe"]] == [
        # performed (occurred) at 19:06, recorded at 19:10: the form shows when it was done.
        "25.11.2026 19:06",
        str(seqs["measure_safe"]),
        "Sørg for at den ansatte er i sikkerhet",
        "Lise Nord",
        "Utført",
        "",
    ]
    police = by_seq[seqs["measure_police"]]
    assert police[2:4] == ["Ring politiet", "Kari Sjef"]
    assert police[0] == "25.11.2026 19:12"
    assert police[5] == "Venter i kø på 02800"
    # Without a title, the measure id is shown.
    assert by_seq[seqs["measure_na"]][2] == "vold-fysisk-akutt-5"
    assert by_seq[seqs["measure_na"]][4] == "Ikke aktuelt"
    assert by_seq[seqs["note"]][2] == f"Notat: Samtale med vitne. {TRICKY}"
    assert by_seq[seqs["phase"]][2] == "Fase endret: Oppfølging"
    assert by_seq[seqs["closed"]][2] == "Hendelsen avsluttet"
    # In log order, and nothing but entries (alerts and deadlines have their own tables).
    assert [int(row[1]) for row in rows] == sorted(by_seq)
    assert set(by_seq) == {
        seqs[k]
        for k in ("measure_safe", "measure_police", "measure_na", "note", "correction", "phase")
    } | {seqs["closed"]}


def test_correction_is_its_own_row_and_marks_the_corrected_entry() -> None:
    events, seqs = incident()
    rows = {int(row[1]): row for row in table_rows(render(events), "Tid")}
    correction = rows[seqs["correction"]]
    assert correction[2] == (
        f"Rettelse av nr. {seqs['measure_police']}: Politiet ble ringt av Lise, ikke Kari"
    )
    assert correction[5] == "Se samtalelogg"
    # The original stays as it was, with a pointer to the correction.
    corrected = rows[seqs["measure_police"]]
    assert corrected[2] == "Ring politiet"
    assert corrected[4] == f"Påbegynt\nRettet, se nr. {seqs['correction']}"


def test_correction_of_the_report_marks_the_header() -> None:
    events, _ = incident(closed=False)
    log = Log()
    log.events = events
    fix = log.add("EntryCorrected", {"corrects_seq": 1, "reason": "Feil sted"}, minutes=100)
    document = render(log.events)
    assert header_value(document, "Meldt av") == (
        f"Ali Ansatt, 25.11.2026 19:05\nRettet, se nr. {fix}"
    )


def test_norwegian_letters_and_markup_characters_survive() -> None:
    events, _ = incident()
    events[0]["data"]["title"] = TRICKY
    relink(events)  # the context checks the links, so the changed chain must be whole again
    document = render(events)
    assert document.paragraphs[1].text == TRICKY
    assert header_value(document, "Hendelse") == TRICKY
    text = body_text(document)
    assert text.count(TRICKY) >= 3  # title, description, note
    assert "Fulgt opp; saken er anmeldt & avsluttet." in text


def test_control_characters_are_dropped_not_the_text_after_them() -> None:
    events, _ = incident(closed=False)
    log = Log()
    log.events = events
    log.add("NoteAdded", {"text": "før\x00\x0better\r\nny linje\x0c"}, minutes=100)
    text = body_text(render(log.events))
    assert "Notat: føretter\nny linje" in text


# --- footer and as-of -------------------------------------------------------------------------


def test_footer_has_page_fields_event_count_head_hash_and_how_to_verify() -> None:
    events, _ = incident()
    document = render(events)
    footer = footer_text(document)
    assert f"{len(events)} hendelser i loggen, siste hash {events[-1]['hash']}" in footer
    assert f"Loggskjema – hendelse {INCIDENT}" in footer
    assert "Kontroller loggen: eksporter den (JSON Lines) og kjør `kriselogg verify FIL`" in footer
    xml = document.sections[0].footer._element.xml
    assert re.search(r"<w:instrText[^>]*> PAGE </w:instrText>", xml)
    assert re.search(r"<w:instrText[^>]*> NUMPAGES </w:instrText>", xml)
    assert "Side " in footer and " av " in footer


def test_as_of_seq_leaves_out_later_entries_and_prints_that_head() -> None:
    events, seqs = incident()
    as_of = seqs["correction"] - 1
    document = render(events, as_of_seq=as_of)
    rows = {int(row[1]): row for row in table_rows(document, "Tid")}
    assert seqs["measure_police"] in rows
    assert seqs["correction"] not in rows
    assert max(rows) <= as_of
    # The correction had not happened yet, so the entry is not marked.
    assert rows[seqs["measure_police"]][4] == "Påbegynt"
    assert "Ring politiet" in body_text(document)
    footer = footer_text(document)
    assert f"{as_of} hendelser i loggen, siste hash {events[as_of - 1]['hash']}" in footer
    assert events[-1]["hash"] not in footer
    assert header_value(document, "Loggen per").endswith(f"(nr. {as_of})")
    assert header_value(document, "Status") == "Åpen (fase: Akutt)"
    assert "Hendelsen er ikke avsluttet." in body_text(document)
    # The deadline met later is not met yet.
    deadlines = table_rows(document, "Oppgave")
    assert deadlines[0][3] == "Ikke utført"


def test_as_of_before_an_entry_leaves_it_out() -> None:
    events, seqs = incident()
    before = render(events, as_of_seq=seqs["note"] - 1)
    after = render(events, as_of_seq=seqs["note"])
    assert "Notat: Samtale med vitne." not in body_text(before)
    assert "Notat: Samtale med vitne." in body_text(after)
    assert events[seqs["note"] - 2]["hash"] in footer_text(before)
    assert events[seqs["note"] - 1]["hash"] in footer_text(after)


def test_context_refuses_a_log_that_is_not_an_unbroken_prefix() -> None:
    events, _ = incident()
    with pytest.raises(ValueError, match="expected seq 2"):
        log_context([events[0], events[2]])
    with pytest.raises(ValueError, match="IncidentReported"):
        log_context([])
    broken = [dict(e) for e in events]
    broken[3]["prev_hash"] = "f" * 64
    with pytest.raises(ValueError, match="does not link"):
        log_context(broken)
    with pytest.raises(ValueError, match="as_of_seq"):
        log_context(events, as_of_seq=0)
    # A later break does not matter to a form as of an earlier moment.
    assert log_context(broken, as_of_seq=3)["head_hash"] == events[2]["hash"]
    # as_of beyond the end is simply the whole log.
    assert log_context(events, as_of_seq=10_000)["as_of_seq"] == len(events)


def test_context_times_follow_the_timezone() -> None:
    events, _ = incident()
    context = log_context(events, timezone="UTC")
    assert context["occurred_at"] == "25.11.2026 18:00"
    summer = Log()
    summer.add("IncidentReported", {"title": "Sommer", "severity": "low"}, minutes=0)
    summer.events[0]["occurred_at"] = rfc3339(datetime(2026, 7, 1, 10, 0, tzinfo=UTC))
    relink(summer.events)
    # Daylight saving time: 10:00 UTC is 12:00 in Oslo in July.
    assert log_context(summer.events)["occurred_at"] == "01.07.2026 12:00"


# --- alerts and deadlines ---------------------------------------------------------------------


def test_alerts_table() -> None:
    events, _ = incident()
    rows = table_rows(render(events), "Person")
    assert rows == [
        ["Lise Nord", "Nærmeste leder", "E-post", "25.11.2026 19:05", "25.11.2026 19:08", "–"],
        [
            "Vera Verneombud",
            "Verneombud",
            "Kun i kriselogg (ikke sendt)",
            "25.11.2026 19:05",
            "Ikke bekreftet",
            "25.11.2026 19:20: Ingen bekreftelse innen 15 minutter",
        ],
    ]


def test_deadlines_table_labels_law_and_routine() -> None:
    events, _ = incident()
    rows = table_rows(render(events), "Oppgave")
    assert rows == [
        [
            "Registrer personskaden\nAnsvarlig: Lise Nord",
            "Lov: arbeidsmiljøloven § 5-1 første og tredje ledd",
            "neste virkedag (26.11.2026 23:59)",
            "25.11.2026 19:35 av Lise Nord\nRegistrert i avvikssystemet",
        ],
        [
            "Oppfølgingssamtale etter en uke\nAnsvarlig: Lise Nord",
            "Virksomhetens rutine",
            "etter en uke (02.12.2026 23:59)",
            "Ikke utført",
        ],
    ]
    assert "«Virksomhetens rutine» er virksomhetens egen rutine og ikke et lovkrav" in (
        body_text(render(events))
    )


def test_closing_summary() -> None:
    events, _ = incident()
    text = body_text(render(events))
    assert "Avsluttet 25.11.2026 20:30 av Lise Nord." in text
    assert "Fulgt opp; saken er anmeldt & avsluttet." in text
    assert "Hendelsen er ikke avsluttet." not in text


# --- the template -----------------------------------------------------------------------------


def test_page_is_a4_portrait() -> None:
    events, _ = incident()
    section = render(events).sections[0]
    assert section.page_width is not None and section.page_height is not None
    assert round(section.page_width.mm) == 210 and round(section.page_height.mm) == 297


def test_every_tag_in_the_template_sits_in_one_run() -> None:
    with zipfile.ZipFile(TEMPLATE_PATH) as package:
        parts = [n for n in package.namelist() if re.match(r"word/(document|footer\d*)\.xml", n)]
        xml = "".join(package.read(n).decode() for n in parts)
    texts = re.findall(r"<w:t(?: [^>]*)?>([^<]*)</w:t>", xml)
    tags = [t for t in texts if "{" in t or "}" in t]
    assert len(tags) > 30
    for text in tags:
        assert text.count("{{") == text.count("}}"), text
        assert text.count("{%") == text.count("%}"), text


def test_template_script_is_reproducible(tmp_path: Path) -> None:
    out = [tmp_path / "a.docx", tmp_path / "b.docx"]
    for path in out:
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "build_log_template.py"), str(path)],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
    assert out[0].read_bytes() == out[1].read_bytes()
    events, _ = incident()
    context = log_context(events, org_name="Demo kommune")
    fresh = docx.Document(BytesIO(render_docx(out[0].read_bytes(), context)))
    committed = docx.Document(BytesIO(render_docx(template(), context)))
    assert body_lines(fresh) == body_lines(committed)
    assert footer_text(fresh) == footer_text(committed)


def test_rendering_is_deterministic() -> None:
    """Same log, same moment, same bytes: an issued file's SHA-256 can be checked again."""
    events, seqs = incident()
    context = log_context(events, as_of_seq=seqs["note"])
    first = render_docx(template(), context)
    assert render_docx(template(), context) == first
    # Nothing in the package depends on the clock (zip entries would otherwise carry it).
    with zipfile.ZipFile(BytesIO(first)) as package:
        assert {info.date_time for info in package.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_a_thousand_entries_render() -> None:
    log = Log()
    log.add("IncidentReported", {"title": "Lang hendelse", "severity": "medium"}, minutes=0)
    for i in range(1000):
        log.add(
            "MeasureLogged",
            {"title": f"Tiltak {i} & <mer>", "status": "done", "note": f"Merknad {i}"},
            minutes=i + 1,
        )
    context = log_context(log.events)
    started = time.perf_counter()
    rendered = render_docx(template(), context)
    elapsed = time.perf_counter() - started
    document = docx.Document(BytesIO(rendered))
    rows = table_rows(document, "Tid")
    assert len(rows) == 1000
    assert rows[-1][1:3] == ["1001", "Tiltak 999 & <mer>"]
    assert "1001 hendelser i loggen" in footer_text(document)
    print(f"rendered 1,000 entries in {elapsed:.3f} s")
