"""The catalogue as a leader relies on it: complete, consistent, and right about the law."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import cli
from services.content.domain import MIN_ACUTE_MEASURES, Catalogue, CatalogueError, load
from services.content.store import catalogue_files, load_catalogue
from shared.law import registry

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
# Every sub-theme where someone can die or be seriously injured, physically or psychologically,
# in the work: the ones where aml § 5-2 can apply.
SERIOUS_INJURY = (
    "dodsfall-arbeidsulykke", "dodsfall-brat-pa-arbeidsplassen", "dodsfall-arbeidsreise-norge",
    "dodsfall-arbeidsreise-utland", "dodsfall-drap", "dodsfall-fremmedarbeidere",
    "brann-arbeidsplassen", "naturkatastrofe", "vold-fysisk", "trusler-personlig",
    "trusler-digitale", "gisseltaking", "bombetrussel", "ran", "innbrudd", "seksuell-trakassering",
    "ulykke-arbeidsplassen", "ulykke-arbeidsreise-norge", "ulykke-arbeidsreise-utland",
    "ansatt-savnet",
)  # fmt: skip
THREATS = ("trusler-personlig", "trusler-digitale", "gisseltaking", "bombetrussel")
PERSONAL = (
    "dodsfall-naere-relasjoner", "dodsfall-fritid", "dodsfall-ansattes-barn",
    "sykdom-utenfor-arbeid", "sykdom-naere-relasjoner", "samlivsbrudd", "samlivskonflikt",
    "ulykke-naere-relasjoner", "ulykke-utenfor-arbeid",
)  # fmt: skip


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
                assert all(registry().provision(law) for law in m.law), f"{sub.id}/{m.id}"
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
        # Follow-up: the employer's duty of follow-up, registration and the Nav report.
        assert {"fua-23a-5", "aml-5-1", "ftrl-13-14"} <= laws(sid, "oppfolging"), sid
        # Serious injury, also psychological: the inspectorate and the police, straks.
        assert {"aml-5-2", "aml-5-2-skriftlig"} <= laws(sid, "akutt"), sid
    assert "fua-23a-4" in laws("vold-fysisk", "forebyggende")
    every = {law for sid in VIOLENCE for p in PHASES_ALL for law in laws(sid, p)}
    every |= {law for sid in VIOLENCE for a in catalogue.subthemes[sid][1].aids for law in a.law}
    required = {"aml-2-3", "aml-4-3", "aml-5-1", "aml-5-2", "aml-6-2", "ftrl-13-14"}
    required |= {f"fua-23a-{n}" for n in range(1, 6)}
    assert required <= every


PHASES_ALL = ("forebyggende", "akutt", "oppfolging")


def test_the_law_comes_from_the_shared_registry(catalogue: Catalogue) -> None:
    """The catalogue holds no law of its own: every provision it cites is shared/law.yaml's, and
    the API shows it as the registry writes it."""
    for law_id, provision in catalogue.laws.items():
        assert provision is registry().provision(law_id)
        assert provision.url.startswith("https://lovdata.no/"), law_id
    notice = registry().provision("aml-5-2")
    assert notice is not None
    assert catalogue.law_ref("aml-5-2") == {
        "id": "aml-5-2",
        "title": "aml § 5-2",
        "citation": notice.citation,
        "summary": notice.summary,
        "url": "https://lovdata.no/lov/2005-06-17-62/§5-2",
    }
    assert catalogue.law_ref("ftrl-13-14")["title"] == "ftrl § 13-14"
    for n in range(1, 6):
        assert catalogue.law_ref(f"fua-23a-{n}")["title"] == f"fua § 23A-{n}"
    # The catalogue's registry.yaml is roles only.
    assert "laws:" not in catalogue_files()["registry.yaml"]


def test_aml_5_2_is_acute_wherever_death_or_serious_injury_can_occur(
    catalogue: Catalogue,
) -> None:
    """aml § 5-2 (1): when an employee dies or is seriously injured in a work accident, the
    employer shall straks og på hurtigste måte notify Arbeidstilsynet and the nearest police,
    confirm the notice in writing, and the safety rep shall have a copy of the confirmation.
    Serious is physical or psychological injury that is life-threatening or can cause permanent
    or long incapacity for work; work-related violence and threats count outside the workplace
    too. A notice due straks cannot wait in the follow-up phase: the nearest leader (who notify
    holds to it) does it right after the first safety and first-aid measures."""
    for sid in SERIOUS_INJURY:
        sub = catalogue.subthemes[sid][1]
        assert sub.kind == "arbeidsmiljo", sid
        acute = sub.phases.akutt
        at = [i for i, m in enumerate(acute) if "aml-5-2" in m.law]
        assert len(at) == 1, f"{sid}: no single aml § 5-2 measure in the acute phase"
        i = at[0]
        assert i <= 5, f"{sid}: the notice is measure {i + 1} of the acute phase, too late"
        notice = acute[i]
        assert notice.responsible == "naermeste-leder", sid
        text = " ".join(notice.tasks)
        for needle in ("73 19 97 00", "tast 3", "Altinn", "02800", "112", "psykisk"):
            assert needle in text, f"{sid}/{notice.id} does not say {needle!r}"
        assert "alvorlig" in text and re.search(r"\b(dør|død|drept)", text), sid
        if sid in THREATS:
            assert "alvorlig psykisk skadet" in text, sid
        confirm = acute[i + 1]
        assert confirm.law == ["aml-5-2-skriftlig"], f"{sid}: no written confirmation after it"
        confirmation = " ".join(confirm.tasks)
        assert "Altinn" in confirmation and "verneombudet" in confirmation, sid
    for sid, (_, sub) in catalogue.subthemes.items():
        for phase, measures in sub.phases.items():
            for m in measures:
                if {"aml-5-2", "aml-5-2-skriftlig"} & set(m.law):
                    assert phase == "akutt", f"{sid}/{m.id} cites aml § 5-2 in {phase}"
                    assert sid in SERIOUS_INJURY, sid
                assert "se oppfølgingsfasen" not in " ".join(m.tasks), f"{sid}/{m.id}"


def test_personal_and_work_environment_kinds(catalogue: Catalogue) -> None:
    """Personal crises go to the nearest leader and HR only; events in the work go to the safety
    rep too (aml § 6-2). notify reads the kind from shared/categories.yaml."""
    for sid in PERSONAL:
        assert catalogue.subthemes[sid][1].kind == "personlig", sid
    for sid in (*VIOLENCE, "brann-arbeidsplassen", "ulykke-arbeidsplassen", *SERIOUS_INJURY):
        assert catalogue.subthemes[sid][1].kind == "arbeidsmiljo", sid


def _texts(catalogue: Catalogue) -> list[tuple[str, list[str], list[str]]]:
    found = []
    for sid, (_, sub) in catalogue.subthemes.items():
        for _, measures in sub.phases.items():
            found += [(f"{sid}/{m.id}", [m.title, *m.tasks], m.law) for m in measures]
        found += [
            (f"{sid} aid {a.number}", [a.title, a.purpose, *a.tasks], a.law) for a in sub.aids
        ]
    return found


def test_the_injury_report_to_nav_is_sent_snarest(catalogue: Catalogue) -> None:
    """ftrl § 13-14: the employer shall snarest send an electronic injury report to Nav. The
    one-year limit is the injured person's own condition for coverage: something to tell them,
    never the employer's deadline."""
    told: set[str] = set()
    for where, texts, law in _texts(catalogue):
        text = " ".join(texts)
        assert "senest innen ett år" not in text, where
        if "ftrl-13-14" in law:
            assert "snarest" in text, f"{where} does not say snarest"
        if "innen ett år" in text:
            assert "melde selv" in text, f"{where}: the one-year limit is the injured person's"
            told.add(where.split("/")[0].split(" ")[0])
    citing = {
        w.split("/")[0].split(" ")[0] for w, _, law in _texts(catalogue) if "ftrl-13-14" in law
    }
    assert citing & set(SERIOUS_INJURY) <= told


