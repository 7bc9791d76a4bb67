"""API docs that work offline and under the portal's CSP: Swagger UI served from this origin.

Swagger UI's files come from the `fastapi-offline` wheel (never a CDN). FastAPI's own docs page
starts Swagger UI with an inline script, which the services' `script-src 'self'` (shared.http)
blocks, and Swagger UI's stylesheet draws its icons from `data:` images, which `img-src 'self'`
blocks. So the page here starts Swagger UI from a same-origin script, and the stylesheet is
served with each `data:` image moved to a same-origin file of its own: the docs need no
exception to the CSP at all.

`install_docs(app)` serves `/docs` and its files on a service; the gateway serves the same page
for the merged schema. It also completes the description of the problem+json answers.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Mapping
from html import escape
from importlib.resources import files
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

from shared.http import Problem

DOCS_URL = "/docs"
ASSETS = f"{DOCS_URL}/assets"
_PACKAGE = files("fastapi_offline") / "static"
_CSS_DATA_URL = re.compile(r'url\((?:"(data:(?:[^"\\]|\\.)*)"|(data:[^)"]*))\)')
_CSS_ESCAPE = re.compile(r"\\(.)")
_EXTENSIONS = {"image/svg+xml": "svg", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif"}
_MEDIA_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    **{ext: media for media, ext in _EXTENSIONS.items()},
}
_CACHE = {"Cache-Control": "public, max-age=86400"}

# Starts Swagger UI; the schema's URL comes from the page (a data attribute), not from code.
INIT_JS = """\
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    showExtensions: true,
    // No badge from the public validator: these docs talk to this origin only.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""


def docs_page(title: str, openapi_url: str) -> str:
    """The HTML of the docs page: no inline script or style, everything from `ASSETS`."""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)} - API</title>"
        f"<link rel='icon' type='image/png' href='{ASSETS}/favicon.png'>"
        f"<link rel='stylesheet' href='{ASSETS}/swagger-ui.css'>"
        "</head><body>"
        f"<div id='swagger-ui' data-openapi-url='{escape(openapi_url)}'></div>"
        f"<script src='{ASSETS}/swagger-ui-bundle.js'></script>"
        f"<script src='{ASSETS}/swagger-ui-init.js'></script>"
        "</body></html>"
    )


def _data_url(url: str) -> tuple[bytes, str]:
    """(content, file extension) of a `data:` URL."""
    header, _, payload = url.removeprefix("data:").partition(",")
    media, *params = header.split(";")
    content = base64.b64decode(payload) if "base64" in params else unquote_to_bytes(payload)
    return content, _EXTENSIONS.get(media, "bin")


@functools.cache
def assets() -> dict[str, bytes]:
    """Every file the docs page loads, by name under `ASSETS`."""
    found: dict[str, bytes] = {
        "swagger-ui-bundle.js": (_PACKAGE / "swagger-ui-bundle.js").read_bytes(),
        "favicon.png": (_PACKAGE / "favicon.png").read_bytes(),
        "swagger-ui-init.js": INIT_JS.encode(),
    }

    def same_origin(match: re.Match[str]) -> str:
        quoted, bare = match.groups()
        url = _CSS_ESCAPE.sub(r"\1", quoted) if quoted is not None else bare
        content, ext = _data_url(url)
        name = f"img/{hashlib.sha256(content).hexdigest()[:16]}.{ext}"
        found[name] = content
        return f"url({name})"  # relative to the stylesheet: {ASSETS}/img/...

    css = (_PACKAGE / "swagger-ui.css").read_text("utf-8")
    css = _CSS_DATA_URL.sub(same_origin, css)
    # The source map is not shipped; without this line a browser's devtools would ask for it.
    css = re.sub(r"/\*# sourceMappingURL=[^*]*\*/", "", css)
    found["swagger-ui.css"] = css.encode()
    return found


def asset_response(name: str) -> Response:
    content = assets().get(name)
    if content is None:
        raise Problem(404, "Finnes ikke", f"API-dokumentasjonen har ingen fil {name}.")
    media = _MEDIA_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")
    return Response(content, media_type=media, headers=_CACHE)


PROBLEM_FIELDS: dict[str, tuple[str, Any]] = {
    "type": (
        "A URI naming the kind of problem; `about:blank` when the title says it all",
        "about:blank",
    ),
    "title": (
        "A short summary of the problem in Norwegian, the same for every occurrence of it",
        "Ugyldig forespørsel",
    ),
    "status": ("The HTTP status code, repeated in the body", 422),
    "detail": (
        "What went wrong this time, and what to do about it, for a person (Norwegian)",
        "title: må fylles ut",
    ),
    "errors": (
        "Only on 422: one entry per invalid field",
        [{"field": "title", "message": "må fylles ut", "type": "missing"}],
    ),
    "errors[].field": ("The field, as a path into the body or query (`affected[0]`)", "title"),
    "errors[].message": ("What is wrong with it, in Norwegian", "må fylles ut"),
    "errors[].type": ("The kind of error, for programs (pydantic's error type)", "missing"),
}


