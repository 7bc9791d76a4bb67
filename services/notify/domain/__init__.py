"""The organisation directory, recipient resolution and duties. Pure: time passed in, no I/O
beyond the legal registry, which shared.law reads once from the package."""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.law import DutyRole as DutyRole
from shared.law import Kind, Provision, applicable, registry
from shared.schemas import DirectoryTreeV1, UnitV1

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Absence(Strict):
    from_: date = Field(alias="from")
    to: date


Channel = Literal["email", "sms", "webhook"]
DEFAULT_CHANNELS: tuple[Channel, ...] = ("email", "sms", "webhook")
# The contact point each channel needs: an admin writes "sms", the person record holds "mobile".
CHANNEL_FIELD: dict[Channel, str] = {"email": "email", "sms": "mobile", "webhook": "webhook"}
# That contact point as an admin reads it in a problem ("… har kanalen sms, men ikke …").
CONTACT_NAMES: dict[Channel, str] = {
    "email": "e-postadresse (email)",
    "sms": "mobilnummer (mobile)",
    "webhook": "webhook-adresse (webhook)",
}


class Person(Strict):
    id: Id
    name: Name
    email: str | None = Field(default=None, max_length=320)
    mobile: str | None = Field(default=None, max_length=32)
    webhook: str | None = Field(default=None, max_length=2000)
    unit: Id | None = None
    absences: list[Absence] = Field(default_factory=list)
    channels: list[Channel] | None = None
    """Preferred delivery order; None means DEFAULT_CHANNELS."""

    def absent_on(self, day: date) -> Absence | None:
        return next((a for a in self.absences if a.from_ <= day <= a.to), None)

    def has_contact(self, channel: Channel) -> bool:
        # An empty string is as unreachable as a missing one.
        return bool(getattr(self, CHANNEL_FIELD[channel]))

    def contact_order(self) -> list[str]:
        """Channels to try, in order, that this person can actually be reached on.

        A person with no usable contact point still gets an alert: it is written to the log
        ("log"), so that nobody silently drops out of the chain.
        """
        order: list[str] = []
        for channel in self.channels if self.channels is not None else DEFAULT_CHANNELS:
            if channel not in order and self.has_contact(channel):
                order.append(channel)
        return order or ["log"]


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
    alert_hr_for: list[Kind] = Field(
        default_factory=list,
        description="The kinds of incident (arbeidsmiljo, personlig) of which the first HR "
        "contact is alerted at once, beside the nearest leader; none unless listed",
        examples=[["personlig"]],
    )
    amu_meetings: list[date] = Field(
        default_factory=list,
        max_length=200,
        description="The working environment committee's (AMU) meeting dates: a report to AMU "
        "(aml § 7-2) falls due at the next one",
        examples=[["2027-01-18", "2027-04-12"]],
    )
    duty_responsible: dict[str, DutyRole] = Field(
        default_factory=dict,
        description="Who answers for a legal duty here, where it is not the registry's default "
        "role (shared/law.yaml); the role must be in the duty's audience",
        examples=[{"ftrl-13-14": "hr", "aml-5-2": "nearest_leader"}],
    )


DutyKind = Literal["law", "routine"]


class RoutineDuty(Strict):
    """One step of the organisation's own follow-up routine (not law), with its deadline rule.

    Deadlines count from the incident's local date in Europe/Oslo. after_days and after_months
    land on a calendar date that is then moved to the first working day on or after it;
    after_working_days counts working days (1 = the next working day after the incident's day).
    """

    id: Id
    title: Name
    responsible: DutyRole = "nearest_leader"
    kinds: list[Kind] | None = Field(
        default=None,
        description="The kinds of incident the step is for (arbeidsmiljo, personlig); left out, "
        'every kind. A step that tells the safety rep must say ["arbeidsmiljo"]: a personal '
        "crisis never reaches them by routine",
        examples=[["arbeidsmiljo"]],
    )
    # Upper bounds keep date arithmetic far from date.max: a routine step ten years out is a typo.
    after_days: int | None = Field(default=None, ge=1, le=3660)
    after_working_days: int | None = Field(default=None, ge=1, le=2600)
    after_months: int | None = Field(default=None, ge=1, le=120)

    @model_validator(mode="after")
    def _exactly_one_deadline(self) -> RoutineDuty:
        given = [
            n
            for n in (self.after_days, self.after_working_days, self.after_months)
            if n is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"rutinepunktet «{self.id}» må ha nøyaktig én av after_days, "
                f"after_working_days og after_months (har {len(given)})"
            )
        return self


