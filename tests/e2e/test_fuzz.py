"""Issue 7, acceptance 3: schemathesis against every service's OpenAPI, with valid tokens.

No generated request may get a 5xx, and no response may break the schema its own service
publishes. Each service is fuzzed through the schema its app serves at `/openapi.json`.

How it runs. schemathesis is synchronous: its ASGI transport drives an app on an event loop of
its own, in another thread, so it cannot reach apps whose lifespans (NATS, stores, relay) run
on pytest's loop. So one stack per module (`running_stack`, real NATS) runs in a thread of its
own (an anyio blocking portal), and each of the four apps is served there by uvicorn on its own
loopback port, as `kriselogg serve` runs it alone in production; the tests call those ports over
real HTTP. Each service is fuzzed through its own schema, as it runs alone; then the whole
origin once more through the gateway (served the same way), against the one merged schema the
gateway publishes at `/openapi.json` (fewer cases per operation: every route was fuzzed already
through its own service, this run holds the merged schema and the routing to the same answers).

Each operation gets valid input once per demo token (leader, admin, reporter, other_org), first
with generated path parameters, then with each combination of real ones (an open and a closed
incident, an alert of the leader's and of someone else's, deadlines, units, catalogue ids, a
local addition, an archived file), so the fuzzing gets past the 404 of a random id. Then it
gets invalid input, the token drawn per case; schemathesis' invalid input includes leaving
out the Authorization header, which is answered 401, as it should be.

Every answer is checked (CHECKS): no 5xx, a status code the operation documents, the media type
and the shape it documents. FastAPI alone documents only the 2xx answer and 422 of each
operation, while the services deliberately answer 401 without a token, 403 for a role that may
not, 404 for an id that is not in the caller's organisation and 409 for a closed incident, all
as problem+json; `shared.http.document_problems` adds those codes, with the problem+json
schema, to every operation of each service's schema, so status_code_conformance holds them to it.
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import uvicorn
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.gateway import Gateway
from tests.support import REPORT, ListeningServer, Stack, running_stack

SERVICES = ("content", "incidents", "documents", "notify")
IDENTITIES = ("leader", "admin", "reporter", "other_org")  # every demo token; leader first
# Cases per operation and token: with generated path parameters, with each combination of real
# ones, and invalid input (tokens drawn).
GENERATED_EXAMPLES = 10
KNOWN_EXAMPLES = 5
NEGATIVE_EXAMPLES = 20
# Through the gateway: (generated, known, negative) cases per operation and token.
GATEWAY_EXAMPLES = (4, 2, 8)
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Operation]
# Every answer, errors included, must be documented: its status, its media type, its shape.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class Served:
    stack: Stack
    portal: BlockingPortal  # runs the stack's event loop
    urls: dict[str, str]
    known: dict[str, list[str]] = field(default_factory=dict)  # path parameter -> real values


@dataclass
class _Server:
    server: uvicorn.Server
    done: Future[None]  # of its serve()


def _serve(portal: BlockingPortal, app: Any) -> tuple[_Server, str]:
    """uvicorn on a port the system picks (no race for a free port), on the portal's loop."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",  # running_stack runs the lifespans
        log_level="warning",
        access_log=False,
        log_config=None,
    )
    server = ListeningServer(config)
    done = portal.start_task_soon(server.serve)
    if not server.up.wait(10) or not server.started:
        if done.done():
            done.result()  # raises what stopped it
        raise AssertionError("uvicorn did not start within 10 s")
    port = server.servers[0].sockets[0].getsockname()[1]
    return _Server(server, done), f"http://127.0.0.1:{port}"


