"""The report form's choices and rules (issue 16): what it asks, and what it derives.

Pure: the portal passes in what it read from the API (the guidance tree, the caller's units).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.auth import Principal
from shared.law import Fact, category_kind
from shared.law import registry as law_registry

Choice = tuple[str, str]  # (id, title)

# Severity as the reporter would have set it, when they leave it unanswered (the usual case:
# someone who was just hit should not have to grade it). It follows what they did answer: the
# type, then the harm. Never lower than the type says; a harm answered "ja" can only raise it.
CATEGORY_SEVERITY: dict[str, str] = {
    "gisseltaking": "critical",
    "bombetrussel": "critical",
    "vold-fysisk": "high",
}
BASE_SEVERITY = "medium"
SEVERE_HARM = ("death", "serious_injury", "serious_psychological_injury")
ORDER = ("low", "medium", "high", "critical")


def derived_severity(category: str, facts: Mapping[str, Any]) -> str:
    severity = CATEGORY_SEVERITY.get(category, BASE_SEVERITY)
    if any(facts.get(f) is True for f in SEVERE_HARM):
        return "critical"
    if facts.get("injury") is True and ORDER.index(severity) < ORDER.index("high"):
        return "high"
    return severity


@dataclass(frozen=True)
class Categories:
    common: list[Choice]
    """The crisis types most reported, in the order given (violence and threats first)."""
    others: list[tuple[str, list[Choice]]] = field(default_factory=list)
    """Every other sub-theme of the guidance, under its theme's title."""

    def title(self, category_id: str) -> str | None:
        for cid, title in self.common + [c for _, group in self.others for c in group]:
            if cid == category_id:
                return title
        return None


def categories(tree: Mapping[str, Any], common: Sequence[str]) -> Categories:
    """The guidance's sub-themes: `common` first, then the rest by theme."""
    titles = {s["id"]: s["title"] for t in tree.get("themes", []) for s in t.get("subthemes", [])}
    others = [
        (
            str(t["title"]),
            [(s["id"], s["title"]) for s in t.get("subthemes", []) if s["id"] not in common],
        )
        for t in tree.get("themes", [])
    ]
    return Categories(
        common=[(c, titles[c]) for c in common if c in titles],
        others=[(theme, group) for theme, group in others if group],
    )


def _later_facts() -> set[str]:
    """Facts of a sick leave: not known in the minute after an incident, asked on its page."""
    later: set[str] = set()
    for provision in law_registry().provisions:
        duty = provision.duty
        if duty is not None and duty.deadline.from_ == "sick_leave_from":
            later.update(duty.trigger.facts)
            if duty.trigger.unless_false:
                later.add(duty.trigger.unless_false)
    return later


def report_facts(category: str) -> list[Fact]:
    """The yes / no questions of the law registry the report asks: harm and police. Consent to
    telling the safety rep matters only for a personal crisis (shared.law.safety_rep_may_know),
    so it is asked when the type is personal, or not chosen yet."""
    later = _later_facts()
    personal = not category or category_kind(category) == "personlig"
    return [
        f
        for f in law_registry().facts
        if f.type == "bool" and f.id not in later and (f.id != "consent_safety_rep" or personal)
    ]


def draft_scope(me: Principal) -> str:
    """What the page's script keys a kept report by: one person's on a shared phone is never
    sent as another's, and the key names nobody."""
    digest = hashlib.sha256(f"{me.org_id}\0{me.person_id}".encode()).hexdigest()
    return digest[:16]


def severity_rule(choices: Categories) -> str:
    """`derived_severity` in words, for the form's help text."""

    def named(severity: str) -> str:
        found = [
            (choices.title(c) or c).lower() for c, s in CATEGORY_SEVERITY.items() if s == severity
        ]
        return " og ".join(found)

    critical, high = named("critical"), named("high")
    return (
        "kritisk når noen er omkommet eller alvorlig skadet"
        + (f", og ved {critical}" if critical else "")
        + "; ellers høy når noen er skadet"
        + (f", og ved {high}" if high else "")
        + "; ellers middels."
    )
