"""The incident screen for a leader on a phone (issue 16): what the page shows first, computed
from the incident's log, notify's alerts and deadlines, and the portal's clock.

Pure functions over the API's answers, so the portal's routes stay thin and every rule here
(which measure is next, which entry may still be undone, when a track escalates) reads in one
place. Time is always the injected clock's `now`, never the machine's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

WEEKDAYS = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")
MONTHS = (
    "januar", "februar", "mars", "april", "mai", "juni",
    "juli", "august", "september", "oktober", "november", "desember",
)  # fmt: skip

# A mistaken tap is taken back within this window; later, a correction with a reason is the way
# (the log stays append-only either way: the undo is itself a correction).
UNDO_WINDOW = timedelta(minutes=1)
UNDO_REASON = "Angret"
# Statuses that finish a measure; a started one is still open.
FINISHED = ("done", "not_applicable")
# The phases of the checklist, in the order a leader works through them; the incident's own
# phase is moved first.
PHASE_ORDER = ("akutt", "oppfolging", "forebyggende")
# Which escalation track an alerted role is in, as notify escalates (its TRACK_OF). The portal
# reads notify only through its API, so the mapping is repeated here, in words.
TRACKS: dict[str, str] = {
    "nearest_leader": "leder",
    "deputy": "leder",
    "leader": "leder",
    "safety_rep": "verneombud",
    "main_safety_rep": "verneombud",
}


def moment(value: Any) -> datetime | None:
    """An RFC 3339 text (or a datetime) as an aware datetime; None for anything else."""
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if not value:
        return None
    try:
        found = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo else None


def day_label(value: Any, zone: ZoneInfo, now: datetime) -> str:
    """ "fredag 4. desember kl. 16:00" in the organisation's zone; the year only when it is not
    this year. Empty for no time."""
    at = moment(value)
    if at is None:
        return ""
    local = at.astimezone(zone)
    year = "" if local.year == now.astimezone(zone).year else f" {local.year}"
    return (
        f"{WEEKDAYS[local.weekday()]} {local.day}. {MONTHS[local.month - 1]}{year}"
        f" kl. {local:%H:%M}"
    )


def clock_label(value: Any, zone: ZoneInfo) -> str:
    """ "kl. 10:32" in the organisation's zone."""
    at = moment(value)
    return f"kl. {at.astimezone(zone):%H:%M}" if at else ""


