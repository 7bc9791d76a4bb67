"""The guidance catalogue: its shape, its cross-references and its search. Pure, no I/O.

The catalogue is data (YAML files under `catalogue/`), validated here on load: the menu of themes
and resources, the registry of roles, one file per sub-theme (phases with measures in priority
order, numbered aids) and one per resource article. `load` gets the files' text keyed by their
path, so that every problem it finds can name the file and the line.

The law is not the catalogue's: measures, aids and articles cite provisions of the shared legal
registry (shared/law.yaml) by id, and a provision that says which phase its measures belong in
(the notice of aml § 5-2 is acute) holds every measure citing it to that phase.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Annotated, Any, Literal, TypeVar

import snowballstemmer
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from shared.canonical import canonical_json, sha256_hex
from shared.law import Kind, Provision
from shared.law import Registry as LawRegistry
from shared.law import registry as law_registry

Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=80)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=2000)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
Url = Annotated[str, StringConstraints(pattern=r"^https://[^\s]+$", max_length=500)]

PHASES: dict[str, str] = {
    "forebyggende": "Forebyggende fase",
    "akutt": "Akuttfase",
    "oppfolging": "Oppfølgingsfase",
}
IN_PHASE = {
    "forebyggende": "den forebyggende fasen",
    "akutt": "akuttfasen",
    "oppfolging": "oppfølgingsfasen",
}
MIN_ACUTE_MEASURES = 5
# Words that betray unfinished text; the catalogue is read by people in a crisis.
PLACEHOLDER = re.compile(
    r"\b(todo|tbd|fixme|lorem|ipsum|xxx+|placeholder|plassholder)\b|\.\.\.|…", re.I
)
LINE = "__line__"  # set by the loader on every mapping, dropped before hashing
M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    line: int = Field(default=0, alias="__line__", exclude=True, repr=False)


class Role(Strict):
    id: Id
    title: Title
    kind: Literal["intern", "ekstern"]
    contact: Text | None = None  # e.g. an emergency number, for external actors


class Link(Strict):
    title: Title
    url: Url


class Support(Strict):
    internal: list[Id] = []
    external: list[Id] = []


class Measure(Strict):
    id: Id
    title: Title
    responsible: Id
    support: Support = Support()
    tasks: list[Text] = Field(min_length=1)
    aids: list[int] = []
    law: list[Id] = []
    resources: list[Id] = []


class Aid(Strict):
    number: int = Field(ge=1)
    title: Title
    responsible: Id
    purpose: Text
    tasks: list[Text] = Field(min_length=1)
    law: list[Id] = []
    resources: list[Id] = []
    links: list[Link] = []


class Phases(Strict):
    forebyggende: list[Measure] = []
    akutt: list[Measure] = []
    oppfolging: list[Measure] = []

    def items(self) -> Iterator[tuple[str, list[Measure]]]:
        for phase in PHASES:
            measures: list[Measure] = getattr(self, phase)
            if measures:
                yield phase, measures


class Subtheme(Strict):
    id: Id
    title: Title
    kind: Kind  # arbeidsmiljo (the safety rep is told, aml § 6-2) or personlig (leader and HR)
    summary: Text
    keywords: list[Title] = []  # words people use for this situation, for search
    phases: Phases
    aids: list[Aid] = []


class Section(Strict):
    title: Title
    text: Text | None = None
    steps: list[Text] = []


class Article(Strict):
    id: Id
    title: Title
    summary: Text
    keywords: list[Title] = []
    sections: list[Section] = Field(min_length=1)
    law: list[Id] = []
    links: list[Link] = []


class ThemeEntry(Strict):
    id: Id
    title: Title
    subthemes: list[Id] = Field(min_length=1)


class ResourceGroup(Strict):
    id: Id
    title: Title
    articles: list[Id] = Field(min_length=1)


class Menu(Strict):
    themes: list[ThemeEntry] = Field(min_length=1)
    resources: list[ResourceGroup] = []


class Registry(Strict):
    """The catalogue's registry.yaml: who can be responsible or give support. (The law is in
    shared/law.yaml.)"""

    roles: list[Role]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str
    token: str | None = None  # the bad reference, to find its own line from `line` on

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class CatalogueError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Theme:
    id: str
    title: str
    subthemes: tuple[Subtheme, ...]


@dataclass(frozen=True)
class Catalogue:
    themes: tuple[Theme, ...]
    resources: tuple[tuple[ResourceGroup, tuple[Article, ...]], ...]
    roles: Mapping[str, Role]
    laws: Mapping[str, Provision]
    """The shared registry's provisions the catalogue cites, in the registry's order."""

    @cached_property
    def version(self) -> str:
        """A hash of all national content, so an incident can record which guidance it followed."""
        body = {
            "themes": [
                {"id": t.id, "title": t.title, "subthemes": [s.model_dump() for s in t.subthemes]}
                for t in self.themes
            ],
            "resources": [
                {**g.model_dump(), "articles": [a.model_dump() for a in arts]}
                for g, arts in self.resources
            ],
            "roles": [r.model_dump() for r in self.roles.values()],
            # The law as shown beside the measures is part of the guidance followed; a lawyer
            # signing an entry off changes nothing a leader was shown.
            "laws": [
                law.model_dump(mode="json", exclude={"reviewed_by", "reviewed_at"})
                for law in self.laws.values()
            ],
        }
        return sha256_hex(canonical_json(body))[:16]

    @cached_property
    def search_index(self) -> SearchIndex:
        return SearchIndex(self)

    @cached_property
    def subthemes(self) -> dict[str, tuple[Theme, Subtheme]]:
        return {s.id: (t, s) for t in self.themes for s in t.subthemes}

    @cached_property
    def articles(self) -> dict[str, tuple[ResourceGroup, Article]]:
        return {a.id: (g, a) for g, arts in self.resources for a in arts}

    # --- the API's view, resolved once: ids become {id, title} so the portal needs no lookups ---

    def role_ref(self, role_id: str) -> dict[str, Any]:
        role = self.roles[role_id]
        return {
            "id": role.id,
            "title": role.title,
            **({"contact": role.contact} if role.contact else {}),
        }

    def law_ref(self, law_id: str) -> dict[str, Any]:
        law = self.laws[law_id]
        return {
            "id": law.id,
            "title": law.short,  # "aml § 5-2", as shown beside a measure
            "citation": law.citation,
            "summary": law.summary,
            "url": law.url,
        }

    def article_ref(self, article_id: str) -> dict[str, str]:
        return {"id": article_id, "title": self.articles[article_id][1].title}

    def tree(self) -> dict[str, Any]:
        return {
            "themes": [
                {
                    "id": t.id,
                    "title": t.title,
                    "subthemes": [{"id": s.id, "title": s.title} for s in t.subthemes],
                }
                for t in self.themes
            ],
            "resources": [
                {
                    "id": g.id,
                    "title": g.title,
                    "articles": [{"id": a.id, "title": a.title} for a in arts],
                }
                for g, arts in self.resources
            ],
        }

    def subtheme_view(self, subtheme_id: str) -> dict[str, Any]:
        theme, sub = self.subthemes[subtheme_id]
        aid_titles = {a.number: a.title for a in sub.aids}

        def measure(priority: int, m: Measure) -> dict[str, Any]:
            return {
                "id": m.id,
                "priority": priority,
                "title": m.title,
                "responsible": self.role_ref(m.responsible),
                "support": {
                    "internal": [self.role_ref(r) for r in m.support.internal],
                    "external": [self.role_ref(r) for r in m.support.external],
                },
                "tasks": list(m.tasks),
                "aids": [{"number": n, "title": aid_titles[n]} for n in m.aids],
                "law": [self.law_ref(x) for x in m.law],
                "resources": [self.article_ref(x) for x in m.resources],
            }

        return {
            "id": sub.id,
            "title": sub.title,
            "theme": {"id": theme.id, "title": theme.title},
            "summary": sub.summary,
            "phases": [
                {
                    "id": phase,
                    "title": PHASES[phase],
                    "measures": [measure(i, m) for i, m in enumerate(measures, start=1)],
                }
                for phase, measures in sub.phases.items()
            ],
            "aids": [
                {
                    "number": a.number,
                    "title": a.title,
                    "responsible": self.role_ref(a.responsible),
                    "purpose": a.purpose,
                    "tasks": list(a.tasks),
                    "law": [self.law_ref(x) for x in a.law],
                    "resources": [self.article_ref(x) for x in a.resources],
                    "links": [link.model_dump() for link in a.links],
                }
                for a in sub.aids
            ],
        }

    def article_view(self, article_id: str) -> dict[str, Any]:
        group, art = self.articles[article_id]
        body = art.model_dump()
        body["group"] = {"id": group.id, "title": group.title}
        body["law"] = [self.law_ref(x) for x in art.law]
        return body


# --- loading ---------------------------------------------------------------------------------


# libyaml's parser when the wheel has it: parsing ~900 measures takes 0.1 s instead of 0.7 s.
class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Records the 1-based line of every mapping, so problems can point into the file."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        mapping[LINE] = node.start_mark.line + 1
        return mapping


def _parse(path: str, text: str, problems: list[Problem]) -> Any:
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.append(Problem(path, mark.line + 1 if mark else 1, f"ugyldig YAML: {exc}"))
        return None


def _line_of(raw: Any, loc: tuple[int | str, ...]) -> int:
    line = raw.get(LINE, 1) if isinstance(raw, dict) else 1
    node = raw
    for key in loc:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict):
            line = node.get(LINE, line)
    return int(line)


def _validate(model: type[M], path: str, raw: Any, problems: list[Problem]) -> M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            problems.append(Problem(path, _line_of(raw, error["loc"]), f"{where}: {error['msg']}"))
        return None


def _strings(model: BaseModel) -> Iterator[str]:
    for value in model.__dict__.values():
        if isinstance(value, str):
            yield value
        elif isinstance(value, BaseModel):
            yield from _strings(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    yield item
                elif isinstance(item, BaseModel):
                    yield from _strings(item)


def load(files: Mapping[str, str], law: LawRegistry | None = None) -> Catalogue:
    """Validate the catalogue files (path → text) and resolve every reference.

    Law ids are resolved in `law`, the shared legal registry unless another is given.
    Raises CatalogueError with every problem found, each naming its file and line.
    """
    provisions = {p.id: p for p in (law if law is not None else law_registry()).provisions}
    problems: list[Problem] = []
    menu_raw = _parse("menu.yaml", files.get("menu.yaml", ""), problems)
    registry_raw = _parse("registry.yaml", files.get("registry.yaml", ""), problems)
    menu = _validate(Menu, "menu.yaml", menu_raw, problems)
    registry = _validate(Registry, "registry.yaml", registry_raw, problems)

    subthemes: dict[str, tuple[str, Subtheme]] = {}
    articles: dict[str, tuple[str, Article]] = {}
    for path, text in sorted(files.items()):
        if path in ("menu.yaml", "registry.yaml") or not path.endswith(".yaml"):
            continue
        raw = _parse(path, text, problems)
        model: type[Subtheme] | type[Article] = (
            Article if path.startswith("ressurser/") else Subtheme
        )
        item = _validate(model, path, raw, problems)
        if item is None:
            continue
        expected = path.rsplit("/", 1)[-1].removesuffix(".yaml")
        if item.id != expected:
            problems.append(
                Problem(path, item.line, f"id {item.id} skal være lik filnavnet {expected}")
            )
        target: dict[str, Any] = articles if isinstance(item, Article) else subthemes
        if item.id in target:
            problems.append(
                Problem(path, item.line, f"id {item.id} finnes også i {target[item.id][0]}")
            )
        target[item.id] = (path, item)
        for text_value in _strings(item):
            if PLACEHOLDER.search(text_value):
                problems.append(Problem(path, item.line, f"plassholdertekst: {text_value[:60]!r}"))

    if menu is None or registry is None:
        raise CatalogueError(problems)
    roles = _unique("registry.yaml", registry.roles, problems)
    for path, sub in subthemes.values():
        _check_subtheme(path, sub, roles, provisions, articles, problems)
    for path, art in articles.values():
        for ref in art.law:
            if ref not in provisions:
                problems.append(Problem(path, art.line, _unknown_law(ref), ref))

    themes: list[Theme] = []
    seen_theme: set[str] = set()
    listed: set[str] = set()
    for entry in menu.themes:
        if entry.id in seen_theme:
            problems.append(Problem("menu.yaml", entry.line, f"temaet {entry.id} står to ganger"))
        seen_theme.add(entry.id)
        resolved: list[Subtheme] = []
        for sid in entry.subthemes:
            if sid in listed:
                problems.append(Problem("menu.yaml", entry.line, f"deltemaet {sid} står to ganger"))
            listed.add(sid)
            if sid not in subthemes:
                problems.append(
                    Problem(
                        "menu.yaml",
                        entry.line,
                        f"deltemaet {sid} har ingen fil {entry.id}/{sid}.yaml",
                        sid,
                    )
                )
            else:
                path, sub = subthemes[sid]
                if not path.startswith(f"{entry.id}/"):
                    problems.append(
                        Problem(path, sub.line, f"filen skal ligge i mappen {entry.id}/")
                    )
                resolved.append(sub)
        themes.append(Theme(entry.id, entry.title, tuple(resolved)))
    for sid, (path, sub) in subthemes.items():
        if sid not in listed:
            problems.append(Problem(path, sub.line, f"deltemaet {sid} står ikke i menu.yaml"))

    groups: list[tuple[ResourceGroup, tuple[Article, ...]]] = []
    listed_articles: set[str] = set()
    for group in menu.resources:
        found: list[Article] = []
        for aid in group.articles:
            listed_articles.add(aid)
            if aid not in articles:
                problems.append(
                    Problem(
                        "menu.yaml",
                        group.line,
                        f"ressursen {aid} har ingen fil ressurser/{aid}.yaml",
                        aid,
                    )
                )
            else:
                found.append(articles[aid][1])
        groups.append((group, tuple(found)))
    for aid, (path, art) in articles.items():
        if aid not in listed_articles:
            problems.append(Problem(path, art.line, f"ressursen {aid} står ikke i menu.yaml"))

    if problems:
        raise CatalogueError([_pinpoint(p, files) for p in problems])
    cited = {ref for _, sub in subthemes.values() for ref in _cited(sub)}
    cited |= {ref for _, art in articles.values() for ref in art.law}
    laws = {pid: p for pid, p in provisions.items() if pid in cited}
    return Catalogue(tuple(themes), tuple(groups), roles, laws)


def _cited(sub: Subtheme) -> Iterator[str]:
    for _, measures in sub.phases.items():
        for m in measures:
            yield from m.law
    for a in sub.aids:
        yield from a.law


def _unknown_law(ref: str) -> str:
    return f"ukjent lovhenvisning {ref} (finnes ikke i shared/law.yaml)"


def _pinpoint(problem: Problem, files: Mapping[str, str]) -> Problem:
    """Move a problem about a reference to the line where that reference is written."""
    if problem.token is None:
        return problem
    word = re.compile(rf"(?<![\w-]){re.escape(problem.token)}(?![\w-])")
    lines = files.get(problem.file, "").splitlines()
    for number in range(max(problem.line, 1), len(lines) + 1):
        if word.search(lines[number - 1]):
            return Problem(problem.file, number, problem.message)
    return problem


def _unique(path: str, items: list[Role], problems: list[Problem]) -> dict[str, Role]:
    found: dict[str, Role] = {}
    for item in items:
        if item.id in found:
            problems.append(Problem(path, item.line, f"id {item.id} står to ganger"))
        found[item.id] = item
    return found


def _check_subtheme(
    path: str,
    sub: Subtheme,
    roles: Mapping[str, Role],
    laws: Mapping[str, Provision],
    articles: Mapping[str, Any],
    problems: list[Problem],
) -> None:
    def bad(line: int, message: str, token: str | None = None) -> None:
        problems.append(Problem(path, line, message, token))

    numbers = [a.number for a in sub.aids]
    if numbers != list(range(1, len(numbers) + 1)):
        bad(sub.line, f"hjelpemidlene skal være nummerert 1, 2, 3 … i rekkefølge, ikke {numbers}")

    def refs(
        line: int, owner: str, law: list[str], resources: list[str], phase: str | None = None
    ) -> None:
        for ref in law:
            provision = laws.get(ref)
            if provision is None:
                bad(line, f"{owner}: {_unknown_law(ref)}", ref)
            elif phase is not None and provision.phase not in (None, phase):
                # e.g. aml § 5-2: the notice is due straks, so it cannot wait for the follow-up.
                bad(
                    line,
                    f"{owner} står i {IN_PHASE[phase]}, men {ref} ({provision.short}) hører"
                    f" til {IN_PHASE[provision.phase]} (phase i shared/law.yaml)",
                    ref,
                )
        for ref in resources:
            if ref not in articles:
                bad(line, f"{owner}: ukjent ressurs {ref}", ref)

    def role(line: int, owner: str, role_id: str, kind: str | None) -> None:
        if role_id not in roles:
            bad(line, f"{owner}: ukjent rolle {role_id}", role_id)
        elif kind is not None and roles[role_id].kind != kind:
            bad(line, f"{owner}: {role_id} er {roles[role_id].kind}, ikke {kind}", role_id)

    if len(sub.phases.akutt) < MIN_ACUTE_MEASURES:
        bad(
            sub.phases.line or sub.line,
            f"akuttfasen har {len(sub.phases.akutt)} tiltak, minst {MIN_ACUTE_MEASURES}",
        )
    seen: dict[str, int] = defaultdict(int)
    for phase, measures in sub.phases.items():
        for m in measures:
            owner = f"tiltak {m.id}"
            seen[m.id] += 1
            if seen[m.id] == 2:
                bad(m.line, f"{owner}: id står to ganger i deltemaet")
            role(m.line, owner, m.responsible, "intern")
            for r in m.support.internal:
                role(m.line, owner, r, "intern")
            for r in m.support.external:
                role(m.line, owner, r, "ekstern")
            for n in m.aids:
                if n not in numbers:
                    bad(m.line, f"{owner} ({PHASES[phase]}): hjelpemiddel {n} finnes ikke")
            refs(m.line, owner, m.law, m.resources, phase)
    for a in sub.aids:
        owner = f"hjelpemiddel {a.number}"
        role(a.line, owner, a.responsible, "intern")
        refs(a.line, owner, a.law, a.resources)


# --- search ----------------------------------------------------------------------------------

_STEMMER = snowballstemmer.stemmer("norwegian")
_FOLD = str.maketrans({"æ": "ae", "ø": "o", "å": "a"})
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_DOUBLE = re.compile(r"([bcdfghjklmnpqrstvwxz])\1")
# A Norwegian noun in -el/-er/-en loses that e when inflected (trussel → trusler, sykkel →
# sykler): drop it after a consonant so both forms meet on one stem.
_LOST_E = re.compile(r"(?<=[bcdfghjklmnpqrstvwxz])e(?=[lrn]$)")
MIN_PREFIX = 4


@functools.lru_cache(maxsize=65536)
def normalise(word: str) -> str:
    """The search key of a word: lower case, stemmed, æøå and accents folded, doubles single."""
    lower = word.lower()
    stem = _STEMMER.stemWord(lower)
    folded = unicodedata.normalize("NFKD", stem.translate(_FOLD))
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return _LOST_E.sub("", _DOUBLE.sub(r"\1", plain))


# Little words that say nothing about the situation; a query "trusler på sms" means "trusler sms".
_STOPWORDS = (
    "og i på av til for med en et ei den det de som er var ved om fra etter"
    " under mot eller å at har hos seg sin sitt sine vi du jeg man"
)
STOPWORDS = frozenset(_STOPWORDS.split())


def terms(text: str) -> list[str]:
    return [normalise(w) for w in _WORD.findall(text) if w.lower() not in STOPWORDS]


# Where a word is found says how well the hit answers the query.
WEIGHTS = {"title": 10.0, "keyword": 6.0, "theme": 4.0, "measure": 3.0, "summary": 2.0, "task": 1.0}
# The query is exactly a keyword or the title: the authors say this is the situation meant.
EXACT_BONUS = 8.0
KIND_ORDER = {"subtheme": 0, "article": 1, "measure": 2}


@dataclass(frozen=True)
class Hit:
    kind: Literal["subtheme", "measure", "article"]
    id: str
    title: str
    score: float
    subtheme: str | None = None
    phase: str | None = None


class SearchIndex:
    """An in-memory inverted index over the catalogue; it is small and never changes at runtime.

    A document scores, per query word, the weight of the best field the word is found in, plus
    a little for how often it is mentioned (so long documents do not win by length alone).
    Every query word must match. Sub-themes come before articles, articles before measures: a
    leader searching "brann" wants the fire guidance first, then the single measures.
    """

    def __init__(self, catalogue: Catalogue) -> None:
        # term → document → (best field weight, mentions)
        self._postings: dict[str, dict[tuple[str, str], tuple[float, int]]] = defaultdict(dict)
        self._phrases: dict[tuple[str, str], set[tuple[str, ...]]] = defaultdict(set)
        self._docs: dict[tuple[str, str], Hit] = {}
        for theme, sub in catalogue.subthemes.values():
            key = ("subtheme", sub.id)
            self._docs[key] = Hit("subtheme", sub.id, sub.title, 0.0)
            self._add(key, sub.title, "title", phrase=True)
            self._add(key, theme.title, "theme", phrase=True)
            for kw in sub.keywords:
                self._add(key, kw, "keyword", phrase=True)
            self._add(key, sub.summary, "summary")
            for phase, measures in sub.phases.items():
                for m in measures:
                    mkey = ("measure", f"{sub.id}/{m.id}")
                    self._docs[mkey] = Hit("measure", m.id, m.title, 0.0, sub.id, phase)
                    self._add(mkey, m.title, "title", phrase=True)
                    self._add(key, m.title, "measure")
                    for task in m.tasks:
                        self._add(mkey, task, "task")
                        self._add(key, task, "task")
        for _, art in catalogue.articles.values():
            key = ("article", art.id)
            self._docs[key] = Hit("article", art.id, art.title, 0.0)
            self._add(key, art.title, "title", phrase=True)
            for kw in art.keywords:
                self._add(key, kw, "keyword", phrase=True)
            self._add(key, art.summary, "summary")
            for section in art.sections:
                self._add(key, section.title, "measure")
                for step in section.steps:
                    self._add(key, step, "task")
        self._terms = sorted(self._postings)

    def _add(self, key: tuple[str, str], text: str, field: str, phrase: bool = False) -> None:
        found = terms(text)
        weight = WEIGHTS[field]
        for term in found:
            best, mentions = self._postings[term].get(key, (0.0, 0))
            self._postings[term][key] = (max(best, weight), mentions + 1)
        if phrase and found:
            self._phrases[key].add(tuple(sorted(set(found))))

    def _expand(self, term: str) -> list[tuple[str, float]]:
        """The query term itself, and, for longer terms, words it begins (vold → voldshendelse)."""
        found = [(term, 1.0)] if term in self._postings else []
        if len(term) >= MIN_PREFIX:
            i = bisect.bisect_left(self._terms, term)
            while i < len(self._terms) and self._terms[i].startswith(term):
                if self._terms[i] != term:
                    found.append((self._terms[i], 0.5))
                i += 1
        return found

    def search(self, query: str, limit: int = 20) -> list[Hit]:
        """Ranked hits, at most `limit` of each kind."""
        query_terms = list(dict.fromkeys(terms(query)))
        if not query_terms:
            return []
        scores: dict[tuple[str, str], float] = defaultdict(float)
        matched: dict[tuple[str, str], int] = defaultdict(int)
        for term in query_terms:
            best: dict[tuple[str, str], float] = {}
            for variant, factor in self._expand(term):
                for key, (weight, mentions) in self._postings[variant].items():
                    value = (weight + 0.5 * math.log1p(mentions)) * factor
                    best[key] = max(best.get(key, 0.0), value)
            for key, value in best.items():
                scores[key] += value
                matched[key] += 1
        phrase = tuple(sorted(query_terms))
        for key in scores:
            if phrase in self._phrases[key]:
                scores[key] += EXACT_BONUS
        ranked = sorted(
            (key for key in scores if matched[key] == len(query_terms)),  # every word matches
            key=lambda k: (KIND_ORDER[k[0]], -scores[k], k),
        )
        taken: dict[str, int] = defaultdict(int)
        hits: list[Hit] = []
        for key in ranked:
            if taken[key[0]] < limit:
                taken[key[0]] += 1
                hits.append(replace(self._docs[key], score=round(scores[key], 2)))
        return hits


# --- local additions: an organisation's own content beside the national catalogue -----------


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Title
    role: Title | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ]{3,20}$")] | None = None
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None


class LocalAddition(BaseModel):
    """What an organisation's admin adds to a sub-theme: an article, an aid or a contact."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["article", "aid", "contact"]
    title: Title
    text: Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000)] | None = None
    tasks: list[Text] = Field(default=[], max_length=30)
    url: Url | None = None
    contact: Contact | None = None

    @model_validator(mode="after")
    def _complete(self) -> LocalAddition:
        if self.kind == "contact" and self.contact is None:
            raise ValueError("a contact needs `contact` with at least a name")
        if self.kind == "article" and not self.text:
            raise ValueError("an article needs `text`")
        if self.kind == "aid" and not (self.tasks or self.text):
            raise ValueError("an aid needs `tasks` or `text`")
        return self
