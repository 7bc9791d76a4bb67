"""A candidate directory before it is applied: its problems in Norwegian, each with where it is,
and what it would change against the directory in use. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.notify.domain import Directory, Issue, Person, Unit
from shared.labels import CHANNEL_TITLES

ID_RULE = "bare bokstaver, sifre og _ . : -, høyst 64 tegn"


def check(body: Any, org_id: str) -> tuple[Directory | None, list[Issue]]:
    """The directory and every problem of it; None when it does not even have the form of one
    (then the problems are the validation errors)."""
    if not isinstance(body, Mapping):
        return None, [Issue((), "katalogen må være en samling felter: org, units og people")]
    try:
        directory = Directory.model_validate(body)
    except ValidationError as exc:
        return None, [schema_issue(e) for e in exc.errors()]
    issues = directory.issues()
    if directory.org.id != org_id:
        issues.insert(
            0,
            Issue(
                ("org", "id"),
                f"katalogen er for virksomheten «{directory.org.id}», men du er logget inn "
                f"for «{org_id}»",
            ),
        )
    return directory, issues


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _choices(expected: str) -> str:
    # pydantic writes "'email', 'sms' or 'webhook'".
    return expected.replace("'", "").replace(" or ", ", ")


def schema_issue(error: Mapping[str, Any]) -> Issue:
    """One pydantic validation error in Norwegian."""
    loc = tuple(error.get("loc", ()))
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    given = _shown(error.get("input"))
    names = [p for p in loc if isinstance(p, str)]
    field = f"«{names[-1]}»" if names else "katalogen"
    if kind == "missing":
        return Issue(loc, f"{field} mangler")
    if kind == "extra_forbidden":
        return Issue(loc, f"ukjent felt {field}")
    if kind == "value_error":
        # Our own validators' messages, already Norwegian.
        return Issue(loc, str(ctx.get("error", "ugyldig verdi")))
    texts: dict[str, Callable[[], str]] = {
        "string_pattern_mismatch": lambda: f"ugyldig id «{given}» ({ID_RULE})",
        "string_too_short": lambda: "kan ikke være tomt",
        "string_too_long": lambda: f"er for langt (høyst {ctx.get('max_length')} tegn)",
        "string_type": lambda: "må være tekst",
        "literal_error": lambda: (
            f"ukjent verdi «{given}» (gyldige: {_choices(str(ctx.get('expected', '')))})"
        ),
        "date_parsing": lambda: f"ugyldig dato «{given}» (skriv ÅÅÅÅ-MM-DD)",
        "date_from_datetime_parsing": lambda: f"ugyldig dato «{given}» (skriv ÅÅÅÅ-MM-DD)",
        "date_from_datetime_inexact": lambda: f"skal være en dato uten klokkeslett: «{given}»",
        "date_type": lambda: "må være en dato (ÅÅÅÅ-MM-DD)",
        "int_parsing": lambda: "må være et heltall",
        "int_type": lambda: "må være et heltall",
        "int_from_float": lambda: "må være et heltall",
        "greater_than_equal": lambda: f"må være minst {ctx.get('ge')}",
        "less_than_equal": lambda: f"kan være høyst {ctx.get('le')}",
        "too_short": lambda: f"må ha minst {ctx.get('min_length')} oppføring(er)",
        "too_long": lambda: f"kan ha høyst {ctx.get('max_length')} oppføringer",
        "list_type": lambda: "må være en liste (linjer som begynner med «-»)",
        "dict_type": lambda: "må være en samling felter (navn: verdi)",
        "model_type": lambda: "må være en samling felter (navn: verdi), ikke en enkelt verdi",
        "model_attributes_type": lambda: "må være en samling felter (navn: verdi)",
        "bool_parsing": lambda: "må være true eller false",
        "bool_type": lambda: "må være true eller false",
    }
    text = texts.get(kind)
    return Issue(loc, f"{field}: {text() if text else f'ugyldig verdi ({kind})'}")


# --- what a new directory changes ------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One changed field. `before` and `after` are None for contact points (e-mail, mobile,
    webhook) and absences: the diff says that they changed, not what they are."""

    field: str
    text: str
    before: Any = None
    after: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "text": self.text, "before": self.before, "after": self.after}


CONTACTS = (("email", "e-post"), ("mobile", "telefon"), ("webhook", "webhook"))


