"""The catalogue as a leader relies on it: complete, consistent, and right about the law."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from services.cli import cli
from services.content.domain import MIN_ACUTE_MEASURES, Catalogue
from services.content.store import load_catalogue

CATALOGUE_DIR = Path(__file__).parents[2] / "services" / "content" / "catalogue"

# The menu of the product sheet (seeds/000): theme → the situations it lists. "Vold og trusler
# mot ansatte" is split three ways (physical violence, threats in person, threats by other means)
# because each needs its own acute routine.
PRODUCT_SHEET = {
    "Dødsfall": [
        "dodsfall-arbeidsulykke", "dodsfall-brat-pa-arbeidsplassen", "dodsfall-arbeidsreise-norge",
        "dodsfall-arbeidsreise-utland", "dodsfall-fritid", "dodsfall-fremmedarbeidere",
        "dodsfall-selvmord", "dodsfall-drap", "dodsfall-naere-relasjoner", "dodsfall-ansattes-barn",
    ],
    "Brann og redning": ["brann-arbeidsplassen", "naturkatastrofe"],
    "Trusselsituasjoner": [
        "vold-fysisk", "trusler-personlig", "trusler-digitale", "gisseltaking", "bombetrussel",
        "digitalt-angrep",
    ],
    "Kriminalitet mot virksomheten": ["ran", "innbrudd", "okonomisk-utroskap"],
    "Krenkelser på arbeidsplassen": ["seksuell-trakassering", "mobbing", "digitale-krenkelser"],
    "Konflikt": ["konflikt-mellom-ansatte", "konflikt-ansatt-leder", "konflikt-med-leder"],
    "Familiært": [
        "anklage-incest", "utsatt-incest", "vold-naere-relasjoner", "samlivskonflikt",
        "samlivsbrudd", "barns-problemer", "okonomiske-problemer",
    ],
    "Sosialt": ["anklage-overgrep", "alkoholmisbruk", "rusmisbruk", "spilleavhengighet"],
    "Flerkulturelle utfordringer": ["kulturelle-motsetninger", "kriser-i-hjemland"],
    "Endring i arbeidsforhold": ["omstilling", "permittering", "advarsel", "oppsigelse", "avskjed"],
    "Tvister": ["brudd-arbeidsreglement", "rettslige-tvister"],
    "Sykdom": [
        "sykefravaer", "sykdom-arbeidsplassen", "sykdom-arbeidsreise-norge",
        "sykdom-arbeidsreise-utland", "sykdom-utenfor-arbeid", "graviditet", "psykiske-lidelser",
        "sykdom-naere-relasjoner", "sykdom-ansattes-barn",
    ],
    "Ulykke": [
        "ulykke-arbeidsplassen", "ulykke-arbeidsreise-norge", "ulykke-arbeidsreise-utland",
        "ulykke-utenfor-arbeid", "ulykke-naere-relasjoner", "ansatt-savnet",
    ],
}  # fmt: skip
RESOURCES = {
    "Førstehjelp": 5,  # sickness/accidents, poisoning, burns, chart, equipment
    "Lage kriseplaner": 3,  # preparedness principles, safety planning, crisis management
    "Prosess": 1,  # the necessary conversation
}
VIOLENCE = ("vold-fysisk", "trusler-personlig", "trusler-digitale")


def test_every_theme_and_subtheme_of_the_product_sheet_is_there(catalogue: Catalogue) -> None:
    menu = {t.title: [s.id for s in t.subthemes] for t in catalogue.themes}
    assert menu == PRODUCT_SHEET
    resources = {g.title: len(articles) for g, articles in catalogue.resources}
    assert resources == RESOURCES
    assert "den-nodvendige-samtalen" in catalogue.articles


def test_every_subtheme_has_an_acute_phase_a_leader_can_follow(catalogue: Catalogue) -> None:
    for theme, sub in catalogue.subthemes.values():
        acute = sub.phases.akutt
        assert len(acute) >= MIN_ACUTE_MEASURES, f"{theme.id}/{sub.id}: {len(acute)} measures"
        for _, measures in sub.phases.items():
            for m in measures:
                role = catalogue.roles[m.responsible]
                assert role.kind == "intern", f"{sub.id}/{m.id} is the job of {role.title}"
                assert m.tasks, f"{sub.id}/{m.id} has no tasks"
                numbers = {a.number for a in sub.aids}
                assert set(m.aids) <= numbers, f"{sub.id}/{m.id} refers to a missing aid"
                assert set(m.law) <= set(catalogue.laws)
        for aid in sub.aids:
            assert aid.purpose and aid.tasks and aid.responsible in catalogue.roles


def test_violence_and_threats_in_full_depth(catalogue: Catalogue) -> None:
    for sid in VIOLENCE:
        phases = [p for p, _ in catalogue.subthemes[sid][1].phases.items()]
        assert phases == ["forebyggende", "akutt", "oppfolging"], sid
    violence = catalogue.subthemes["vold-fysisk"][1]
    assert len(violence.phases.akutt) >= 8

    def laws(sid: str, phase: str) -> set[str]:
        measures = getattr(catalogue.subthemes[sid][1].phases, phase)
        return {law for m in measures for law in m.law}

    for sid in VIOLENCE:
        # Prevention rests on the regulation's risk assessment, training and information.
        assert {"fua-23a-1", "fua-23a-2", "fua-23a-3"} <= laws(sid, "forebyggende"), sid
        # Follow-up: the employer's duty of follow-up, registration and the NAV report.
        assert {"fua-23a-5", "aml-5-1", "ftrl-13-14"} <= laws(sid, "oppfolging"), sid
    assert "aml-5-2" in laws("vold-fysisk", "oppfolging")  # serious injury: inspectorate, police
    assert "fua-23a-4" in laws("vold-fysisk", "forebyggende")
    every = {law for sid in VIOLENCE for p in PHASES_ALL for law in laws(sid, p)}
    every |= {law for sid in VIOLENCE for a in catalogue.subthemes[sid][1].aids for law in a.law}
    required = {"aml-2-3", "aml-4-3", "aml-5-1", "aml-5-2", "aml-6-2", "ftrl-13-14"}
    required |= {f"fua-23a-{n}" for n in range(1, 6)}
    assert required <= every


PHASES_ALL = ("forebyggende", "akutt", "oppfolging")


def test_legal_references_are_stated_correctly(catalogue: Catalogue) -> None:
    titles = {law_id: law.title for law_id, law in catalogue.laws.items()}
    assert titles["aml-5-2"] == "Arbeidsmiljøloven § 5-2"
    assert titles["ftrl-13-14"] == "Folketrygdloven § 13-14"
    for n in range(1, 6):
        assert titles[f"fua-23a-{n}"] == f"Forskrift om utførelse av arbeid § 23A-{n}"
    assert "ett år" in catalogue.laws["ftrl-13-14"].summary
    assert "verneombudet" in catalogue.laws["aml-5-2"].summary
    assert "Arbeidstilsynet" in catalogue.laws["aml-5-2"].summary
    assert "politi" in catalogue.laws["aml-5-2"].summary
    for law in catalogue.laws.values():
        assert law.url.startswith("https://lovdata.no/"), law.id


def test_the_content_version_changes_with_the_content(tmp_path: Path) -> None:
    copy = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE_DIR, copy)
    before = load_catalogue(copy).version
    path = copy / "trusler" / "vold-fysisk.yaml"
    path.write_text(path.read_text("utf-8").replace("Ring 112", "Ring straks 112"), "utf-8")
    assert load_catalogue(copy).version != before
    assert load_catalogue(CATALOGUE_DIR).version == before  # and is stable for the same files


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def test_catalogue_check_names_file_and_line_of_every_broken_reference(tmp_path: Path) -> None:
    ok = CliRunner().invoke(cli, ["catalogue", "check"])
    assert ok.exit_code == 0, ok.output
    assert "catalogue OK" in ok.output

    copy = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE_DIR, copy)
    violence = copy / "trusler" / "vold-fysisk.yaml"
    text = violence.read_text("utf-8")
    text = text.replace("responsible: hr\n", "responsible: personalsjef\n", 1)
    text = text.replace("law: [ftrl-13-14]", "law: [ftrl-13-99]", 1)
    text = text.replace("aids: [6]", "aids: [7]", 1)
    violence.write_text(text, "utf-8")
    (copy / "ulykke" / "ansatt-savnet.yaml").unlink()
    menu = copy / "menu.yaml"
    menu.write_text(menu.read_text("utf-8").replace("- ran\n", "- ran\n      - ran\n"), "utf-8")

    bad = CliRunner().invoke(cli, ["catalogue", "check", "--dir", str(copy)])
    assert bad.exit_code == 1
    out = bad.output
    assert f"trusler/vold-fysisk.yaml:{_line_of(violence, 'personalsjef')}: " in out
    assert "ukjent rolle personalsjef" in out
    assert f"trusler/vold-fysisk.yaml:{_line_of(violence, 'ftrl-13-99')}: " in out
    assert "ukjent lovhenvisning ftrl-13-99" in out
    assert "hjelpemiddel 7 finnes ikke" in out
    assert f"menu.yaml:{_line_of(menu, 'ansatt-savnet')}: " in out
    assert "deltemaet ansatt-savnet har ingen fil ulykke/ansatt-savnet.yaml" in out
    assert "deltemaet ran står to ganger" in out


def test_catalogue_check_rejects_bad_yaml_and_placeholder_text(tmp_path: Path) -> None:
    copy = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE_DIR, copy)
    fire = copy / "brann-redning" / "brann-arbeidsplassen.yaml"
    text = fire.read_text("utf-8")
    assert "keywords:\n" in text
    fire.write_text(text.replace("keywords:\n", "keywords:\n  - TODO skriv dette\n", 1), "utf-8")
    murder = copy / "dodsfall" / "dodsfall-drap.yaml"
    murder.write_text(murder.read_text("utf-8") + "\nphases: [unclosed\n", "utf-8")

    bad = CliRunner().invoke(cli, ["catalogue", "check", "--dir", str(copy)])
    assert bad.exit_code == 1
    assert "dodsfall/dodsfall-drap.yaml:" in bad.output and "ugyldig YAML" in bad.output
    assert "brann-redning/brann-arbeidsplassen.yaml:" in bad.output
    assert "plassholdertekst: 'TODO skriv dette'" in bad.output