# A municipal guideline's routine, the default; an organisation may replace it wholesale.
DEFAULT_ROUTINE: tuple[RoutineDuty, ...] = (
    RoutineDuty(
        id="hovedverneombud-varslet",
        title="Hovedverneombudet varslet",
        after_working_days=1,
        kinds=["arbeidsmiljo"],
    ),
    RoutineDuty(id="oppfolging-en-uke", title="Oppfølgingssamtale etter en uke", after_days=7),
    RoutineDuty(
        id="oppfolging-en-maned", title="Oppfølgingssamtale etter en måned", after_months=1
    ),
)


class Directory(Strict):
    org: Org
    units: list[Unit] = Field(min_length=1)
    people: list[Person] = Field(default_factory=list)
    routine: list[RoutineDuty] | None = None
    """The organisation's follow-up routine; None means DEFAULT_ROUTINE, [] means none at all."""

    def tree(self) -> DirectoryTreeV1:
        """What the other services need for their access rules: units and who answers for them."""
        return DirectoryTreeV1(
            org_id=self.org.id,
            units=[
                UnitV1(
                    id=u.id,
                    parent=u.parent,
                    leader=u.leader,
                    deputies=list(u.deputies),
                    safety_rep=u.safety_rep,
                )
                for u in self.units
            ],
            main_safety_rep=self.org.main_safety_rep,
        )

    def problems(self) -> list[str]:
        """Every unknown reference, duplicate id and cycle, so an admin can fix all in one go."""
        return [issue.message for issue in self.issues()]

    def issues(self) -> list[Issue]:
        """The problems, each with where it is (`loc`, as in a validation error), so that the
        portal can name the line of the uploaded file."""
        found: list[Issue] = []

        def add(message: str, *loc: str | int) -> None:
            found.append(Issue(tuple(loc), message))

        unit_ids = [u.id for u in self.units]
        person_ids = [p.id for p in self.people]
        routine_ids = [r.id for r in self.routine or []]
        for section, what, ids in (
            ("units", "enheter", unit_ids),
            ("people", "personer", person_ids),
            ("routine", "rutinepunkter", routine_ids),
        ):
            seen: set[str] = set()
            for n, i in enumerate(ids):
                if i in seen:
                    add(f"to {what} har id-en «{i}»", section, n, "id")
                seen.add(i)
        units, people = set(unit_ids), set(person_ids)

        def person_ref(what: str, ref: str | None, *loc: str | int) -> None:
            if ref is not None and ref not in people:
                add(f"{what} «{ref}»", *loc)

        person_ref(
            "hovedverneombudet er en ukjent person",
            self.org.main_safety_rep,
            "org",
            "main_safety_rep",
        )
        for duty_id, role in self.org.duty_responsible.items():
            provision = registry().provision(duty_id)
            if provision is None or provision.duty is None:
                add(f"ukjent lovplikt «{duty_id}»", "org", "duty_responsible", duty_id)
            elif role not in provision.duty.audience:
                add(
                    f"rollen {role} kan ikke få vite om lovplikten «{duty_id}» "
                    f"(bare {', '.join(provision.duty.audience)})",
                    "org",
                    "duty_responsible",
                    duty_id,
                )
        for n, ref in enumerate(self.org.hr):
            person_ref("HR er en ukjent person", ref, "org", "hr", n)
        for u, unit in enumerate(self.units):
            if unit.parent is not None and unit.parent not in units:
                add(
                    f"enheten «{unit.id}» har en ukjent overordnet enhet «{unit.parent}»",
                    "units",
                    u,
                    "parent",
                )
            has = f"enheten «{unit.id}» har"
            person_ref(f"{has} en ukjent leder", unit.leader, "units", u, "leader")
            person_ref(f"{has} et ukjent verneombud", unit.safety_rep, "units", u, "safety_rep")
            for d, ref in enumerate(unit.deputies):
                person_ref(f"{has} en ukjent stedfortreder", ref, "units", u, "deputies", d)
        for n, person in enumerate(self.people):
            if person.unit is not None and person.unit not in units:
                add(
                    f"personen «{person.id}» har en ukjent enhet «{person.unit}»",
                    "people",
                    n,
                    "unit",
                )
            for a, absence in enumerate(person.absences):
                if absence.to < absence.from_:
                    add(
                        f"personen «{person.id}» har et fravær som slutter før det begynner",
                        "people",
                        n,
                        "absences",
                        a,
                    )
            listed: set[str] = set()
            for c, channel in enumerate(person.channels or []):
                if channel in listed:
                    add(
                        f"personen «{person.id}» har kanalen {channel} to ganger",
                        "people",
                        n,
                        "channels",
                        c,
                    )
                    continue
                listed.add(channel)
                if not person.has_contact(channel):
                    add(
                        f"personen «{person.id}» har kanalen {channel}, "
                        f"men ikke {CONTACT_NAMES[channel]}",
                        "people",
                        n,
                        "channels",
                        c,
                    )
        parents = {u.id: u.parent for u in self.units}
        reported: set[str] = set()
        for u, start in enumerate(unit_ids):
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
                    add(
                        "enhetene går i ring: " + " → ".join([*cycle, node]),
                        "units",
                        u,
                        "parent",
                    )
        if not any(u.parent is None for u in self.units):
            add("ingen enhet står øverst: én enhet må være uten overordnet (parent)", "units")
        return found


