"""API docs that work offline, under the portal's CSP (the issue's acceptance item on API docs).

`/docs` on `kriselogg up` opens in Debian's chromium with no console error and nothing loaded
from another host, and shows every operation of the one merged `/openapi.json`, which covers
every service's routes while each service keeps its own. Every request and response field of
the merged schema is described, with an example (`facts` on the report included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import ConsoleMessage, async_playwright, expect
from pydantic import BaseModel

from services.cli import SERVICES, build_app
from services.gateway import Gateway, merged_openapi, route
from shared.apidocs import ASSETS
from shared.settings import Settings
from tests.e2e.test_portal import CHROMIUM_ARGS, chromium, kriselogg

__all__ = ["chromium", "kriselogg"]  # fixtures shared with the portal's browser tests

LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
# One example of each service's routes, as the merged schema must have them.
EXPECTED_PATHS = {
    "content": "/api/v1/guidance/themes",
    "incidents": "/api/v1/incidents",
    "documents": "/api/v1/documents/incidents/{incident_id}/log.{fmt}",
    "notify": "/api/v1/alerts",
}
FACT_KEYS = (
    "death",
    "serious_injury",
    "serious_psychological_injury",
    "injury",
    "sick_leave_from",
    "police_involved",
)
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FastAPI]:
    """The four apps as `kriselogg up` builds them; none is started (no NATS is reached)."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("apidocs"),
        nats_url="nats://127.0.0.1:1",
        secret_key="k" * 43,
        event_store="sqlite",
    )
    return {name: build_app(name, settings) for name in SERVICES}


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


# --- the merged schema ------------------------------------------------------------------------


def test_merged_schema_covers_every_service_and_each_keeps_its_own(
    apps: dict[str, FastAPI],
) -> None:
    merged = merged_openapi(apps)
    assert merged["info"]["title"] == "kriselogg"
    for name, path in EXPECTED_PATHS.items():
        assert path in merged["paths"], f"{name}: {path} is not in the merged schema"
    for name, app in apps.items():
        own = app.openapi()
        assert own["info"]["title"] == f"kriselogg {name}"
        for path, item in own["paths"].items():
            if path in ("/healthz", "/readyz"):
                continue  # the gateway answers these for the whole, and /healthz/<name>
            assert route(path, apps)[0] == name, f"{path} of {name} is routed elsewhere"
            assert set(item) <= set(merged["paths"][path]), f"{name}: {path}"
    for probe in ("/healthz", "/readyz", "/healthz/{service}", "/readyz/{service}"):
        assert probe in merged["paths"]
    ids = [op["operationId"] for _, _, op in operations(merged)]
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    refs = _refs(merged)
    missing = {
        r for r in refs if unquote(r.rsplit("/", 1)[1]) not in merged["components"]["schemas"]
    }
    assert not missing, f"references to schemas the merged document lacks: {missing}"