def test_nav_is_spelt_nav(catalogue: Catalogue) -> None:
    for path, text in catalogue_files().items():
        assert not re.search(r"\bNAV", text), path
    assert catalogue.roles["nav"].title == "Nav"
    assert catalogue.roles["okonomisk-radgivning"].title == "Økonomisk rådgivning (Nav)"


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


# --- the law check on a catalogue small enough to read -----------------------------------------

TINY_MENU = """\
themes:
  - id: ulykke
    title: Ulykke
    subthemes: [liten-ulykke]
resources:
  - id: prosess
    title: Prosess
    articles: [liten-artikkel]
"""
TINY_REGISTRY = "roles:\n  - {id: naermeste-leder, title: Nærmeste leder, kind: intern}\n"
ACUTE = "".join(
    f"""\
    - id: tiltak-{n}
      title: Tiltak nummer {n}
      responsible: naermeste-leder
      tasks: [Gjør det som står her.]
"""
    for n in range(1, MIN_ACUTE_MEASURES + 1)
)
TINY_SUBTHEME = f"""\
id: liten-ulykke
title: En liten ulykke
kind: arbeidsmiljo
summary: En ansatt er skadet i arbeidet.
phases:
  akutt:
{ACUTE}\
    - id: varsle
      title: Varsle Arbeidstilsynet og politiet
      responsible: naermeste-leder
      tasks: [Ring Arbeidstilsynet og politiet.]
      law: [aml-5-2]
  oppfolging:
    - id: registrere
      title: Registrer skaden
      responsible: naermeste-leder
      tasks: [Registrer skaden i registeret.]
      law: [aml-5-1]
aids:
  - number: 1
    title: Sjekkliste
    responsible: naermeste-leder
    purpose: Å huske alt.
    tasks: [Registrer skaden.]
    law: [aml-5-1]
"""
TINY_ARTICLE = """\
id: liten-artikkel
title: En liten artikkel
summary: Om det å skrive ned.
sections:
  - title: Skriv ned
    text: Skriv ned det som skjedde.
law: [aml-3-1]
"""


