"""The Norwegian words for the system's codes, one vocabulary for e-mails, the log form and the
portal, so that a role or a status reads the same wherever a person meets it."""

from __future__ import annotations

from datetime import date
from typing import Any

ROLE_TITLES: dict[str, str] = {
    # who is alerted
    "nearest_leader": "Nærmeste leder",
    "deputy": "Stedfortreder",
    "leader": "Leder",
    "safety_rep": "Verneombud",
    "main_safety_rep": "Hovedverneombud",
    "hr": "Personalavdelingen (HR)",
    # the other roles a token can carry
    "reporter": "Ansatt",
    "auditor": "Revisor",
    "admin": "Administrator",
}
SEVERITY_TITLES: dict[str, str] = {
    "low": "Lav",
    "medium": "Middels",
    "high": "Høy",
    "critical": "Kritisk",
}
MEASURE_STATUS_TITLES: dict[str, str] = {
    "done": "Utført",
    "started": "Påbegynt",
    "not_applicable": "Ikke aktuelt",
}
PHASE_TITLES: dict[str, str] = {
    "forebyggende": "Forebyggende",
    "akutt": "Akutt",
    "oppfolging": "Oppfølging",
    "avsluttet": "Avsluttet",
}
INCIDENT_STATUS_TITLES: dict[str, str] = {"open": "Åpen", "closed": "Avsluttet"}
CHANNEL_TITLES: dict[str, str] = {
    "email": "E-post",
    "sms": "SMS",
    "webhook": "Webhook",
    # Recorded and shown in kriselogg, not sent anywhere: the reader must not think it was.
    "log": "Kun i kriselogg (ikke sendt)",
}
DEADLINE_KIND_TITLES: dict[str, str] = {"law": "Lov", "routine": "Virksomhetens rutine"}


def fact_answer(value: Any) -> str:
    """A yes / no / unknown fact (or a date fact) as the reader says it: Ja, Nei, Vet ikke, or
    the date as Norwegians write it; any other value as given."""
    if value is True:
        return "Ja"
    if value is False:
        return "Nei"
    if value is None or value == "":
        return "Vet ikke"
    try:
        return date.fromisoformat(str(value)).strftime("%d.%m.%Y")
    except ValueError:
        return str(value)