@dataclass(frozen=True)
class Issue:
    """One problem of a directory: where (`loc`, the path of keys and list positions, as in a
    pydantic error) and what, in Norwegian."""

    loc: tuple[str | int, ...]
    message: str


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
    main_safety_rep: Responder | None = None
    """The organisation's hovedverneombud when present today."""
    hr: list[Responder] = field(default_factory=list)
    """The organisation's HR contacts present today, in the configured order."""


def _absent(person: Person, role: Role, unit_id: str | None, day: date) -> Skipped | None:
    absence = person.absent_on(day)
    if absence is None:
        return None
    return Skipped(person, role, unit_id, f"absent {absence.from_} to {absence.to}")


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
        # Nobody is alerted about an incident in which they are themselves affected: they are
        # left out silently, as if not in the directory, and the next person in line is chosen.
        involved = set(affected or [])
        start = self.start_unit(unit_id, affected or [])
        chain = self._ancestry(start)
        skipped: list[Skipped] = []
        leaders: list[Responder] = []
        seen: set[str] = set()
        for depth, unit in enumerate(chain):
            candidates: list[tuple[str | None, Role]] = [
                (unit.leader, "nearest_leader" if depth == 0 else "leader"),
                *((d, "deputy") for d in unit.deputies),
            ]
            for person_id, role in candidates:
                person = self.people.get(person_id) if person_id else None
                if person is None or person.id in seen or person.id in involved:
                    continue
                seen.add(person.id)
                absent = _absent(person, role, unit.id, day)
                if absent is not None:
                    skipped.append(absent)
                    continue
                leaders.append(Responder(person, role, unit.id))
        safety_rep: Responder | None = None
        for unit in chain:
            person = self.people.get(unit.safety_rep) if unit.safety_rep else None
            if person is None or person.id in involved:
                continue
            absent = _absent(person, "safety_rep", unit.id, day)
            if absent is not None:
                skipped.append(absent)
                continue
            safety_rep = Responder(person, "safety_rep", unit.id)
            break
        org = self.directory.org
        main_safety_rep: Responder | None = None
        main = self.people.get(org.main_safety_rep) if org.main_safety_rep else None
        if main is not None and main.id not in involved:
            absent = _absent(main, "main_safety_rep", None, day)
            if absent is not None:
                skipped.append(absent)
            else:
                main_safety_rep = Responder(main, "main_safety_rep", None)
        hr: list[Responder] = []
        for person_id in dict.fromkeys(org.hr):  # listed twice is still one person
            person = self.people.get(person_id)
            if person is None or person.id in involved:
                continue
            absent = _absent(person, "hr", None, day)
            if absent is not None:
                skipped.append(absent)
                continue
            hr.append(Responder(person, "hr", None))
        return Resolution(
            leaders=leaders,
            safety_rep=safety_rep,
            skipped=skipped,
            main_safety_rep=main_safety_rep,
            hr=hr,
        )


# --- Working days and deadlines ---------------------------------------------------------------

OSLO = ZoneInfo("Europe/Oslo")
DAY_ENDS = time(16, 0)
"""A deadline "by a day" means by the end of a normal working day there, in local time."""
STRAKS = timedelta(hours=1)
"""`straks` is shown as due now and overdue after this long from when the employer learnt it."""


@lru_cache(maxsize=64)
def _public_holidays(year: int) -> frozenset[date]:
    # include_sundays is passed explicitly: the NO calendar can list every Sunday as a
    # "holiday", and its default has differed between releases. Sundays are
    # excluded here by the weekday test instead, so the default cannot move a deadline.
    return frozenset(holidays.country_holidays("NO", years=year, include_sundays=False))