def since(value: Any, now: datetime) -> str:
    """How long ago, as one says it: "nå nettopp", "for 12 min siden", "for 2 t 5 min siden"."""
    at = moment(value)
    if at is None:
        return ""
    minutes = max(0, int((now - at).total_seconds() // 60))
    if minutes < 1:
        return "nå nettopp"
    if minutes < 60:
        return f"for {minutes} min siden"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"for {hours} t {rest} min siden" if rest else f"for {hours} t siden"
    days = hours // 24
    return f"for {days} {'dag' if days == 1 else 'dager'} siden"


def until(value: Any, now: datetime) -> str:
    """How long until, rounded up to the minute: "om 14 min", "om 1 t 5 min"; "nå" when due."""
    at = moment(value)
    if at is None:
        return ""
    minutes = math.ceil((at - now).total_seconds() / 60)
    if minutes <= 0:
        return "nå"
    if minutes < 60:
        return f"om {minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"om {hours} t {rest} min" if rest else f"om {hours} t"


def head(alerts: Iterable[Mapping[str, Any]], zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    """Who has acknowledged, and per track nobody in it has acknowledged: when the next person
    is alerted. A track one person answered escalates no further, even while another alert in it
    still carries a time (notify clears that time only when it comes due)."""
    rows = [a for a in alerts if a.get("kind", "alert") == "alert"]
    acknowledged = [
        {"name": a.get("person_name"), "at": clock_label(a.get("acknowledged_at"), zone)}
        for a in rows
        if a.get("acknowledged_at")
    ]
    # Tracks due at the same minute read as one line: "Neste leder og verneombud varsles ...".
    by_time: dict[str, dict[str, Any]] = {}
    for track in dict.fromkeys(TRACKS.values()):  # leaders first, whoever was alerted first
        members = [a for a in rows if TRACKS.get(str(a.get("role"))) == track]
        if any(a.get("acknowledged_at") for a in members):
            continue
        due = [
            at
            for a in members
            if a.get("status") != "cancelled" and (at := moment(a.get("escalate_at")))
        ]
        if due:
            first = min(due)
            line = by_time.setdefault(
                clock_label(first, zone),
                {
                    "tracks": [],
                    "first": first,
                    "at": clock_label(first, zone),
                    "in": until(first, now),
                },
            )
            line["tracks"].append(track)
    escalations = [
        {
            "tracks": line["tracks"],
            "track": " og ".join(line["tracks"]),
            "at": line["at"],
            "in": line["in"],
        }
        for line in sorted(by_time.values(), key=lambda e: e["first"])
    ]
    return {"acknowledged": acknowledged, "escalations": escalations}


def current_entries(state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The latest entry per measure that no correction (or undo) took back."""
    found: dict[str, dict[str, Any]] = {}
    for entry in state.get("measures", []):
        if entry.get("corrections"):
            continue
        key = entry.get("measure_id") or entry.get("title")
        if key:
            found[str(key)] = entry
    return found


def ordered_phases(phases: Iterable[Mapping[str, Any]], own: str) -> list[Mapping[str, Any]]:
    """Every phase of the guidance: the incident's own first, then acute, follow-up, prevention
    (prevention is for before the next incident, so it comes last)."""

    def rank(phase: Mapping[str, Any]) -> tuple[bool, int]:
        pid = str(phase.get("id"))
        order = PHASE_ORDER.index(pid) if pid in PHASE_ORDER else len(PHASE_ORDER)
        return (pid != own, order)

    return sorted(phases, key=rank)


def is_open(entry: Mapping[str, Any] | None) -> bool:
    return entry is None or entry.get("status") not in FINISHED


def board(
    phases: Iterable[Mapping[str, Any]], done: Mapping[str, Mapping[str, Any]], own: str
) -> dict[str, Any]:
    """The measure to do next in the incident's phase (the first nobody has touched), the ones
    started and not finished, and how far the whole list is."""
    phases = list(phases)
    current = next((p for p in phases if p.get("id") == own), None)
    measures = list((current or {}).get("measures", []))
    untouched = [m for m in measures if done.get(m["id"]) is None]
    started = [m for m in measures if (e := done.get(m["id"])) is not None and is_open(e)]
    every = [m for p in phases for m in p.get("measures", [])]
    first_open = next((m for m in every if is_open(done.get(m["id"]))), None)
    return {
        "current": current,
        "next": untouched[0] if untouched else None,
        # Where focus goes after a tap in the full list: its first open measure.
        "first_open": first_open["id"] if first_open else None,
        "started": started,
        "finished": sum(1 for m in every if not is_open(done.get(m["id"]))),
        "total": len(every),
        "phase_finished": sum(1 for m in measures if not is_open(done.get(m["id"]))),
        "phase_total": len(measures),
    }


def undo_left(entry: Mapping[str, Any], person_id: str, now: datetime) -> int:
    """Whole seconds left to undo the entry (0: it may not be undone any more, or by this
    person): only one's own tap, not taken back already, within UNDO_WINDOW of its recording."""
    if entry.get("corrections") or (entry.get("actor") or {}).get("id") != person_id:
        return 0
    recorded = moment(entry.get("recorded_at"))
    if recorded is None:
        return 0
    left = (recorded + UNDO_WINDOW - now).total_seconds()
    return max(0, math.ceil(left))


def undoable(state: Mapping[str, Any], person_id: str, now: datetime) -> list[dict[str, Any]]:
    """The person's measure entries that may still be undone, newest first, with seconds left."""
    if state.get("status") == "closed":
        return []
    found = []
    for entry in state.get("measures", []):
        left = undo_left(entry, person_id, now)
        if left:
            found.append({**entry, "undo_left": left})
    return sorted(found, key=lambda e: -int(e["seq"]))


def open_measures(
    phases: Iterable[Mapping[str, Any]], done: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """What closing leaves undone: per acute and follow-up phase, the measures not finished."""
    found = []
    for phase in phases:
        if phase.get("id") not in ("akutt", "oppfolging"):
            continue
        left = [
            {**m, "entry": done.get(m["id"])}
            for m in phase.get("measures", [])
            if is_open(done.get(m["id"]))
        ]
        if left:
            found.append({"title": phase.get("title"), "id": phase.get("id"), "measures": left})
    return found


def unmet_duties(deadlines: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The legal duties of the incident not marked as met (routines are the organisation's own:
    closing with one open is its own decision, and not listed as a breach of law)."""
    return [d for d in deadlines if d.get("kind") == "law" and not d.get("met_at")]