def _refs(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
    return found.union(*(_refs(value) for value in node.values()))


class _ItemA(BaseModel):
    name: str


class _ItemB(BaseModel):
    count: int


def test_components_that_differ_under_one_name_are_kept_apart() -> None:
    """Two services each with their own `Item`: both are kept, each path refers to its own."""
    first, second = FastAPI(title="a"), FastAPI(title="b")

    @first.post("/api/v1/incidents")
    def one(body: _ItemA) -> None: ...

    @second.post("/api/v1/alerts")
    def two(body: _ItemB) -> None: ...

    for app, model in ((first, _ItemA), (second, _ItemB)):
        schema = app.openapi()
        schemas = schema["components"]["schemas"]
        schemas["Item"] = schemas.pop(model.__name__)
        body = next(iter(schema["paths"].values()))["post"]["requestBody"]
        body["content"]["application/json"]["schema"]["$ref"] = "#/components/schemas/Item"
    merged = merged_openapi({"incidents": first, "notify": second})
    schemas = merged["components"]["schemas"]
    assert "count" in schemas["notify.Item"]["properties"]
    assert "name" in schemas["Item"]["properties"]
    body = merged["paths"]["/api/v1/alerts"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"] == "#/components/schemas/notify.Item"


# --- every field described, with an example ---------------------------------------------------


def _resolve(node: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schemas[unquote(node["$ref"].rsplit("/", 1)[1])]
    return node


def _has_fields(node: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """An object with properties of its own (or a list or choice of such): its example is made
    of its fields' examples, so it needs none of its own."""
    node = _resolve(node, schemas)
    choices = node.get("anyOf") or node.get("oneOf") or []
    if choices:
        real = [c for c in choices if c.get("type") != "null"]
        return bool(real) and all(_has_fields(c, schemas) for c in real)
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        return _has_fields(node["items"], schemas)
    return bool(node.get("properties"))


def undocumented(schema: dict[str, Any]) -> list[str]:
    """Every parameter, request-body or response property without a description or example."""
    schemas: dict[str, Any] = schema.get("components", {}).get("schemas", {})
    found: list[str] = []
    walked: set[int] = set()

    def walk(node: dict[str, Any], where: str) -> None:
        node = _resolve(node, schemas)
        if id(node) in walked:
            return
        walked.add(id(node))
        for key in ("anyOf", "oneOf", "allOf"):
            for choice in node.get(key, []):
                walk(choice, where)
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{where}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{where}{{}}")
        for name, prop in node.get("properties", {}).items():
            here = f"{node.get('title', where)}.{name}"
            if not prop.get("description"):
                found.append(f"{here}: no description")
            if not (prop.get("examples") or "example" in prop or _has_fields(prop, schemas)):
                found.append(f"{here}: no example")
            walk(prop, here)

    for method, path, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            here = f"{method.upper()} {path} {parameter['in']} parameter {parameter['name']}"
            if not parameter.get("description"):
                found.append(f"{here}: no description")
            if "example" not in parameter and not parameter.get("examples"):
                found.append(f"{here}: no example")
        content = operation.get("requestBody", {}).get("content", {})
        for media in content.values():
            walk(media.get("schema", {}), f"{method.upper()} {path} body")
        for code, response in operation["responses"].items():
            for media in response.get("content", {}).values():
                walk(media.get("schema", {}), f"{method.upper()} {path} {code}")
    return sorted(set(found))


def test_every_parameter_request_and_response_field_is_described_with_an_example(
    apps: dict[str, FastAPI],
) -> None:
    missing = undocumented(merged_openapi(apps))
    assert not missing, f"{len(missing)} field(s) to document:\n" + "\n".join(missing)


def test_the_facts_of_a_report_are_documented_key_by_key(apps: dict[str, FastAPI]) -> None:
    schema = merged_openapi(apps)
    facts = schema["components"]["schemas"]["ReportIn"]["properties"]["facts"]
    assert "yes / no / unknown" in facts["description"]
    model = schema["components"]["schemas"]["Facts"]
    assert set(FACT_KEYS) <= set(model["examples"][0]), model["examples"]
    keys = model["properties"]
    for key in FACT_KEYS:
        assert "null" in keys[key]["description"] and len(keys[key]["description"]) > 40, key
    # The duties each fact starts are named where it is documented (the legal registry).
    assert "aml § 5-2" in keys["serious_psychological_injury"]["description"]
    assert "aml § 4-6" in keys["sick_leave_from"]["description"]


# --- the docs pages ---------------------------------------------------------------------------


async def test_every_service_serves_its_own_docs_from_its_own_origin(
    apps: dict[str, FastAPI],
) -> None:
    """`kriselogg serve X`: /docs, its files and its own /openapi.json, under the CSP."""
    targets: list[tuple[str, Any]] = [*apps.items(), ("gateway", Gateway(apps))]
    for name, app in targets:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            page = await client.get("/docs")
            assert page.status_code == 200, name
            assert "script-src" not in page.headers["content-security-policy"]
            assert page.headers["content-security-policy"].startswith("default-src 'self'")
            assert "http" not in page.text.replace("http-equiv", ""), f"{name}: {page.text}"
            assert "<script>" not in page.text and "style=" not in page.text, name
            for asset in ("swagger-ui-bundle.js", "swagger-ui-init.js", "swagger-ui.css"):
                answer = await client.get(f"{ASSETS}/{asset}")
                assert answer.status_code == 200, f"{name}: {asset}"
            css = (await client.get(f"{ASSETS}/swagger-ui.css")).text
            assert "data:" not in css, "every data: image must be a file of its own (img-src)"
            assert (await client.get(f"{ASSETS}/nothing.js")).status_code == 404
            schema = (await client.get("/openapi.json")).json()
            expected = "kriselogg" if name == "gateway" else f"kriselogg {name}"
            assert schema["info"]["title"] == expected


async def test_docs_open_in_chromium_without_errors_or_other_hosts(
    chromium: Path, kriselogg: str, tmp_path: Path
) -> None:
    base = kriselogg
    async with httpx.AsyncClient(timeout=10) as client:
        schema = (await client.get(f"{base}/openapi.json")).json()
    for name, path in EXPECTED_PATHS.items():
        assert path in schema["paths"], f"{name}: {path}"
    expected = len(operations(schema))
    problems: list[str] = []
    requested: list[str] = []
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()

            def console(message: ConsoleMessage) -> None:
                if message.type in ("error", "warning"):
                    problems.append(f"console {message.type}: {message.text}")

            page.on("console", console)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
            page.on("request", lambda r: requested.append(r.url))
            await page.goto(f"{base}/docs")
            await expect(page.locator(".info .title")).to_contain_text("kriselogg")
            report = page.locator("#operations-incidents-report_api_v1_incidents_post")
            await expect(report).to_be_visible(timeout=20_000)
            await expect(page.locator(".opblock")).to_have_count(expected)
            # The report's body: its example shows the facts, keys and all.
            await report.locator(".opblock-summary").click()
            example = report.locator(".body-param__example")
            await expect(example).to_contain_text('"facts"')
            for key in FACT_KEYS:
                await expect(example).to_contain_text(key)
            await page.wait_for_load_state("networkidle")
            await page.screenshot(path=str(tmp_path / "docs.png"))
        finally:
            await context.close()
    assert not problems, problems
    elsewhere = [u for u in requested if urlsplit(u).hostname not in LOOPBACK]
    assert not elsewhere, f"requests to other hosts: {elsewhere}"
    assert f"{base}/openapi.json" in requested
