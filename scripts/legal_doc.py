"""Write docs/legal.md: the legal registry (shared/law.yaml) as a lawyer reviews it.

Every provision kriselogg cites, the duties it tracks with their triggers and deadline rules, and
which guidance sub-themes cite what, from the registry and the catalogue. Nothing in the document
is written by hand, so it cannot drift from what the services do; tests/content/test_legal_doc.py
fails when it is stale.

    .venv/bin/python scripts/legal_doc.py          # rewrite it
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.content.domain import PHASES, Catalogue  # noqa: E402
from services.content.store import load_catalogue  # noqa: E402
from shared.law import KINDS, Provision, Registry, registry  # noqa: E402

OUTPUT = ROOT / "docs" / "legal.md"

ROLES = {
    "nearest_leader": "nærmeste leder",
    "hr": "HR",
    "safety_rep": "verneombudet",
    "main_safety_rep": "hovedverneombudet",
}
KIND_NAMES = {"arbeidsmiljo": "arbeidsmiljø", "personlig": "personlig"}
RULES = {
    "straks": (
        "Straks. Vises med frist én time etter at arbeidsgiveren fikk vite om forholdet, og som "
        "forfalt etter det."
    ),
    "snarest_mulig": (
        "Snarest mulig. Loven setter ingen dato, og kriselogg finner ikke på noen: plikten vises "
        "uten dato, og de ansvarlige får en påminnelse ved slutten av neste virkedag."
    ),
    "calendar_days": (
        "Et fast antall kalenderdager fra en startdato ({starts}). Fristen er slutten av den "
        "siste dagen."
    ),
    "next_amu_meeting": (
        "Neste møte i arbeidsmiljøutvalget etter at arbeidsgiveren fikk vite om forholdet, etter "
        "møteplanen i virksomhetens katalog (directory). Datoen er en rutine, ikke en frist i "
        "loven."
    ),
    "none": "Ingen lovbestemt frist. Plikten vises med en kort tekst i stedet for en dato.",
}
FROM = {"learnt": "fra arbeidsgiveren fikk vite om forholdet"}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _link(p: Provision) -> str:
    return f"[{p.citation}]({p.url})"


def _reviewed(p: Provision) -> str:
    if p.reviewed_by is None and p.reviewed_at is None:
        return "ikke vurdert"
    by = p.reviewed_by or "ukjent"
    at = f"{p.reviewed_at:%d.%m.%Y}" if p.reviewed_at else "uten dato"
    return f"{by}, {at}"


def _cited(catalogue: Catalogue) -> dict[str, list[str]]:
    """Provision id → the sub-themes and articles citing it, in menu order."""
    found: dict[str, list[str]] = defaultdict(list)

    def add(law_id: str, where: str) -> None:
        if where not in found[law_id]:
            found[law_id].append(where)

    for theme in catalogue.themes:
        for sub in theme.subthemes:
            for _, measures in sub.phases.items():
                for m in measures:
                    for law_id in m.law:
                        add(law_id, f"`{sub.id}`")
            for a in sub.aids:
                for law_id in a.law:
                    add(law_id, f"`{sub.id}`")
    for _, articles in catalogue.resources:
        for art in articles:
            for law_id in art.law:
                add(law_id, f"`{art.id}` (ressursartikkel)")
    return found


def _starts(law: Registry) -> str:
    """Where the registry's calendar-day deadlines count from, in words."""
    questions = {f.id: f.question for f in law.facts}
    starts = {
        p.duty.deadline.from_
        for p in law.duties()
        if p.duty is not None and p.duty.deadline.rule == "calendar_days"
    }
    named = [FROM.get(s) or f"fra «{questions[s]}» (`{s}`)" for s in sorted(starts)]
    return "i registeret: " + " eller ".join(named) if named else "ingen i registeret nå"


