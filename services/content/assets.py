"""The portal's static files, each under a name with its content's hash (issue 16).

A phone on a slow link should fetch the style sheet and htmx once, not on every page: the
pages name each file as `/static/<stem>.<hash><suffix>`, which is cached for a year and never
revalidated. A changed file gets a new hash and so a new URL, so no browser keeps an old one.

The plain name (`/static/style.css`) is still served, revalidated on every use (its ETag), for
what cannot ask the portal for the hashed name: notify's acknowledgement page names it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

HASH_LENGTH = 12  # hex digits of sha256: no two versions of one file will meet in a cache
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
PREFIX = "/static"


def hashed_name(name: str, content: bytes) -> str:
    """`style.css` -> `style.<first 12 hex of sha256(content)>.css`; folders are kept."""
    path = PurePosixPath(name)
    digest = hashlib.sha256(content).hexdigest()[:HASH_LENGTH]
    return str(path.with_name(f"{path.stem}.{digest}{path.suffix}"))


def hashed_names(directory: Path) -> dict[str, str]:
    """Every file under `directory`, by its path there (POSIX), -> its hashed name."""
    return {
        (name := path.relative_to(directory).as_posix()): hashed_name(name, path.read_bytes())
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


class StaticAssets(StaticFiles):
    """StaticFiles that also serves each file under its hashed name, cached for good.

    The files are hashed once, when this is made (at start): a file changed while the process
    runs is served under its old hash until a restart.
    """

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory)
        self.names = hashed_names(directory)
        self._plain = {hashed: name for name, hashed in self.names.items()}

    def url(self, name: str) -> str:
        """The hashed URL of `name`; a KeyError for a file that is not there, so that a page
        naming a missing file fails in the tests rather than as a 404 in someone's browser."""
        return f"{PREFIX}/{self.names[name]}"

    async def get_response(self, path: str, scope: Scope) -> Response:
        plain = self._plain.get(path)
        response = await super().get_response(plain or path, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = IMMUTABLE if plain else REVALIDATE
        return response
