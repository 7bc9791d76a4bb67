"""The legal registry (shared/law.yaml) and the category index (shared/categories.yaml).

Pure apart from reading those two packaged files once. Every service reads the law from here:
the catalogue checks its citations against it, notify computes duties from it, the portal asks
its facts, the API documents them and the log form prints them. Which duty applies to an
incident is decided here (`applicable`); when it falls due is notify's business, because that
needs the organisation's calendar and people.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

Kind = Literal["arbeidsmiljo", "personlig"]
KINDS: tuple[Kind, ...] = ("arbeidsmiljo", "personlig")
DutyRole = Literal["nearest_leader", "hr", "safety_rep", "main_safety_rep"]
Rule = Literal["straks", "snarest_mulig", "calendar_days", "next_amu_meeting", "none"]

LAW_PATH = Path(__file__).with_name("law.yaml")
CATEGORIES_PATH = Path(__file__).with_name("categories.yaml")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fact(Strict):
    id: str
    type: Literal["bool", "date"]
    question: str
    """Asked in the report form, in Norwegian."""
    help: str | None = None
    description: str
    """For the API's schema, in English."""


class Trigger(Strict):
    facts: tuple[str, ...] = Field(min_length=1)
    """Any of these facts being true (or, for a date fact, given) starts the duty."""
    kinds: tuple[Kind, ...] = Field(min_length=1)
    unless_false: str | None = None
    """A fact that, when explicitly false, keeps the duty from starting."""


class Deadline(Strict):
    rule: Rule
    from_: Literal["learnt", "sick_leave_from"] = Field(default="learnt", alias="from")
    days: int | None = Field(default=None, ge=1, le=3660)
    label: str | None = None
    """How a deadline without a date reads; the rule's own words otherwise."""

    @model_validator(mode="after")
    def _days_iff_calendar(self) -> Deadline:
        if (self.rule == "calendar_days") != (self.days is not None):
            raise ValueError("days is given exactly when the rule is calendar_days")
        return self


class Duty(Strict):
    trigger: Trigger
    deadline: Deadline
    responsible: DutyRole
    audience: tuple[DutyRole, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _responsible_is_told(self) -> Duty:
        if self.responsible not in self.audience:
            raise ValueError(f"the responsible role {self.responsible} must be in the audience")
        return self


class Provision(Strict):
    id: str = Field(pattern=r"^[a-z0-9-]{2,40}$")
    citation: str
    """The official citation, as a lawyer writes it."""
    short: str
    """As it is shown beside a measure or a deadline: "aml § 5-2"."""
    url: str = Field(pattern=r"^https://lovdata\.no/(lov|forskrift)/")
    title: str
    summary: str
    how: str | None = None
    """Practical help for carrying the duty out (phone numbers, forms)."""
    info: str | None = None
    """Information beside the duty (e.g. the injured person's own limit)."""
    phase: Literal["akutt", "oppfolging", "forebyggende"] | None = None
    """The guidance phase its measures belong in."""
    duty: Duty | None = None
    reviewed_by: str | None = None
    reviewed_at: date | None = None


class Registry(Strict):
    facts: tuple[Fact, ...]
    kinds: dict[Kind, str]
    provisions: tuple[Provision, ...]

    @model_validator(mode="after")
    def _consistent(self) -> Registry:
        ids = [p.id for p in self.provisions]
        if len(ids) != len(set(ids)):
            raise ValueError("duplicate provision id")
        facts = {f.id: f for f in self.facts}
        for p in self.provisions:
            if p.duty is None:
                continue
            for fact in (*p.duty.trigger.facts, p.duty.trigger.unless_false):
                if fact is not None and fact not in facts:
                    raise ValueError(f"{p.id}: unknown trigger fact {fact}")
            if p.duty.deadline.from_ != "learnt" and p.duty.deadline.from_ not in facts:
                raise ValueError(f"{p.id}: unknown deadline start {p.duty.deadline.from_}")
        return self

    def provision(self, provision_id: str) -> Provision | None:
        return next((p for p in self.provisions if p.id == provision_id), None)

    def duties(self) -> list[Provision]:
        return [p for p in self.provisions if p.duty is not None]


@cache
def registry() -> Registry:
    return Registry.model_validate(yaml.safe_load(LAW_PATH.read_text(encoding="utf-8")))


class Category(Strict):
    kind: Kind
    title: str
    theme: str


@cache
def categories() -> dict[str, Category]:
    """Every guidance sub-theme id with its kind, generated from the catalogue."""
    raw = yaml.safe_load(CATEGORIES_PATH.read_text(encoding="utf-8")) or {}
    return {k: Category.model_validate(v) for k, v in raw.get("categories", {}).items()}


def category_kind(category: str) -> Kind:
    """The sub-theme's kind. An id the catalogue does not know is taken as personal: told to
    the nearest leader only, which never discloses too much."""
    found = categories().get(category)
    return found.kind if found else "personlig"


def fact_given(facts: Mapping[str, Any], fact: str) -> bool:
    """True for a yes, or for a date fact holding a date. False, null and absent are not."""
    value = facts.get(fact)
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and bool(value)


def applicable(facts: Mapping[str, Any], kind: Kind) -> list[Provision]:
    """The registry's duties the facts of an incident of this kind start, in registry order.

    Severity is no input: only facts start legal duties.
    """
    found: list[Provision] = []
    for p in registry().duties():
        assert p.duty is not None
        trigger = p.duty.trigger
        if kind not in trigger.kinds:
            continue
        if not any(fact_given(facts, f) for f in trigger.facts):
            continue
        if trigger.unless_false is not None and facts.get(trigger.unless_false) is False:
            continue
        found.append(p)
    return found


def safety_rep_may_know(facts: Mapping[str, Any], kind: Kind) -> bool:
    """Work-environment events go to the safety rep (aml § 6-2); personal ones only with the
    affected person's recorded consent."""
    return kind == "arbeidsmiljo" or facts.get("consent_safety_rep") is True