def describe_problem(schema: dict[str, Any]) -> None:
    """Describe each field of the problem+json schema (shared.http) in an OpenAPI document."""
    problem = schema.get("components", {}).get("schemas", {}).get("Problem")
    if problem is None:
        return
    problem.setdefault(
        "description",
        "An error as RFC 9457 problem+json; some problems add fields of their own "
        "(e.g. `retry_after` on 429, `problems` on an invalid directory)",
    )
    for name, prop in problem["properties"].items():
        description, example = PROBLEM_FIELDS[name]
        prop.setdefault("description", description)
        prop.setdefault("examples", [example])
    for name, prop in problem["properties"]["errors"]["items"]["properties"].items():
        description, example = PROBLEM_FIELDS[f"errors[].{name}"]
        prop.setdefault("description", description)
        prop.setdefault("examples", [example])


FieldDocs = Mapping[str, Mapping[str, tuple[str, Any]]]
"""schema name -> field -> (description, example), for models whose fields say nothing."""


def describe_fields(schema: dict[str, Any], docs: FieldDocs) -> None:
    """Describe the fields of component schemas that are defined without descriptions.

    For request models that live in a service's domain module: their documentation is kept
    beside the routes (api.py). A name in `docs` that the schema lacks raises, so the table
    cannot drift from the models unnoticed; a field it misses fails tests/e2e/test_api_docs.py.
    """
    schemas = schema.get("components", {}).get("schemas", {})
    for name, fields in docs.items():
        if name not in schemas:
            raise KeyError(f"documented schema {name} is not in the OpenAPI document")
        properties = schemas[name].get("properties", {})
        for field, (description, example) in fields.items():
            if field not in properties:
                raise KeyError(f"documented field {name}.{field} is not in the schema")
            properties[field].setdefault("description", description)
            properties[field].setdefault("examples", [example])


# Path and query parameters by name: one meaning each across the whole API. A parameter that
# says more where it is declared keeps its own description.
PARAMETERS: dict[str, tuple[str, Any]] = {
    "incident_id": ("The incident's id (a UUID)", "0b6f6a52-4a3e-4c9e-9f7e-2d1c1f0e8a11"),
    "alert_id": ("The alert's id (GET /api/v1/alerts)", "c513bf3b-f1c0-5fad-825e-3b2d4b7102f6"),
    "deadline_id": ("The duty's id (`deadlines` of the incident)", "aml-5-1"),
    "unit_id": ("A unit of the organisation's directory", "u-nord"),
    "subtheme_id": ("A guidance sub-theme (GET /api/v1/guidance/themes)", "vold-fysisk"),
    "article_id": (
        "A resource article (GET /api/v1/guidance/themes)",
        "forstehjelp-sykdom-ulykker",
    ),
    "addition_id": ("A local addition's id", "3975a5f0-2142-4688-99e0-2589b4a75b4f"),
    "filename": ("An archived file's name (GET .../incidents/{id})", "loggskjema-endelig-12.pdf"),
    "fmt": ("docx (Word) or pdf", "pdf"),
    "status": ("Only open, or only closed incidents; left out, all", "open"),
    "as_of": (
        "A time with a time zone (RFC 3339): the log as it stood then",
        "2026-03-02T10:00:00Z",
    ),
    "until_seq": ("The log up to and including this entry (0: before the report)", 5),
    "index": ("A leaf's index in the organisation's log (GET /api/v1/log/leaves)", 1041),
    "size": ("The tree size of a checkpoint (its second line)", 1207),
    "from": ("The older tree size (a checkpoint you hold)", 1100),
    "to": ("The newer tree size (the current checkpoint)", 1207),
    "q": ("Search words; every one must be found", "politi"),
    "limit": ("At most this many hits of each kind (1-50)", 20),
    "code": ("From the identity provider: the authorisation code", "SplxlOBeZQQYbYS6WxSbIA"),
    "state": ("From the identity provider: the state kriselogg sent", "af0ifjsldkj"),
    "error": ("From the identity provider: why it refused", "access_denied"),
    "service": ("content, incidents, documents or notify", "incidents"),
    "neste": (
        "The portal page to return to after the login (the portal's own paths only; anything "
        "else returns to the start page)",
        "/hendelser/0b6f6a52-4a3e-4c9e-9f7e-2d1c1f0e8a11",
    ),
}


def describe_parameters(schema: dict[str, Any]) -> None:
    """Describe each path and query parameter of an OpenAPI document from `PARAMETERS`."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                known = PARAMETERS.get(parameter["name"])
                if known is None:
                    continue  # tests/e2e/test_api_docs.py names it
                description, example = known
                parameter.setdefault("description", description)
                parameter.setdefault("example", example)


def install_docs(
    app: FastAPI, fields: FieldDocs | None = None, openapi_url: str = "/openapi.json"
) -> None:
    """`/docs` (Swagger UI, offline, under the CSP) for `app`; call after install_hardening.

    `fields` describes fields of models defined elsewhere (see `describe_fields`).

    The FastAPI app must be made with `docs_url=None, redoc_url=None`, or FastAPI's own pages,
    which load Swagger UI from a CDN, would be served instead.
    """
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("make the app with docs_url=None, redoc_url=None")
    title = app.title

    @app.get(DOCS_URL, include_in_schema=False, response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_page(title, openapi_url))

    @app.get(ASSETS + "/{name:path}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        return asset_response(name)

    produce = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = produce()
        describe_problem(schema)
        describe_fields(schema, fields or {})
        describe_parameters(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
