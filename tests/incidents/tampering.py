"""What an intruder with database access does to an incident store, on SQLite or PostgreSQL."""

from __future__ import annotations

import sqlite3
from typing import Any
from uuid import UUID

import psycopg

from services.incidents.store import IncidentLog


def _is_postgres(store: IncidentLog) -> bool:
    return store.env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres"


def _pg(store: IncidentLog) -> psycopg.Connection[Any]:
    env = store.env
    return psycopg.connect(
        host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"], dbname=env["POSTGRES_DBNAME"],
        user=env["POSTGRES_USER"], password=env.get("POSTGRES_PASSWORD", ""), autocommit=True,
    )  # fmt: skip


def _table(store: IncidentLog) -> str:
    # The library names PostgreSQL tables by application; SQLite has one file per service.
    return f"{store.name.lower()}_events" if _is_postgres(store) else "stored_events"


def _key(store: IncidentLog, incident_id: UUID) -> Any:
    return incident_id if _is_postgres(store) else incident_id.hex


def _execute(store: IncidentLog, sql: str, params: tuple[Any, ...]) -> list[Any]:
    if _is_postgres(store):
        with _pg(store) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params)
            return list(cur.fetchall()) if cur.description else []
    with sqlite3.connect(store.env["SQLITE_DBNAME"]) as conn:
        return list(conn.execute(sql, params).fetchall())


def flip_byte(store: IncidentLog, incident_id: UUID, seq: int) -> None:
    table = _table(store)
    where = "WHERE originator_id = ? AND originator_version = ?"
    key = _key(store, incident_id)
    ((state,),) = _execute(store, f"SELECT state FROM {table} {where}", (key, seq))  # noqa: S608
    state = bytes(state)
    damaged = state[:20] + bytes([state[20] ^ 1]) + state[21:]
    _execute(store, f"UPDATE {table} SET state = ? {where}", (damaged, key, seq))  # noqa: S608


def delete_from(store: IncidentLog, incident_id: UUID, seq: int) -> None:
    """Remove the events from `seq` on: the log looks shorter, and its chain is still intact."""
    _execute(
        store,
        f"DELETE FROM {_table(store)} WHERE originator_id = ? AND originator_version >= ?",  # noqa: S608
        (_key(store, incident_id), seq),
    )


def rows(store: IncidentLog, incident_id: UUID) -> list[tuple[int, str, bytes]]:
    found = _execute(
        store,
        f"SELECT originator_version, topic, state FROM {_table(store)} "  # noqa: S608
        "WHERE originator_id = ? ORDER BY originator_version",
        (_key(store, incident_id),),
    )
    return [(int(v), str(t), bytes(s)) for v, t, s in found]


def replace_stream(
    store: IncidentLog, incident_id: UUID, new_rows: list[tuple[int, str, bytes]]
) -> None:
    """Swap the whole stream for another one, keeping the notification ids of the old rows."""
    table = _table(store)
    key = _key(store, incident_id)
    for version, topic, state in new_rows:
        _execute(
            store,
            f"UPDATE {table} SET topic = ?, state = ? "  # noqa: S608
            "WHERE originator_id = ? AND originator_version = ?",
            (topic, state, key, version),
        )


def forget(store: IncidentLog, incident_id: UUID) -> None:
    """Drop what the running service remembers of an incident, as a restart would."""
    # A test helper reaching into the service's memory on purpose: that is what a restart loses.
    store._evict(incident_id)
    store._exported.pop(incident_id, None)
    store._verified.pop(incident_id, None)