def _known_values(served: Served, stack: Stack) -> dict[str, list[str]]:
    """Create real things to point path parameters at; returns them per parameter name."""
    urls = served.urls
    with httpx.Client(timeout=20) as client:
        incidents = []
        for _ in range(2):
            answer = client.post(
                f"{urls['incidents']}/api/v1/incidents", json=REPORT, headers=stack.auth("reporter")
            )
            assert answer.status_code == 201, answer.text
            incidents.append(answer.json()["id"])
        open_id, closed_id = incidents
        for incident_id in incidents:
            served.portal.call(stack.settle, incident_id)
        closed = client.post(
            f"{urls['incidents']}/api/v1/incidents/{closed_id}/close",
            json={"summary": "Avsluttet før fuzzing"},
            headers=stack.auth(),
        )
        assert closed.status_code == 201, closed.text
        # The final Word form is archived from the bus; wait for it (no PDF: see the fixture).
        archive = stack.apps["documents"].state.archive
        final = f"loggskjema-endelig-{closed.json()['seq']}.docx"
        assert archive.wait_for("demo", closed_id, final, 20), "no final log form archived"
        listed = client.get(
            f"{urls['documents']}/api/v1/documents/incidents/{closed_id}", headers=stack.auth()
        )
        files: list[dict[str, Any]] = listed.json()["files"]
        alerts = client.get(f"{urls['notify']}/api/v1/alerts", headers=stack.auth()).json()
        deadlines = client.get(
            f"{urls['notify']}/api/v1/alerts/deadlines/{open_id}", headers=stack.auth()
        ).json()
        tree = client.get(f"{urls['content']}/api/v1/guidance/themes", headers=stack.auth()).json()
        addition = client.post(
            f"{urls['content']}/api/v1/guidance/subthemes/{REPORT['category']}/local",
            json={"kind": "article", "title": "Vår rutine", "text": "Ring vakttelefonen."},
            headers=stack.auth("admin"),
        )
        assert addition.status_code == 201, addition.text
    leader_alerts = [a["id"] for a in alerts if a["person_id"] == "p-ln"]
    others_alerts = [a["id"] for a in alerts if a["person_id"] != "p-ln"]
    # At most two real values per parameter: each combination is fuzzed with every token.
    return {
        "incident_id": [open_id, closed_id],
        "alert_id": leader_alerts[:1] + others_alerts[:1],  # acknowledged by its own / another
        "deadline_id": [d["deadline_id"] for d in deadlines][:2],
        "filename": [f["filename"] for f in files][:1],
        "unit_id": ["u-nord", "u-top"],
        "subtheme_id": [str(REPORT["category"])],
        "article_id": [tree["resources"][0]["articles"][0]["id"]],
        "addition_id": [addition.json()["id"]],
    }


