#!/usr/bin/env python3
"""Build the Word template of the log form (loggskjema) that the documents service renders.

Usage: python scripts/build_log_template.py [OUT]   (default: services/documents/loggskjema.docx)

The template is built from code, not edited in Word, because docxtpl only sees a Jinja tag that
sits inside one run, and Word splits text into runs wherever it likes (spell checking, editing
history). Here every tag is written with a single `add_run`, so it stays whole. The context the
tags refer to comes from `services.documents.domain.log_context`.

The output is byte-for-byte reproducible (fixed document dates, fixed zip timestamps), so running
the script again without changes gives no diff in the committed binary.
"""

from __future__ import annotations

import sys
import zipfile
from datetime import datetime
from io import BytesIO
from pathlib import Path

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.section import WD_ORIENT
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_TAB_ALIGNMENT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.oxml.text.font import CT_RPr
from docx.oxml.xmlchemy import BaseOxmlElement
from docx.shared import Cm, Mm, Pt, RGBColor
from docx.styles.style import ParagraphStyle
from docx.table import Table, _Cell, _Row
from docx.text.paragraph import Paragraph

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "services" / "documents" / "loggskjema.docx"

FONT = "Calibri"  # LibreOffice substitutes the metric-compatible Carlito, so PDFs paginate alike
LANGUAGE = "nb-NO"  # Norwegian hyphenation and spell checking when someone opens the file
CONTENT_WIDTH_CM = 17.0  # A4 (21 cm) minus 2 cm margins on each side
BORDER = "000000"  # black, so the tables read the same on any printer
HEAD_FILL = "D9D9D9"  # light grey: prints as a light tint; bold text carries the meaning anyway
# A fixed moment instead of "now": the committed template must not change on every build.
BUILT = datetime(2026, 1, 1, 0, 0, 0)  # naive on purpose: python-docx writes it as UTC (Z)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)

VERIFY_LINE = (
    "Kontroller loggen: eksporter den (JSON Lines) og kjør `kriselogg verify FIL`, "
    "eller følg algoritmen i README."
)


# --- low-level helpers (python-docx has no API for these) -------------------------------------


def _explicit_font(rpr: CT_RPr) -> None:
    """Calibri by name and Norwegian as the language, on any run properties.

    The default template's styles name *theme* fonts, which win over a font name; they are
    removed, not just overridden, so what is set here is what prints.
    """
    fonts = rpr.get_or_add_rFonts()
    for attr in ("asciiTheme", "hAnsiTheme", "eastAsiaTheme", "cstheme"):
        fonts.attrib.pop(qn(f"w:{attr}"), None)
    for attr in ("ascii", "hAnsi", "cs", "eastAsia"):
        fonts.set(qn(f"w:{attr}"), FONT)
    for old in rpr.findall(qn("w:lang")):
        rpr.remove(old)
    lang = OxmlElement("w:lang")
    lang.set(qn("w:val"), LANGUAGE)
    lang.set(qn("w:eastAsia"), LANGUAGE)
    rpr.insert_element_before(lang, "w:eastAsianLayout", "w:specVanish", "w:oMath")


def _style_font(style: ParagraphStyle, size: float, bold: bool | None = None) -> None:
    # Black by value: the default template's theme colours print as blue or grey.
    style.font.color.rgb = RGBColor(0, 0, 0)
    style.font.size = Pt(size)
    if bold is not None:
        style.font.bold = bold
    _explicit_font(style.element.get_or_add_rPr())


def _field(paragraph: Paragraph, instruction: str) -> None:
    """A complex field (PAGE, NUMPAGES): Word and LibreOffice fill in the number when laying out.

    python-docx has no API for fields, so the runs are built by hand: begin, the instruction,
    separate, the last known result ("1", replaced on layout), end.
    """

    def char(kind: str) -> None:
        fld = OxmlElement("w:fldChar")
        fld.set(qn("w:fldCharType"), kind)
        paragraph.add_run()._r.append(fld)

    char("begin")
    instr = OxmlElement("w:instrText")
    instr.set(qn("xml:space"), "preserve")
    instr.text = f" {instruction} "
    paragraph.add_run()._r.append(instr)
    char("separate")
    paragraph.add_run("1")
    char("end")


