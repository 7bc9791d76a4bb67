"""The organisation directory and recipient resolution. Pure: no I/O, time passed in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Absence(Strict):
    from_: date = Field(alias="from")
    to: date


class Person(Strict):
    id: Id
    name: Name
    email: str | None = Field(default=None, max_length=320)
    mobile: str | None = Field(default=None, max_length=32)
    webhook: str | None = Field(default=None, max_length=2000)
    unit: Id | None = None
    absences: list[Absence] = Field(default_factory=list)

    def absent_on(self, day: date) -> Absence | None:
        return next((a for a in self.absences if a.from_ <= day <= a.to), None)


class Unit(Strict):
    id: Id
    name: Name
    parent: Id | None = None
    leader: Id | None = None
    deputies: list[Id] = Field(default_factory=list)
    safety_rep: Id | None = None


class Org(Strict):
    id: Id
    name: Name
    main_safety_rep: Id | None = None
    hr: list[Id] = Field(default_factory=list)


class Directory(Strict):
    org: Org
    units: list[Unit] = Field(min_length=1)
    people: list[Person] = Field(default_factory=list)

    def problems(self) -> list[str]:
        """Every unknown reference, duplicate id and cycle, so an admin can fix all in one go."""
        found: list[str] = []
        unit_ids = [u.id for u in self.units]
        person_ids = [p.id for p in self.people]
        for kind, ids in (("unit", unit_ids), ("person", person_ids)):
            seen: set[str] = set()
            for i in ids:
                if i in seen:
                    found.append(f"duplicate {kind} id '{i}'")
                seen.add(i)
        units, people = set(unit_ids), set(person_ids)

        def person_ref(where: str, ref: str | None) -> None:
            if ref is not None and ref not in people:
                found.append(f"{where} refers to unknown person '{ref}'")

        person_ref("org.main_safety_rep", self.org.main_safety_rep)
        for ref in self.org.hr:
            person_ref("org.hr", ref)
        for unit in self.units:
            if unit.parent is not None and unit.parent not in units:
                found.append(f"unit '{unit.id}' has unknown parent '{unit.parent}'")
            person_ref(f"unit '{unit.id}' leader", unit.leader)
            person_ref(f"unit '{unit.id}' safety_rep", unit.safety_rep)
            for ref in unit.deputies:
                person_ref(f"unit '{unit.id}' deputy", ref)
        for person in self.people:
            if person.unit is not None and person.unit not in units:
                found.append(f"person '{person.id}' is in unknown unit '{person.unit}'")
            for absence in person.absences:
                if absence.to < absence.from_:
                    found.append(f"person '{person.id}' has an absence ending before it starts")
        parents = {u.id: u.parent for u in self.units}
        reported: set[str] = set()
        for start in unit_ids:
            path: list[str] = []
            node: str | None = start
            while node is not None and node in parents and node not in path:
                path.append(node)
                node = parents[node]
            if node is not None and node in path:
                cycle = path[path.index(node) :]
                key = ",".join(sorted(cycle))
                if key not in reported:
                    reported.add(key)
                    found.append("cycle in the unit tree: " + " -> ".join([*cycle, node]))
        if not any(u.parent is None for u in self.units):
            found.append("no top unit: exactly one unit must have no parent")
        return found


Role = Literal["nearest_leader", "deputy", "leader", "safety_rep", "main_safety_rep", "hr"]


@dataclass(frozen=True)
class Responder:
    person: Person
    role: Role
    unit_id: str | None


@dataclass(frozen=True)
class Skipped:
    person: Person
    role: Role
    unit_id: str | None
    reason: str


@dataclass(frozen=True)
class Resolution:
    leaders: list[Responder]
    """Everyone who may be alerted as leader, in escalation order, present today."""
    safety_rep: Responder | None
    skipped: list[Skipped]


class Resolver:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.units = {u.id: u for u in directory.units}
        self.people = {p.id: p for p in directory.people}

    def _ancestry(self, unit_id: str) -> list[Unit]:
        chain: list[Unit] = []
        node = self.units.get(unit_id)
        while node is not None and node not in chain:
            chain.append(node)
            node = self.units.get(node.parent) if node.parent else None
        return chain

    def start_unit(self, unit_id: str, affected: list[str]) -> str:
        """The affected employee's own unit when known, else the unit where it happened."""
        for person_id in affected:
            person = self.people.get(person_id)
            if person is not None and person.unit in self.units:
                return person.unit
        return unit_id

    def resolve(self, unit_id: str, day: date, affected: list[str] | None = None) -> Resolution:
        start = self.start_unit(unit_id, affected or [])
        skipped: list[Skipped] = []
        leaders: list[Responder] = []
        seen: set[str] = set()
        for depth, unit in enumerate(self._ancestry(start)):
            candidates: list[tuple[str | None, Role]] = [
                (unit.leader, "nearest_leader" if depth == 0 else "leader"),
                *((d, "deputy") for d in unit.deputies),
            ]
            for person_id, role in candidates:
                person = self.people.get(person_id) if person_id else None
                if person is None or person.id in seen or person.id in (affected or []):
                    continue
                seen.add(person.id)
                absence = person.absent_on(day)
                if absence is not None:
                    skipped.append(
                        Skipped(person, role, unit.id, f"absent {absence.from_} to {absence.to}")
                    )
                    continue
                leaders.append(Responder(person, role, unit.id))
        safety_rep: Responder | None = None
        for unit in self._ancestry(start):
            person = self.people.get(unit.safety_rep) if unit.safety_rep else None
            if person is None:
                continue
            absence = person.absent_on(day)
            if absence is not None:
                skipped.append(
                    Skipped(
                        person, "safety_rep", unit.id, f"absent {absence.from_} to {absence.to}"
                    )
                )
                continue
            safety_rep = Responder(person, "safety_rep", unit.id)
            break
        return Resolution(leaders=leaders, safety_rep=safety_rep, skipped=skipped)