def _intro(law: Registry) -> list[str]:
    duties = len(law.duties())
    rules = {**RULES, "calendar_days": RULES["calendar_days"].format(starts=_starts(law))}
    return [
        "# Lovgrunnlaget i kriselogg",
        "",
        "<!-- Generated from shared/law.yaml and services/content/catalogue by "
        "scripts/legal_doc.py: do not edit. -->",
        "",
        "*In English, briefly:* this document is generated from kriselogg's legal registry "
        "(`shared/law.yaml`) and its guidance catalogue, for a Norwegian lawyer to review. It "
        "lists every provision the product cites, the legal duties it tracks after an incident "
        "(what starts each duty, its deadline rule, who answers for it and who is told), and "
        "which guidance sub-themes cite what. The text is Norwegian because the statutes and "
        "the product are. Regenerate it with `.venv/bin/python scripts/legal_doc.py`; a test "
        "fails while it is stale.",
        "",
        "## Til juristen som går gjennom dette",
        "",
        "Kriselogg hjelper ledere gjennom en krise på arbeidsplassen og fører logg over det som "
        "blir gjort. Alt produktet sier om loven, kommer fra ett register, `shared/law.yaml`: "
        "veiledningen viser til bestemmelsene der, varslingstjenesten regner ut plikter og "
        "frister fra det, og portalen, API-et og loggskjemaet viser det samme. Dette dokumentet "
        f"er laget fra registeret og veiledningen. Det har {len(law.provisions)} bestemmelser, "
        f"og {duties} av dem er plikter kriselogg følger opp for hver hendelse.",
        "",
        "- **Vurdering.** Hver bestemmelse har feltene `reviewed_by` og `reviewed_at`. De står "
        "tomme til en jurist har sammenholdt bestemmelsen med lovteksten og fyller dem inn; "
        "prosjektet fyller dem aldri inn selv. Her vises et tomt felt som «ikke vurdert».",
        "- **Sammendragene er våre egne ord.** De skal være riktige, men er ikke lovtekst. "
        "Lovdata er autoritativ, og hver henvisning lenker til paragrafen der.",
        "- **Bare fakta starter en plikt.** Lederen svarer på faktaspørsmålene nedenfor når "
        "hendelsen meldes eller senere. En plikt starter når ett av faktaene i utløseren er ja "
        "(eller, for en dato, er fylt ut), og hendelsen er av en type plikten gjelder for. "
        "Alvorlighetsgraden lederen velger, starter ingen plikt.",
        "- **Type hendelse.** Hvert deltema i veiledningen er enten «arbeidsmiljø» (hendelser i "
        "eller knyttet til arbeidet) eller «personlig» (den ansattes private forhold). Se "
        "oversikten nederst.",
        "",
        "### Fristreglene",
        "",
        "| Regel | Hva kriselogg gjør |",
        "| --- | --- |",
        *[f"| `{rule}` | {_cell(text)} |" for rule, text in rules.items()],
        "",
    ]


def _facts(law: Registry) -> list[str]:
    lines = [
        "## Faktaspørsmålene",
        "",
        "Spørsmålene i meldeskjemaet som pliktene starter fra.",
        "",
        "| Id | Spørsmål | Svar | Hjelpetekst |",
        "| --- | --- | --- | --- |",
    ]
    for f in law.facts:
        answer = "ja/nei" if f.type == "bool" else "dato"
        lines.append(f"| `{f.id}` | {_cell(f.question)} | {answer} | {_cell(f.help or '')} |")
    return [*lines, ""]


def _duty(p: Provision, law: Registry) -> list[str]:
    assert p.duty is not None
    questions = {f.id: f.question for f in law.facts}
    trigger = p.duty.trigger
    deadline = p.duty.deadline
    facts = "; ".join(f"«{questions[f]}» (`{f}`)" for f in trigger.facts)
    kinds = " og ".join(KIND_NAMES[k] for k in trigger.kinds)
    start = FROM.get(deadline.from_) or f"fra «{questions[deadline.from_]}» (`{deadline.from_}`)"
    if deadline.rule == "calendar_days":
        rule = f"`calendar_days`: {deadline.days} kalenderdager {start}"
    elif deadline.rule in ("straks", "snarest_mulig", "next_amu_meeting"):
        rule = f"`{deadline.rule}`, {start}"
    else:
        rule = f"`{deadline.rule}`"
    if deadline.label:
        rule += f" (vises som «{deadline.label}»)"
    lines = [
        f"### {p.title} ({p.short})",
        "",
        f"- **Hjemmel:** {_link(p)}",
        f"- **Sammendrag:** {_cell(p.summary)}",
        f"- **Utløses av:** {facts}, ved hendelser av typen {kinds}",
    ]
    if trigger.unless_false:
        lines.append(
            f"- **Unntak:** starter ikke når «{questions[trigger.unless_false]}» "
            f"(`{trigger.unless_false}`) er besvart med nei"
        )
    lines += [
        f"- **Frist:** {rule}",
        f"- **Ansvarlig:** {ROLES[p.duty.responsible]} (virksomheten kan velge en annen rolle)",
        f"- **Får vite om plikten:** {', '.join(ROLES[r] for r in p.duty.audience)}",
    ]
    lines += _notes(p)
    lines += [f"- **Vurdert av jurist:** {_reviewed(p)}", ""]
    return lines


