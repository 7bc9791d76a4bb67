"""Search as a Norwegian user types: any case, with or without æøå, any inflection."""

from __future__ import annotations

import pytest

from services.content.domain import Catalogue, SearchIndex, normalise


@pytest.fixture(scope="module")
def index(catalogue: Catalogue) -> SearchIndex:
    return SearchIndex(catalogue)


def first_subtheme(index: SearchIndex, query: str) -> str:
    hits = index.search(query)
    assert hits, f"nothing found for {query!r}"
    assert hits[0].kind == "subtheme", f"{query!r} first found {hits[0]}"
    return hits[0].id


@pytest.mark.parametrize("query", ["trusler", "trussel", "truslene", "TRUSSELEN", "trusler på sms"])
def test_threats_in_any_inflection_find_the_threat_subthemes(
    index: SearchIndex, query: str
) -> None:
    assert first_subtheme(index, query) in {"trusler-personlig", "trusler-digitale"}


@pytest.mark.parametrize("query", ["vold", "Vold", "volden", "fysisk vold", "slått"])
def test_violence_finds_physical_violence_first(index: SearchIndex, query: str) -> None:
    assert first_subtheme(index, query) == "vold-fysisk"


@pytest.mark.parametrize("query", ["brann", "brannen", "Brann på arbeidsplassen", "BRANN"])
def test_fire_finds_the_fire_subtheme_first(index: SearchIndex, query: str) -> None:
    assert first_subtheme(index, query) == "brann-arbeidsplassen"


@pytest.mark.parametrize("query", ["dodsfall", "dødsfall", "Dødsfallet", "DODSFALL"])
def test_death_without_or_with_the_letter_o_slash(index: SearchIndex, query: str) -> None:
    assert first_subtheme(index, query).startswith("dodsfall-")


def test_more_specific_words_narrow_the_result(index: SearchIndex) -> None:
    assert first_subtheme(index, "dødsfall arbeidsreise utlandet") == "dodsfall-arbeidsreise-utland"
    assert first_subtheme(index, "selvmord") == "dodsfall-selvmord"
    assert index.search("vold qwxzv") == []  # every word must match


def test_measures_and_tasks_are_found_too(index: SearchIndex) -> None:
    hits = index.search("yrkesskademelding")
    assert any(h.kind == "measure" and h.subtheme == "vold-fysisk" for h in hits)
    hits = index.search("psykisk førstehjelp")
    assert any(h.kind == "measure" and h.id == "psykisk-forstehjelp" for h in hits)


def test_subthemes_come_first_then_articles_then_measures_each_by_score(
    index: SearchIndex,
) -> None:
    hits = index.search("førstehjelp")
    kinds = [h.kind for h in hits]
    assert kinds == sorted(kinds, key=["subtheme", "article", "measure"].index)
    assert {"subtheme", "article", "measure"} <= set(kinds)
    for kind in ("subtheme", "article", "measure"):
        scores = [h.score for h in hits if h.kind == kind]
        assert scores == sorted(scores, reverse=True)


def test_normalise_folds_letters_and_inflections() -> None:
    assert normalise("trussel") == normalise("trusler") == normalise("truslene")
    assert normalise("Dødsfall") == normalise("dodsfall")
    assert normalise("Ulykken") == normalise("ulykker")
