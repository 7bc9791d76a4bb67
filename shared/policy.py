"""Who may do what with an incident: the access rules of kriselogg in one place (issue 7).

Pure: the caller passes the principal (from a verified token), the incident's few facts that the
rules need and the organisation's unit tree. The organisation is never a rule input: a caller
first looks the incident up inside the token's organisation only, so another organisation's
incident is simply not found (404), exactly like a missing one.

Roles (a person may have several; any role that allows an action allows it):

- reporter: reports, and reads and adds notes to their own reports;
- leader: everything on incidents of the units they lead or deputise for, and the units below;
- safety_rep: reads and adds notes to work-environment incidents (aml § 6-2: the category's
  kind in the catalogue is arbeidsmiljo) of the units they cover (their own unit, and the units
  below that have no safety rep of their own; the main safety rep covers the whole
  organisation); never personal ones (illness, family, bereavement, ...);
- hr: reads every incident of the organisation, adds notes, marks deadlines met (NAV, insurer);
- auditor: reads, exports and verifies every incident of the organisation; writes nothing;
- admin: the directory and local content; no incident data by this role alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from shared.auth import Principal
from shared.law import category_kind
from shared.schemas import DirectoryTreeV1

Action = Literal["report", "read", "note", "write", "deadline", "export"]


@dataclass(frozen=True)
class IncidentFacts:
    unit_id: str
    category: str
    reported_by: str


@dataclass(frozen=True)
class Unit:
    id: str
    parent: str | None = None
    leader: str | None = None
    deputies: tuple[str, ...] = ()
    safety_rep: str | None = None


@dataclass(frozen=True)
class OrgTree:
    """The part of an organisation's directory the rules need: units and who answers for them."""

    units: tuple[Unit, ...] = ()
    main_safety_rep: str | None = None
    _by_id: Mapping[str, Unit] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {u.id: u for u in self.units})

    def ancestry(self, unit_id: str) -> list[Unit]:
        """The unit and every unit above it, nearest first (cycles are refused upstream)."""
        chain: list[Unit] = []
        node = self._by_id.get(unit_id)
        while node is not None and node not in chain:
            chain.append(node)
            node = self._by_id.get(node.parent) if node.parent else None
        return chain

    def leads(self, person_id: str, unit_id: str) -> bool:
        """Is the person leader or deputy of this unit or of one above it?"""
        return any(person_id == u.leader or person_id in u.deputies for u in self.ancestry(unit_id))

    def covers(self, person_id: str, unit_id: str) -> bool:
        """Is the person the safety rep this unit's incidents go to (the nearest one up)?"""
        if person_id == self.main_safety_rep:
            return True
        nearest = next((u.safety_rep for u in self.ancestry(unit_id) if u.safety_rep), None)
        return nearest == person_id


def allowed(who: Principal, action: Action, incident: IncidentFacts | None, tree: OrgTree) -> bool:
    """Whether `who` may do `action` (on `incident`, for every action but `report`)."""
    roles = who.roles
    if action == "report":
        return bool(roles & {"reporter", "leader", "safety_rep", "hr"})
    if incident is None:
        return False
    own = incident.reported_by == who.person_id and "reporter" in roles
    leader = "leader" in roles and tree.leads(who.person_id, incident.unit_id)
    rep = (
        "safety_rep" in roles
        and category_kind(incident.category) == "arbeidsmiljo"
        and tree.covers(who.person_id, incident.unit_id)
    )
    hr = "hr" in roles
    if action == "write":
        return leader
    if action == "deadline":
        return leader or hr
    if action == "note":
        return leader or rep or hr or own
    if action in ("read", "export"):
        return leader or rep or hr or own or "auditor" in roles
    return False


def visible(
    who: Principal, incidents: Iterable[tuple[str, IncidentFacts]], tree: OrgTree
) -> list[str]:
    """The ids of the incidents `who` may read, in the order given."""
    return [i for i, facts in incidents if allowed(who, "read", facts, tree)]


def tree_of(contract: DirectoryTreeV1) -> OrgTree:
    return OrgTree(
        units=tuple(
            Unit(u.id, u.parent, u.leader, tuple(u.deputies), u.safety_rep) for u in contract.units
        ),
        main_safety_rep=contract.main_safety_rep,
    )