def is_working_day(d: date) -> bool:
    """Monday to Friday and not a Norwegian public holiday (24 and 31 Dec are working days)."""
    return d.weekday() < 5 and d not in _public_holidays(d.year)


def next_working_day(d: date) -> date:
    """The first working day strictly after d."""
    return working_day_on_or_after(d + timedelta(days=1))


def working_day_on_or_after(d: date) -> date:
    # Norway never has more than five non-working days in a row (Easter), so this ends quickly.
    while not is_working_day(d):
        d += timedelta(days=1)
    return d


def add_months(d: date, months: int) -> date:
    """Calendar months later, clamping the day: 31 Jan + 1 month = 28 (or 29) Feb."""
    years, month0 = divmod(d.month - 1 + months, 12)
    year = d.year + years
    return date(year, month0 + 1, min(d.day, calendar.monthrange(year, month0 + 1)[1]))


def end_of_day(d: date, zone: ZoneInfo = OSLO) -> datetime:
    """DAY_ENDS on d in the organisation's time zone, as an aware UTC datetime."""
    return datetime.combine(d, DAY_ENDS, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Duty:
    id: str
    """Stable: the registry's provision id ("aml-5-2") or the routine duty's id."""
    kind: DutyKind
    title: str
    legal_ref: str | None
    """The paragraph, e.g. "aml § 5-2"; None for the organisation's routine."""
    due_at: datetime | None
    """Timezone-aware, UTC; None where the law sets no date (snarest mulig, none)."""
    due_label: str
    """How the deadline reads to a Norwegian user: "straks", "snarest mulig", ..."""
    responsible: DutyRole
    remind_at: datetime | None = None
    """For a duty without a date: when to nudge the responsible person (never a deadline)."""


def _aware(name: str, value: datetime) -> None:
    # A naive timestamp would silently be taken as the server's local time: refuse it.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def routine_due(duty: RoutineDuty, incident_day: date) -> tuple[date, str]:
    """The local due date and the Norwegian label of one routine duty."""
    if duty.after_working_days is not None:
        n = duty.after_working_days
        day = incident_day
        for _ in range(n):
            day = next_working_day(day)
        return day, "neste virkedag" if n == 1 else f"etter {n} virkedager"
    if duty.after_days is not None:
        n = duty.after_days
        label = "etter en uke" if n == 7 else f"etter {n} dager"
        return working_day_on_or_after(incident_day + timedelta(days=n)), label
    # The validator guarantees exactly one rule, so after_months is set here.
    assert duty.after_months is not None
    n = duty.after_months
    label = "etter en måned" if n == 1 else f"etter {n} måneder"
    return working_day_on_or_after(add_months(incident_day, n)), label


def _date_fact(facts: Mapping[str, Any], key: str) -> date | None:
    try:
        return date.fromisoformat(str(facts[key]))
    except (KeyError, ValueError):
        return None


def law_due(
    provision: Provision,
    *,
    learnt_at: datetime,
    facts: Mapping[str, Any],
    zone: ZoneInfo,
    amu_meetings: Sequence[date] = (),
) -> tuple[datetime | None, str, datetime | None] | None:
    """(due_at, label, remind_at) of a legal duty by its registry rule; None if it cannot run
    yet (a sick-leave rule without a valid date).

    Nothing here invents a deadline the statute lacks: `snarest mulig` and `none` have no date,
    and `snarest mulig` gets a reminder at the end of the next working day instead.
    """
    assert provision.duty is not None
    rule = provision.duty.deadline
    learnt_day = learnt_at.astimezone(zone).date()
    if rule.rule == "straks":
        return (learnt_at + STRAKS).astimezone(UTC), "straks", None
    if rule.rule == "snarest_mulig":
        return None, "snarest mulig", end_of_day(next_working_day(learnt_day), zone)
    if rule.rule == "calendar_days":
        assert rule.days is not None
        start = _date_fact(facts, rule.from_) if rule.from_ != "learnt" else learnt_day
        if start is None:
            return None
        weeks, rest = divmod(rule.days, 7)
        span = f"{weeks} uker" if not rest else f"{rule.days} dager"
        return end_of_day(start + timedelta(days=rule.days), zone), f"innen {span}", None
    if rule.rule == "next_amu_meeting":
        meeting = min((d for d in amu_meetings if d >= learnt_day), default=None)
        if meeting is None:
            return None, "neste møte i arbeidsmiljøutvalget (ingen møtedato registrert)", None
        return end_of_day(meeting, zone), f"neste AMU-møte {meeting:%d.%m.%Y}", None
    return None, rule.label or "ingen lovbestemt frist", None


def duties(
    *,
    occurred_at: datetime,
    learnt_at: datetime,
    facts: Mapping[str, Any],
    kind: Kind,
    routine: Sequence[RoutineDuty] | None,
    timezone: str = "Europe/Oslo",
    amu_meetings: Sequence[date] = (),
    responsible: Mapping[str, DutyRole] | None = None,
) -> list[Duty]:
    """What must be done by when after an incident: law duties first, then the routine.

    Law comes from the registry (shared/law.yaml): the facts and the category's kind decide
    which duties apply; severity decides none. `learnt_at` is when the employer learnt the
    facts (the report, or the later facts entry). Routine steps count from the incident's local
    date, and a step for another kind of incident is left out. Each group is in due order,
    undated duties last (ties keep the order listed). routine None means DEFAULT_ROUTINE.
    """
    _aware("occurred_at", occurred_at)
    _aware("learnt_at", learnt_at)
    zone = ZoneInfo(timezone)
    overrides = responsible or {}
    law: list[Duty] = []
    for provision in applicable(facts, kind):
        assert provision.duty is not None
        due = law_due(
            provision, learnt_at=learnt_at, facts=facts, zone=zone, amu_meetings=amu_meetings
        )
        if due is None:
            continue
        due_at, label, remind_at = due
        law.append(
            Duty(
                id=provision.id,
                kind="law",
                title=provision.title,
                legal_ref=provision.short,
                due_at=due_at,
                due_label=label,
                responsible=overrides.get(provision.id, provision.duty.responsible),
                remind_at=remind_at,
            )
        )
    incident_day = occurred_at.astimezone(zone).date()
    steps: list[Duty] = []
    for step in DEFAULT_ROUTINE if routine is None else routine:
        if step.kinds is not None and kind not in step.kinds:
            continue
        due_day, label = routine_due(step, incident_day)
        steps.append(
            Duty(
                id=step.id,
                kind="routine",
                title=step.title,
                legal_ref=None,
                due_at=end_of_day(due_day, zone),
                due_label=label,
                responsible=step.responsible,
            )
        )

    def order(d: Duty) -> tuple[bool, datetime]:
        return d.due_at is None, d.due_at or datetime.max.replace(tzinfo=UTC)

    return sorted(law, key=order) + sorted(steps, key=order)


def reminder_at(set_at: datetime, due_at: datetime) -> datetime:
    """When to remind the responsible person of a duty set at set_at and due at due_at.

    A day ahead for long deadlines, halfway for short ones (so a one-hour duty is reminded
    after half an hour), and never before the duty existed; an overdue duty is reminded at once.
    """
    _aware("set_at", set_at)
    _aware("due_at", due_at)
    span = max(due_at - set_at, timedelta(0))
    return max(due_at - min(timedelta(hours=24), span / 2), set_at).astimezone(UTC)


# --- delivery, as people are told it -------------------------------------------------------

Delivery = Literal["sent", "no_channel", "pending", "failed", "cancelled"]


def delivery(alert: Mapping[str, Any]) -> Delivery:
    """The honest state of one alert (a row of the alerts table): `sent` only when an SMTP
    server, SMS gateway or webhook accepted it; `no_channel` when it could only be recorded
    (the log channel: nobody was told); `failed` while attempts have failed and none succeeded."""
    if alert.get("sent_at"):
        return "no_channel" if alert.get("channel") == "log" else "sent"
    if alert.get("status") == "cancelled":
        return "cancelled"
    if alert.get("attempts"):
        return "failed"
    return "pending"


# --- links people click: acknowledgement links are signed, never guessable ----------------


def link_key(secret: str, purpose: str) -> bytes:
    """A key per purpose derived from the installation's secret: a leaked one opens nothing else."""
    return hmac.new(secret.encode(), f"kriselogg:{purpose}".encode(), hashlib.sha256).digest()


def sign_ack(key: bytes, alert: str, expires: int) -> str:
    digest = hmac.new(key, f"{alert}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def check_ack(key: bytes, alert: str, expires: int, signature: str, now: float) -> bool:
    """`now` in seconds since the epoch, from the service's clock."""
    return expires >= int(now) and hmac.compare_digest(sign_ack(key, alert, expires), signature)