@pytest.fixture(scope="module")
def served(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as env, start_blocking_portal() as portal:
        # No LibreOffice for this stack: a PDF takes seconds to convert, which would make the
        # fuzzing slow and its timing vary. Generated requests for `log.pdf` carry random ids
        # and end before conversion; real ids are asked for `log.docx` only (see `_targets`).
        # Closing an incident then archives the final Word form only. PDF rendering is tested
        # in tests/e2e/test_documents.py.
        env.setenv("KRISELOGG_SOFFICE", str(data / "no-soffice"))
        with portal.wrap_async_context_manager(running_stack(nats_url, data)) as stack:
            servers: list[_Server] = []
            urls: dict[str, str] = {}
            try:
                for name in SERVICES:
                    server, urls[name] = _serve(portal, stack.apps[name])
                    servers.append(server)
                server, urls["gateway"] = _serve(portal, Gateway(stack.apps))
                servers.append(server)
                result = Served(stack, portal, urls)
                result.known = _known_values(result, stack)
                yield result
            finally:
                for s in servers:
                    s.server.should_exit = True
                for s in servers:
                    s.done.result(timeout=15)


def _describe(exc: BaseException) -> str:
    """The failure as schemathesis words it (with the request as curl), and the notes on it."""
    if isinstance(exc, BaseExceptionGroup) and not isinstance(exc, FailureGroup):
        return "\n".join(_describe(e) for e in exc.exceptions)
    return "".join(traceback.format_exception_only(exc)).strip()


def _fuzz(
    strategy: SearchStrategy[Case],
    identities: tuple[str, ...],
    examples: int,
    served: Served,
    base_url: str,
    session: requests.Session,
) -> None:
    """Send `examples` cases drawn from `strategy`, each with a token of one of `identities`."""

    @settings(
        max_examples=examples,
        derandomize=True,  # the same cases on every run
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, who=st.sampled_from(identities))
    def run(case: Case, who: str) -> None:
        try:
            case.call_and_validate(
                base_url=base_url,
                session=session,
                headers=served.stack.auth(who),
                checks=CHECKS,
                timeout=20,
            )
        except BaseException as exc:
            exc.add_note(f"token: {who}")
            raise

    run()


def _targets(operation: Operation, known: dict[str, list[str]]) -> list[dict[str, str]]:
    """Path parameters to fix: none (all generated), then each combination of real values."""
    names = [p.name for p in operation.path_parameters]
    pools = [[(name, value) for value in known[name]] for name in names if known.get(name)]
    targets: list[dict[str, str]] = [{}]
    for combination in itertools.product(*pools) if pools else ():
        fixed = dict(combination)
        if "fmt" in names:
            fixed["fmt"] = "docx"  # no PDF converter in this stack: see the fixture
        targets.append(fixed)
    return targets


def _fuzz_schema(
    raw: dict[str, Any],
    where: str,
    served: Served,
    examples: tuple[int, int, int] = (GENERATED_EXAMPLES, KNOWN_EXAMPLES, NEGATIVE_EXAMPLES),
) -> list[str]:
    """Fuzz every operation of `raw` at `served.urls[where]`; the failures, named."""
    generated, known, negative = examples
    schema = schemathesis.openapi.from_dict(raw)
    base_url = served.urls[where]
    failures: list[str] = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                failures.append(f"--- {where}: an operation cannot be fuzzed: {result.err()}")
                continue
            operation = result.ok()
            runs: list[tuple[str, SearchStrategy[Case], tuple[str, ...], int]] = []
            for fixed in _targets(operation, served.known):
                strategy = operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed)
                count = known if fixed else generated
                path = f"real {fixed}" if fixed else "generated"
                for who in IDENTITIES:
                    runs.append((f"valid input, {path} path, as {who}", strategy, (who,), count))
            # Without parameters or a body (the probes) there is no invalid input to make.
            if any(True for _ in operation.iter_parameters()) or operation.body:
                strategy = operation.as_strategy(GenerationMode.NEGATIVE)
                runs.append(("invalid input", strategy, IDENTITIES, negative))
            for what, strategy, identities, count in runs:
                try:
                    _fuzz(strategy, identities, count, served, base_url, session)
                except (Exception, BaseExceptionGroup) as exc:
                    failures.append(f"--- {where}: {operation.label} ({what})\n{_describe(exc)}")
    return failures


@pytest.mark.parametrize("service", SERVICES)
def test_no_server_error_and_every_answer_fits_the_schema(service: str, served: Served) -> None:
    """Every operation of the service, each failure named by operation, input and token."""
    failures = _fuzz_schema(served.stack.apps[service].openapi(), service, served)
    assert not failures, f"{len(failures)} failure(s):\n\n" + "\n\n".join(failures)


def test_the_gateway_answers_as_its_merged_schema_says(served: Served) -> None:
    """The whole origin through the gateway, fuzzed against the schema it serves itself."""
    merged = requests.get(f"{served.urls['gateway']}/openapi.json", timeout=20).json()
    for service in SERVICES:
        for path in served.stack.apps[service].openapi()["paths"]:
            if path not in ("/healthz", "/readyz"):
                assert path in merged["paths"], f"{service}: {path} is not in the merged schema"
    failures = _fuzz_schema(merged, "gateway", served, GATEWAY_EXAMPLES)
    assert not failures, f"{len(failures)} failure(s):\n\n" + "\n\n".join(failures)
