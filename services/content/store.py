"""Where content lives: the national catalogue shipped in this package, and each organisation's
local additions in the service's own SQLite database."""

from __future__ import annotations

import functools
import json
import secrets
import uuid
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from services.content.domain import Catalogue, load
from shared.clock import SYSTEM_CLOCK, Clock
from shared.sqlite import SqliteStore


def catalogue_files(root: Traversable | Path | None = None) -> dict[str, str]:
    """Every catalogue file's text, keyed by its path relative to the catalogue directory."""
    base = root if root is not None else files("services.content") / "catalogue"
    found: dict[str, str] = {}

    def walk(node: Traversable | Path, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".yaml"):
                found[f"{prefix}{child.name}"] = child.read_text("utf-8")

    walk(base, "")
    return found


def load_catalogue(root: Path | None = None) -> Catalogue:
    if root is None:
        return _shipped()
    return load(catalogue_files(root))


@functools.cache
def _shipped() -> Catalogue:
    """The catalogue in this package is immutable: parse and index it once per process."""
    return load(catalogue_files())


SCHEMA = """
CREATE TABLE IF NOT EXISTS local_additions (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, subtheme_id TEXT NOT NULL, kind TEXT NOT NULL,
  body TEXT NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS local_by_subtheme ON local_additions (org_id, subtheme_id, created_at);
CREATE TABLE IF NOT EXISTS portal_sessions (
  id TEXT PRIMARY KEY, token TEXT NOT NULL, created_at TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS portal_sessions_by_expiry ON portal_sessions (expires_at);
"""


class LocalStore(SqliteStore):
    """Each organisation's own articles, aids and contacts, kept beside the national content;
    and the portal's sessions (services.content.sessions).

    Every query of the additions takes the organisation as its first condition: one
    organisation's additions can never appear in another's view, whatever id is asked for.
    """

    def __init__(self, path: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(path, SCHEMA)
        self.clock = clock

    def add(
        self, org_id: str, subtheme_id: str, kind: str, body: dict[str, Any], created_by: str
    ) -> dict[str, Any]:
        row = {
            "id": str(uuid.uuid4()),
            "subtheme_id": subtheme_id,
            "kind": kind,
            **body,
            "created_by": created_by,
            "created_at": self.clock.now().isoformat(),
        }
        with self._lock:
            self._db.execute(
                "INSERT INTO local_additions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    row["id"], org_id, subtheme_id, kind,
                    json.dumps(body, ensure_ascii=False), created_by, row["created_at"],
                ),
            )  # fmt: skip
        return row

    def for_subtheme(self, org_id: str, subtheme_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, body, created_by, created_at FROM local_additions"
                " WHERE org_id = ? AND subtheme_id = ? ORDER BY created_at, id",
                (org_id, subtheme_id),
            ).fetchall()
        return [
            {
                "id": r[0],
                "subtheme_id": subtheme_id,
                "kind": r[1],
                **json.loads(r[2]),
                "created_by": r[3],
                "created_at": r[4],
            }
            for r in rows
        ]

    def delete(self, org_id: str, addition_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM local_additions WHERE org_id = ? AND id = ?", (org_id, addition_id)
            )
        return cursor.rowcount > 0

    # ---------------------------------------------------------------- portal sessions

    def open_session(self, token: str, expires_at: float) -> str:
        """A new session holding `token` until `expires_at` (epoch seconds, by the store's
        clock); its id, random and unguessable, is all the browser gets. Sessions that have
        ended are swept out on the way."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock.now()
        with self._tx() as db:
            db.execute("DELETE FROM portal_sessions WHERE expires_at <= ?", (now.timestamp(),))
            db.execute(
                "INSERT INTO portal_sessions VALUES (?, ?, ?, ?)",
                (session_id, token, now.isoformat(), expires_at),
            )
        return session_id

    def session_token(self, session_id: str) -> str | None:
        """The token of a session that has neither ended nor expired, else None."""
        with self._lock:
            row = self._db.execute(
                "SELECT token FROM portal_sessions WHERE id = ? AND expires_at > ?",
                (session_id, self.clock.time()),
            ).fetchone()
        return None if row is None else str(row[0])

    def close_session(self, session_id: str) -> bool:
        """End a session for good (logout): its id opens nothing from now on."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM portal_sessions WHERE id = ?", (session_id,))
        return cursor.rowcount > 0