def _quoted(value: Any, name: Callable[[str], str] | None = None) -> str:
    if value is None or value == [] or value == {}:
        return "ingen"
    if isinstance(value, list):
        return ", ".join(_quoted(v, name) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return name(value) if name else f"«{value}»"


def _value(
    field: str, label: str, before: Any, after: Any, name: Callable[[str], str] | None = None
) -> list[Change]:
    """A change of a plain field; `name` says an id as the admin knows it ("«Lise Nord» (p-ln)")."""
    if before == after:
        return []
    text = f"{label}: {_quoted(before, name)} → {_quoted(after, name)}"
    return [Change(field, text, before, after)]


def _hidden(field: str, label: str, before: Any, after: Any) -> list[Change]:
    if before == after:
        return []
    said = "lagt til" if not before else "fjernet" if not after else "endret"
    return [Change(field, f"{label} {said}")]


def _roles(directory: Directory) -> dict[str, list[str]]:
    """What each person is in the directory, as an admin reads it: "leder for «Nord»" …"""
    names = {u.id: u.name for u in directory.units}
    roles: dict[str, list[str]] = {}

    def give(person_id: str | None, role: str) -> None:
        if person_id is not None:
            roles.setdefault(person_id, []).append(role)

    give(directory.org.main_safety_rep, "hovedverneombud")
    for person_id in directory.org.hr:
        give(person_id, "HR")
    for unit in directory.units:
        give(unit.leader, f"leder for «{names[unit.id]}»")
        for deputy in unit.deputies:
            give(deputy, f"stedfortreder for «{names[unit.id]}»")
        give(unit.safety_rep, f"verneombud for «{names[unit.id]}»")
    return roles


def _channels(person: Person) -> list[str]:
    if person.channels is None:
        return ["standard (e-post, SMS, webhook)"]
    return [CHANNEL_TITLES.get(c, c) for c in person.channels]


class Names:
    """Ids as an admin knows them, from the new directory or else the old one."""

    def __init__(self, old: Directory, new: Directory) -> None:
        self.people = {p.id: p.name for d in (old, new) for p in d.people}
        self.units = {u.id: u.name for d in (old, new) for u in d.units}

    def person(self, person_id: str) -> str:
        name = self.people.get(person_id)
        return f"«{name}» ({person_id})" if name else f"«{person_id}»"

    def unit(self, unit_id: str) -> str:
        name = self.units.get(unit_id)
        return f"«{name}» ({unit_id})" if name else f"«{unit_id}»"


def _unit_changes(old: Unit, new: Unit, names: Names) -> list[Change]:
    return [
        *_value("name", "navn", old.name, new.name),
        *_value("parent", "overordnet enhet", old.parent, new.parent, names.unit),
        *_value("leader", "leder", old.leader, new.leader, names.person),
        *_value("deputies", "stedfortredere", old.deputies, new.deputies, names.person),
        *_value("safety_rep", "verneombud", old.safety_rep, new.safety_rep, names.person),
    ]


def _person_changes(
    old: Person, new: Person, old_roles: Sequence[str], new_roles: Sequence[str], names: Names
) -> list[Change]:
    changes = [
        *_value("name", "navn", old.name, new.name),
        *_value("unit", "enhet", old.unit, new.unit, names.unit),
        *_value("channels", "kanaler", _channels(old), _channels(new), lambda c: c),
    ]
    for field, label in CONTACTS:
        changes += _hidden(field, label, getattr(old, field), getattr(new, field))
    changes += _hidden("absences", "fravær", old.absences, new.absences)
    gained = [r for r in new_roles if r not in old_roles]
    lost = [r for r in old_roles if r not in new_roles]
    changes += [Change("roles", f"ny rolle: {r}", None, r) for r in gained]
    changes += [Change("roles", f"ikke lenger {r}", r, None) for r in lost]
    return changes


def _section(
    old: Sequence[Any], new: Sequence[Any], changed: Callable[[Any, Any], list[Change]]
) -> dict[str, list[dict[str, Any]]]:
    before = {x.id: x for x in old}
    after = {x.id: x for x in new}
    return {
        "added": [{"id": x.id, "name": x.name} for x in new if x.id not in before],
        "removed": [{"id": x.id, "name": x.name} for x in old if x.id not in after],
        "changed": [
            {"id": x.id, "name": x.name, "changes": [c.as_dict() for c in found]}
            for x in new
            if x.id in before and (found := changed(before[x.id], x))
        ],
    }


def _org_changes(old: Directory, new: Directory, names: Names) -> list[Change]:
    a, b = old.org, new.org
    return [
        *_value("name", "navn", a.name, b.name),
        *_value(
            "main_safety_rep",
            "hovedverneombud",
            a.main_safety_rep,
            b.main_safety_rep,
            names.person,
        ),
        *_value("hr", "HR", a.hr, b.hr, names.person),
        *_value("alert_hr_for", "HR varsles straks om", a.alert_hr_for, b.alert_hr_for),
        *_value(
            "amu_meetings",
            "AMU-møter",
            [d.isoformat() for d in a.amu_meetings],
            [d.isoformat() for d in b.amu_meetings],
        ),
        *_value(
            "duty_responsible", "ansvar for lovplikter", a.duty_responsible, b.duty_responsible
        ),
        *(
            [Change("routine", "oppfølgingsrutinen endret")]
            if old.model_dump()["routine"] != new.model_dump()["routine"]
            else []
        ),
    ]


def diff(old: Directory | None, new: Directory) -> dict[str, Any]:
    """What applying `new` changes against `old` (None: there is no directory yet)."""
    base = old or Directory.model_construct(org=new.org, units=[], people=[], routine=None)
    names = Names(base, new)
    old_roles, new_roles = _roles(base), _roles(new)
    units = _section(base.units, new.units, lambda a, b: _unit_changes(a, b, names))
    people = _section(
        base.people,
        new.people,
        lambda a, b: _person_changes(a, b, old_roles.get(a.id, []), new_roles.get(b.id, []), names),
    )
    org = [c.as_dict() for c in _org_changes(base, new, names)] if old is not None else []
    return {
        "org": org,
        "units": units,
        "people": people,
        "unchanged": not org and not any(v for s in (units, people) for v in s.values()),
    }