def _tiny(**changes: tuple[str, str]) -> dict[str, str]:
    files = {
        "menu.yaml": TINY_MENU,
        "registry.yaml": TINY_REGISTRY,
        "ulykke/liten-ulykke.yaml": TINY_SUBTHEME,
        "ressurser/liten-artikkel.yaml": TINY_ARTICLE,
    }
    for key, (old, new) in changes.items():
        path = {"sub": "ulykke/liten-ulykke.yaml", "art": "ressurser/liten-artikkel.yaml"}[key]
        assert old in files[path]
        files[path] = files[path].replace(old, new, 1)
    return files


def _problems(files: dict[str, str]) -> list[str]:
    with pytest.raises(CatalogueError) as caught:
        load(files)
    return [str(p) for p in caught.value.problems]


def _line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_tiny_catalogue_is_sound_and_cites_only_what_it_uses() -> None:
    catalogue = load(_tiny())
    assert list(catalogue.laws) == ["aml-5-2", "aml-5-1", "aml-3-1"]  # in the registry's order
    assert catalogue.laws["aml-5-2"] is registry().provision("aml-5-2")


def test_a_citation_the_registry_lacks_is_named_with_file_and_line() -> None:
    """Every law id a measure, an aid or an article cites must be a provision of the shared
    registry (shared/law.yaml): the portal links to it and notify tracks its duty."""
    files = _tiny(
        sub=("law: [aml-5-1]\naids:", "law: [aml-5-99]\naids:"),
        art=("law: [aml-3-1]", "law: [aml-3-99]"),
    )
    files["ulykke/liten-ulykke.yaml"] = files["ulykke/liten-ulykke.yaml"].replace(
        "    law: [aml-5-1]\n", "    law: [aml-4-99]\n"
    )
    sub, art = files["ulykke/liten-ulykke.yaml"], files["ressurser/liten-artikkel.yaml"]
    problems = _problems(files)
    assert len(problems) == 3, problems
    assert (
        f"ulykke/liten-ulykke.yaml:{_line(sub, 'aml-5-99')}: tiltak registrere: "
        "ukjent lovhenvisning aml-5-99 (finnes ikke i shared/law.yaml)"
    ) in problems
    assert (
        f"ulykke/liten-ulykke.yaml:{_line(sub, 'aml-4-99')}: hjelpemiddel 1: "
        "ukjent lovhenvisning aml-4-99 (finnes ikke i shared/law.yaml)"
    ) in problems
    assert (
        f"ressurser/liten-artikkel.yaml:{_line(art, 'aml-3-99')}: "
        "ukjent lovhenvisning aml-3-99 (finnes ikke i shared/law.yaml)"
    ) in problems


def test_a_provision_with_a_phase_holds_its_measures_to_it(tmp_path: Path) -> None:
    """aml § 5-2 (1): the notice to Arbeidstilsynet and the police is due straks og på
    hurtigste måte, and its written confirmation (copy to the safety rep) follows it; the
    registry gives both phase akutt, so a measure citing them in the follow-up phase is an
    error. An aid has no phase and may cite them anywhere."""
    files = _tiny(sub=("law: [aml-5-1]\naids:", "law: [aml-5-1, aml-5-2-skriftlig]\naids:"))
    sub = files["ulykke/liten-ulykke.yaml"]
    expected = (
        f"ulykke/liten-ulykke.yaml:{_line(sub, 'aml-5-2-skriftlig')}: tiltak registrere står i "
        "oppfølgingsfasen, men aml-5-2-skriftlig (aml § 5-2) hører til akuttfasen "
        "(phase i shared/law.yaml)"
    )
    assert _problems(files) == [expected]

    # The same through `kriselogg catalogue check`, from files on disk.
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, "utf-8")
    bad = CliRunner().invoke(cli, ["catalogue", "check", "--dir", str(tmp_path)])
    assert bad.exit_code == 1
    assert expected in bad.output
    fixed = tmp_path / "ulykke" / "liten-ulykke.yaml"
    fixed.write_text(TINY_SUBTHEME.replace("law: [aml-5-2]", "law: [aml-5-2, aml-5-2-skriftlig]"))
    ok = CliRunner().invoke(cli, ["catalogue", "check", "--dir", str(tmp_path)])
    assert ok.exit_code == 0, ok.output


def test_the_version_covers_the_law_shown_beside_the_measures() -> None:
    law = registry()
    before = load(_tiny(), law).version
    reworded = tuple(
        p.model_copy(update={"summary": p.summary + " Endret."}) if p.id == "aml-5-2" else p
        for p in law.provisions
    )
    assert load(_tiny(), law.model_copy(update={"provisions": reworded})).version != before
    unused = tuple(
        p.model_copy(update={"summary": p.summary + " Endret."}) if p.id == "gdpr-33" else p
        for p in law.provisions
    )
    assert load(_tiny(), law.model_copy(update={"provisions": unused})).version == before
    reviewed = tuple(
        p.model_copy(update={"reviewed_by": "Advokat A", "reviewed_at": date(2026, 1, 5)})
        for p in law.provisions
    )
    assert load(_tiny(), law.model_copy(update={"provisions": reviewed})).version == before