def _table_borders(table: Table) -> None:
    tbl_pr = table._tbl.tblPr
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        element = OxmlElement(f"w:{edge}")
        element.set(qn("w:val"), "single")
        element.set(qn("w:sz"), "6")  # eighths of a point: 0.75 pt, visible on any printer
        element.set(qn("w:space"), "0")
        element.set(qn("w:color"), BORDER)
        borders.append(element)
    # Word rejects a file whose table properties are out of schema order.
    tbl_pr.insert_element_before(
        borders, "w:shd", "w:tblLayout", "w:tblCellMar", "w:tblLook", "w:tblCaption"
    )


def _row_property(row_element: BaseOxmlElement, tag: str) -> None:
    tr_pr = row_element.get_or_add_trPr()
    tr_pr.append(OxmlElement(tag))


def _shade(cell: _Cell) -> None:
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), HEAD_FILL)
    cell._tc.get_or_add_tcPr().append(shd)


def _put(cell: _Cell, text: str, style: str = "Tabelltekst") -> None:
    """Write `text` into the cell's first paragraph as ONE run (so a Jinja tag stays whole)."""
    paragraph = cell.paragraphs[0]
    paragraph.style = style
    paragraph.add_run(text)


def _table(doc: DocxDocument, widths_cm: list[float], header: list[str] | None) -> Table:
    assert abs(sum(widths_cm) - CONTENT_WIDTH_CM) < 0.01, "columns must fill the text width"
    # python-docx leaves add_table/add_row unannotated; the annotations here restore the types.
    table: Table = doc.add_table(rows=0, cols=len(widths_cm))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.LEFT
    # Fixed layout: Word and LibreOffice both keep the widths set here instead of fitting the
    # columns to the content, each in its own way.
    table.autofit = False
    _table_borders(table)
    for column, width in zip(table.columns, widths_cm, strict=True):
        column.width = Cm(width)
    if header is not None:
        row = _add_row(table, widths_cm)
        # Repeated at the top of every page the table runs over, so a printed page 3 still
        # says what its columns are.
        _row_property(row._tr, "w:tblHeader")
        _row_property(row._tr, "w:cantSplit")
        for cell, title in zip(row.cells, header, strict=True):
            _shade(cell)
            _put(cell, title, style="Tabellhode")
    return table


def _add_row(table: Table, widths_cm: list[float]) -> _Row:
    row: _Row = table.add_row()  # type: ignore[no-untyped-call]
    for cell, width in zip(row.cells, widths_cm, strict=True):
        cell.width = Cm(width)
    return row


def _loop_table(
    doc: DocxDocument,
    items: str,
    empty: str,
    columns: list[tuple[str, float, str]],
) -> None:
    """A table with a header row and one row per item of `items`, or one sentence if there are none.

    Each column is (heading, width in cm, cell tag). docxtpl drops the rows that hold
    `{%tr ... %}` and keeps their tag, so the middle row is repeated once per item. The
    `{%p if %}` around it exists because an empty table with only its header row looks like a
    printing error on paper.
    """
    widths = [width for _, width, _ in columns]
    doc.add_paragraph().add_run("{%p if " + items + " %}")
    table = _table(doc, widths, [heading for heading, _, _ in columns])
    start = _add_row(table, widths)
    _put(start.cells[0], "{%tr for item in " + items + " %}")
    body = _add_row(table, widths)
    # A row is kept whole on one page: a measure and its note belong together on paper.
    _row_property(body._tr, "w:cantSplit")
    for cell, (_, _, tag) in zip(body.cells, columns, strict=True):
        _put(cell, tag)
    end = _add_row(table, widths)
    _put(end.cells[0], "{%tr endfor %}")
    doc.add_paragraph().add_run("{%p else %}")
    doc.add_paragraph().add_run(empty)
    doc.add_paragraph().add_run("{%p endif %}")


# --- the document ------------------------------------------------------------------------------


