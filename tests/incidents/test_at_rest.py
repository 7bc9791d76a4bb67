"""Incident events are encrypted and compressed at rest, by default, on SQLite and PostgreSQL.

Issue 3: someone who can read the database (a backup, a disk, a DBA) must not read the log.
These tests look at the stored bytes themselves, bypassing the application:

- with default settings, neither a note's text nor the incident's title occurs anywhere in the
  raw database (every file of the SQLite store, WAL included; every text and bytea value of every
  PostgreSQL table), while the application still returns them and the stored state decrypts,
  with the key in the data dir, to a zlib stream holding them (so the search looked at the
  right bytes, and they are encrypted, not merely compressed);
- with `encrypt_events=False` compression is still on: the text is not in the raw bytes
  either, but each stored state is a zlib stream that holds it;
- a stored event whose compressed bytes were damaged makes `verify` report that seq as
  unreadable instead of raising.
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from datetime import UTC, datetime
from uuid import UUID

import psycopg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import sql

from services.incidents.settings import IncidentSettings
from services.incidents.store import IncidentLog
from tests.incidents.tampering import replace_stream, rows

ACTOR = {"id": "p-ln", "name": "Lise Nord"}
NOTE = "Sårbar opplysning 7f3c"
TITLE = "Trusler mot Åse Bråten på lageret"
NOTE_TOPIC = b"services.incidents.domain:Incident.NoteAdded"


@pytest.fixture
def plain_settings(settings: IncidentSettings) -> IncidentSettings:
    return settings.model_copy(update={"encrypt_events": False})


def write_incident(store: IncidentLog) -> UUID:
    """An incident with a sensitive title and note, plus a snapshot of its whole state."""
    incident = store.report(
        org_id="demo",
        actor=ACTOR,
        data={"category": "trusler", "title": TITLE, "unit_id": "u-nord",
              "affected": ["p-ansatt"], "severity": "high"},
        occurred_at=datetime(2026, 11, 25, 18, tzinfo=UTC),
    )  # fmt: skip
    store.append(incident.id, "demo", "NoteAdded", actor=ACTOR, data={"text": NOTE})
    store.append(incident.id, "demo", "NoteAdded", actor=ACTOR, data={"text": "Ringte 113"})
    # A snapshot holds the whole state (title and notes) in one stored record: search it too.
    store.take_snapshot(incident.id)
    return incident.id


def raw_database(settings: IncidentSettings) -> tuple[bytes, dict[str, int]]:
    """Every stored byte, read past the application, and the number of rows per table.

    SQLite: the files in the data dir (database, WAL, shared memory, key file). PostgreSQL: every
    text and bytea value of every table in the store's schema (row counts come only from there).
    """
    if settings.event_store == "sqlite":
        files = sorted(p for p in settings.data_dir.rglob("*") if p.is_file())
        assert any(p.name == "events.sqlite" for p in files)
        return b"\n".join(p.read_bytes() for p in files), {}
    assert settings.postgres_dsn
    chunks: list[bytes] = []
    counts: dict[str, int] = {}
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT table_schema, table_name, column_name, data_type"
            " FROM information_schema.columns WHERE table_schema = %s"
            " AND data_type IN ('bytea', 'text', 'character varying')",
            (os.environ.get("KRISELOGG_POSTGRES_SCHEMA", "public"),),  # as the store does
        ).fetchall()
        for schema, table, column, data_type in columns:
            query = sql.SQL("SELECT {} FROM {}.{}").format(
                sql.Identifier(column), sql.Identifier(schema), sql.Identifier(table)
            )
            values = [value for (value,) in conn.execute(query).fetchall() if value is not None]
            counts[table] = len(values)
            for value in values:
                chunks.append(bytes(value) if data_type == "bytea" else str(value).encode())
    return b"\n".join(chunks), counts


def decrypt(settings: IncidentSettings, state: bytes) -> bytes:
    """AES-GCM as stored by eventsourcing's AESCipher: nonce (12), tag (16), ciphertext."""
    key = base64.b64decode((settings.data_dir / "incidents" / "event.key").read_text().strip())
    nonce, tag, ciphertext = state[:12], state[12:28], state[28:]
    return AESGCM(key).decrypt(nonce, ciphertext + tag, None)