def _notes(p: Provision) -> list[str]:
    """How to do it, what else to know, where in the guidance: for duties and the rest alike."""
    notes = []
    if p.how:
        notes.append(f"- **Slik gjør du det:** {_cell(p.how)}")
    if p.info:
        notes.append(f"- **Til informasjon:** {_cell(p.info)}")
    if p.phase:
        notes.append(f"- **Fase i veiledningen:** {PHASES[p.phase].lower()}")
    return notes


def _other(p: Provision) -> list[str]:
    lines = [
        f"### {p.title} ({p.short})",
        "",
        f"- **Hjemmel:** {_link(p)}",
        f"- **Sammendrag:** {_cell(p.summary)}",
    ]
    lines += _notes(p)
    return [*lines, f"- **Vurdert av jurist:** {_reviewed(p)}", ""]


def _kinds(law: Registry, catalogue: Catalogue) -> list[str]:
    lines = [
        "## Deltemaene: arbeidsmiljø eller personlig",
        "",
        "Typen avgjør hvilke plikter en hendelse kan utløse, og hvem som får vite om den.",
        "",
    ]
    for kind in KINDS:
        subs = [
            f"{theme.title}: {sub.title} (`{sub.id}`)"
            for theme in catalogue.themes
            for sub in theme.subthemes
            if sub.kind == kind
        ]
        lines += [
            f"### {KIND_NAMES[kind].capitalize()} ({len(subs)} deltemaer)",
            "",
            _cell(law.kinds[kind]),
            "",
            *[f"- {s}" for s in subs],
            "",
        ]
    return lines


def _citations(law: Registry, catalogue: Catalogue) -> list[str]:
    cited = _cited(catalogue)
    lines = [
        "## Hvilke deltemaer som viser til hver bestemmelse",
        "",
        "Tiltak, hjelpemidler og ressursartikler i veiledningen viser til bestemmelsene med id. "
        "`kriselogg catalogue check` feiler på en id registeret ikke har, og på et tiltak som "
        "viser til en bestemmelse med fast fase, men står i en annen fase.",
        "",
        "| Bestemmelse | Id | Vist i |",
        "| --- | --- | --- |",
    ]
    for p in law.provisions:
        where = ", ".join(cited.get(p.id, [])) or "ingen (brukes av tjenestene, ikke veiledningen)"
        lines.append(f"| {p.short}: {_cell(p.title)} | `{p.id}` | {where} |")
    return [*lines, ""]


def render() -> str:
    law = registry()
    catalogue = load_catalogue()
    lines = [*_intro(law), *_facts(law)]
    lines += [
        "## Plikter kriselogg følger opp",
        "",
        "For hver hendelse regner kriselogg ut hvilke av disse pliktene faktaene utløser, med "
        "frist, ansvarlig og påminnelser.",
        "",
    ]
    for p in law.duties():
        lines += _duty(p, law)
    lines += [
        "## Andre bestemmelser",
        "",
        "Grunnlaget for hvem som får vite hva, hvordan loggen selv behandles, og det veiledningen "
        "ellers viser til.",
        "",
    ]
    for p in law.provisions:
        if p.duty is None:
            lines += _other(p)
    lines += _kinds(law, catalogue)
    lines += _citations(law, catalogue)
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