def _styles(doc: DocxDocument) -> None:
    styles = doc.styles
    defaults = styles.element.find(qn("w:docDefaults"))
    if defaults is not None:
        rpr = defaults.find(qn("w:rPrDefault") + "/" + qn("w:rPr"))
        if rpr is not None:
            _explicit_font(rpr)

    normal = styles["Normal"]
    _style_font(normal, 10.5)
    normal.paragraph_format.space_before = Pt(0)
    normal.paragraph_format.space_after = Pt(4)
    normal.paragraph_format.line_spacing = 1.1

    title = styles["Title"]
    _style_font(title, 22, bold=True)
    ppr = title.element.find(qn("w:pPr"))
    if ppr is not None:
        for border in ppr.findall(qn("w:pBdr")):
            ppr.remove(border)  # the default's blue rule under the title
    title.paragraph_format.space_after = Pt(2)

    subtitle = styles.add_style("Hendelsestittel", WD_STYLE_TYPE.PARAGRAPH)
    subtitle.base_style = normal
    _style_font(subtitle, 14, bold=True)
    subtitle.paragraph_format.space_after = Pt(8)

    heading = styles["Heading 1"]
    _style_font(heading, 13, bold=True)
    heading.paragraph_format.space_before = Pt(14)
    heading.paragraph_format.space_after = Pt(4)
    heading.paragraph_format.keep_with_next = True

    cell = styles.add_style("Tabelltekst", WD_STYLE_TYPE.PARAGRAPH)
    cell.base_style = normal
    _style_font(cell, 10)
    cell.paragraph_format.space_after = Pt(0)
    cell.paragraph_format.line_spacing = 1.0

    head = styles.add_style("Tabellhode", WD_STYLE_TYPE.PARAGRAPH)
    head.base_style = cell
    _style_font(head, 10, bold=True)
    head.paragraph_format.keep_with_next = True

    note = styles.add_style("Forklaring", WD_STYLE_TYPE.PARAGRAPH)
    note.base_style = normal
    _style_font(note, 9.5)
    note.paragraph_format.space_after = Pt(4)

    footer = styles.add_style("Bunntekst", WD_STYLE_TYPE.PARAGRAPH)
    footer.base_style = normal
    _style_font(footer, 8.5)
    footer.paragraph_format.space_after = Pt(0)
    footer.paragraph_format.line_spacing = 1.0


def _page(doc: DocxDocument) -> None:
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width = Mm(210)
    section.page_height = Mm(297)
    section.left_margin = section.right_margin = Cm(2)
    section.top_margin = Cm(2)
    section.bottom_margin = Cm(2.2)
    section.header_distance = Cm(1)
    section.footer_distance = Cm(0.9)


def _footer(doc: DocxDocument) -> None:
    footer = doc.sections[0].footer
    first = footer.paragraphs[0]
    first.style = "Bunntekst"
    # Right tab at the text edge: the page number sits at the right on the same line.
    first.paragraph_format.tab_stops.add_tab_stop(Cm(CONTENT_WIDTH_CM), WD_TAB_ALIGNMENT.RIGHT)
    first.add_run("Loggskjema – hendelse {{ incident_id }}")
    first.add_run("\tSide ")
    _field(first, "PAGE")
    first.add_run(" av ")
    _field(first, "NUMPAGES")
    chain = footer.add_paragraph(style="Bunntekst")
    chain.add_run(
        "{{ events }} {{ 'hendelse' if events == 1 else 'hendelser' }} i loggen, "
        "siste hash {{ head_hash }}"
    )
    footer.add_paragraph(VERIFY_LINE, style="Bunntekst")


def _header_table(doc: DocxDocument) -> None:
    widths = [4.6, CONTENT_WIDTH_CM - 4.6]
    table = _table(doc, widths, header=None)
    rows = [
        ("Virksomhet", "{{ org_name }}"),
        ("Hendelse", "{{ title }}"),
        ("Kategori / veiledning fulgt", "{{ category }}"),
        ("Tidspunkt for hendelsen", "{{ occurred_at }}"),
        ("Sted", "{{ place }}"),
        ("Enhet", "{{ unit }}"),
        ("Berørte", "{{ affected }}"),
        ("Alvorlighet", "{{ severity }}"),
        ("Meldt av", "{{ reported }}"),
        ("Status", "{{ status }}"),
        ("Loggen per", "{{ as_of_time }} (nr. {{ as_of_seq }})"),
        ("Hendelses-ID", "{{ incident_id }}"),
    ]
    for label, tag in rows:
        row = _add_row(table, widths)
        _row_property(row._tr, "w:cantSplit")
        label_cell, value_cell = row.cells
        _shade(label_cell)
        _put(label_cell, label, style="Tabellhode")
        _put(value_cell, tag)