def test_sensitive_text_is_not_in_the_raw_database_by_default(
    settings: IncidentSettings,
) -> None:
    assert settings.encrypt_events  # the default, not something this test switched on
    store = IncidentLog(settings)
    try:
        incident_id = write_incident(store)
        exported = store.exported_events(incident_id)
        # Positive control: the application reads the very text the raw search looks for.
        assert exported[0]["data"]["title"] == TITLE
        assert exported[1]["data"]["text"] == NOTE
        stored = rows(store, incident_id)
        raw_while_open, counts = raw_database(settings)
    finally:
        store.close()
    raw_after_close, _ = raw_database(settings)  # SQLite: the WAL is checkpointed into the file

    for raw in (raw_while_open, raw_after_close):
        # The search reaches the stored events: their topics are kept in clear.
        assert NOTE_TOPIC in raw
        for secret in (NOTE, TITLE, "Sårbar", "Bråten"):
            assert secret.encode("utf-8") not in raw, secret
    if settings.event_store == "postgres":
        assert counts["incidents_events"] >= 3  # every stored event (state column) was read
        assert counts["incidents_snapshots"] >= 1

    # The stored state is encrypted (not a bare zlib stream), and decrypts with the data dir's
    # key to the compressed event: the bytes searched above hold the text, unreadably.
    assert [version for version, _, _ in stored] == [1, 2, 3]
    note_state = stored[1][2]
    with pytest.raises(zlib.error):
        zlib.decompress(note_state)
    assert NOTE.encode() in zlib.decompress(decrypt(settings, note_state))
    assert TITLE.encode() in zlib.decompress(decrypt(settings, stored[0][2]))


def test_without_encryption_events_are_still_compressed_at_rest(
    plain_settings: IncidentSettings,
) -> None:
    store = IncidentLog(plain_settings)
    try:
        incident_id = write_incident(store)
        assert store.exported_events(incident_id)[1]["data"]["text"] == NOTE
        stored = rows(store, incident_id)
        raw, _ = raw_database(plain_settings)
    finally:
        store.close()
    assert not (plain_settings.data_dir / "incidents" / "event.key").exists()
    assert NOTE_TOPIC in raw
    for secret in (NOTE, TITLE):
        assert secret.encode("utf-8") not in raw, secret
    # Each stored state is a zlib stream of the event: compressed, not encrypted.
    assert NOTE.encode() in zlib.decompress(stored[1][2])
    assert TITLE.encode() in zlib.decompress(stored[0][2])


def test_a_damaged_compressed_event_is_reported_by_verify_not_raised(
    plain_settings: IncidentSettings,
) -> None:
    store = IncidentLog(plain_settings)
    try:
        incident_id = write_incident(store)
        store.append(incident_id, "demo", "NoteAdded", actor=ACTOR, data={"text": "Politiet kom"})
        # Verified once first: what verify remembers must not hide the later damage.
        assert store.verify(incident_id)[0].valid
        before = store.exported_events(incident_id)
        version, topic, state = rows(store, incident_id)[2]
        assert version == 3
        middle = len(state) // 2
        damaged = state[:middle] + bytes([state[middle] ^ 0x10]) + state[middle + 1 :]
        with pytest.raises(zlib.error):  # the damage is one the decompressor detects
            zlib.decompress(damaged)
        replace_stream(store, incident_id, [(version, topic, damaged)])
        assert rows(store, incident_id)[2][2] == damaged

        report, hashes = store.verify(incident_id)
        assert not report.valid
        assert report.first_invalid_seq == 3
        assert report.length == 2
        assert report.reason is not None and "cannot be read" in report.reason
        assert hashes == [before[0]["hash"], before[1]["hash"], "", ""]
    finally:
        store.close()


def test_an_event_that_decodes_but_lacks_a_field_is_reported_by_verify_not_raised(
    plain_settings: IncidentSettings,
) -> None:
    """Someone with database access re-compresses an event without one of its fields."""
    store = IncidentLog(plain_settings)
    try:
        incident_id = write_incident(store)
        version, topic, state = rows(store, incident_id)[1]
        event = json.loads(zlib.decompress(state))
        del event["occurred_at"]
        forged = zlib.compress(json.dumps(event).encode())
        replace_stream(store, incident_id, [(version, topic, forged)])

        report, _ = store.verify(incident_id)
        assert not report.valid
        assert report.first_invalid_seq == version
        assert report.reason is not None and "cannot be read" in report.reason
    finally:
        store.close()