def build() -> bytes:
    doc = Document()
    # python-docx's default template carries a preview picture of some other document; a file
    # manager would show it for every log form.
    package_rels = doc.part.package.rels
    for rel_id, rel in list(package_rels.items()):
        if rel.reltype == RT.THUMBNAIL:
            package_rels.pop(rel_id)
    _styles(doc)
    _page(doc)

    core = doc.core_properties
    core.title = "Loggskjema"
    core.subject = "Logg over en hendelse i kriselogg"
    core.author = core.last_modified_by = "kriselogg"
    core.language = LANGUAGE
    core.keywords = core.comments = ""
    core.revision = 1
    core.created = core.modified = BUILT

    doc.add_paragraph("Loggskjema", style="Title")
    doc.add_paragraph(style="Hendelsestittel").add_run("{{ title }}")
    doc.add_paragraph(
        "Utskrift av hendelsens logg i kriselogg. Loggen kan bare utvides, aldri endres: "
        "en rettelse står som en egen oppføring, og den opprinnelige oppføringen står urørt. "
        "Nr. er oppføringens nummer i loggen.",
        style="Forklaring",
    )
    _header_table(doc)

    doc.add_paragraph().add_run("{%p if description %}")
    doc.add_paragraph("Beskrivelse", style="Heading 1")
    doc.add_paragraph().add_run("{{ description }}")
    doc.add_paragraph().add_run("{%p endif %}")

    doc.add_paragraph("Opplysninger ved melding", style="Heading 1")
    doc.add_paragraph().add_run("{%p if facts %}")
    doc.add_paragraph().add_run("{%p for f in facts %}")
    doc.add_paragraph().add_run("{{ f.label }}: {{ f.value }}")
    doc.add_paragraph().add_run("{%p endfor %}")
    doc.add_paragraph().add_run("{%p else %}")
    doc.add_paragraph().add_run("Ingen opplysninger ble registrert ved meldingen.")
    doc.add_paragraph().add_run("{%p endif %}")

    doc.add_paragraph("Tiltak og notater", style="Heading 1")
    _loop_table(
        doc,
        "entries",
        "Ingen tiltak eller notater er registrert.",
        [
            ("Tid", 2.2, "{{ item.time }}"),
            ("Nr.", 1.0, "{{ item.seq }}"),
            ("Oppføring", 5.0, "{{ item.text }}"),
            ("Ansvarlig / utført av", 3.4, "{{ item.by }}"),
            ("Status", 2.4, "{{ item.status }}"),
            ("Merknad", 3.0, "{{ item.remark }}"),
        ],
    )

    doc.add_paragraph("Varsler og bekreftelser", style="Heading 1")
    _loop_table(
        doc,
        "alerts",
        "Ingen varsler er registrert.",
        [
            ("Person", 3.4, "{{ item.person }}"),
            ("Rolle", 2.8, "{{ item.role }}"),
            ("Kanal", 2.2, "{{ item.channel }}"),
            ("Varslet", 2.3, "{{ item.alerted }}"),
            ("Bekreftet", 2.5, "{{ item.acknowledged }}"),
            ("Eskalert", 3.8, "{{ item.escalated }}"),
        ],
    )

    doc.add_paragraph("Frister", style="Heading 1")
    doc.add_paragraph(
        "Grunnlag «Lov» er en plikt etter lov; «Virksomhetens rutine» er virksomhetens egen "
        "rutine og ikke et lovkrav.",
        style="Forklaring",
    )
    _loop_table(
        doc,
        "deadlines",
        "Ingen frister er registrert.",
        [
            ("Oppgave", 5.8, "{{ item.task }}"),
            ("Grunnlag", 3.4, "{{ item.basis }}"),
            ("Frist", 3.6, "{{ item.due }}"),
            ("Utført", 4.2, "{{ item.met }}"),
        ],
    )

    doc.add_paragraph("Avslutning", style="Heading 1")
    doc.add_paragraph().add_run("{%p if closed %}")
    doc.add_paragraph().add_run("Avsluttet {{ closed_at }} av {{ closed_by }}.")
    doc.add_paragraph().add_run("{{ summary }}")
    doc.add_paragraph().add_run("{%p else %}")
    doc.add_paragraph().add_run("Hendelsen er ikke avsluttet.")
    doc.add_paragraph().add_run("{%p endif %}")

    _footer(doc)

    raw = BytesIO()
    doc.save(raw)
    return _reproducible(raw.getvalue())


def _reproducible(docx: bytes) -> bytes:
    """The same package with fixed zip timestamps: same input, same bytes."""
    out = BytesIO()
    with (
        zipfile.ZipFile(BytesIO(docx)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            info = zipfile.ZipInfo(item.filename, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, source.read(item.filename))
    return out.getvalue()


def main(argv: list[str]) -> int:
    if len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1]) if len(argv) == 2 else DEFAULT_OUT
    out.write_bytes(build())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
