#!/usr/bin/env python3
"""Write docs/asyncapi.yaml, the bus contract, from the services' own FastStream brokers.

Usage: .venv/bin/python scripts/asyncapi.py           write the file
       .venv/bin/python scripts/asyncapi.py --check   exit 1 when the file is stale

Each service is built as `kriselogg serve` builds it (nothing connects to NATS), and FastStream
describes the subscribers that service registered: subjects, queue groups, consumers. The
services publish through `shared.bus.publish` rather than FastStream publishers, and their
consumers read raw messages, so this script adds what FastStream cannot see: which contract
(shared/schemas.py) travels on which subject (`CONTRACTS`), and what each service publishes
(`PUBLISHES`). A subscriber on a subject that `CONTRACTS` does not know stops the script, so
a new consumer cannot go undocumented. tests/test_asyncapi.py fails while the file is stale.

The document is the same on every machine: the default bus namespace "kriselogg", keys sorted,
no paths, no times.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "asyncapi.yaml"
NAMESPACE = "kriselogg"
SERVER = "nats://localhost:4222"
SERVICES = ("content", "incidents", "documents", "notify")
PARAMETERS = {
    "org_id": "The organisation's id",
    "type": "The event's or fact's type (its contract's `type`)",
    "kind": "`invalid` (dead-lettered at once) or `exhausted` (after the last redelivery)",
}
HEADERS = {
    "type": "object",
    "required": ["Nats-Msg-Id", "Kriselogg-Schema"],
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "description": "Unique per message; JetStream drops a duplicate within its window",
            "examples": ["0b6f6a52-4a3e-4c9e-9f7e-2d1c1f0e8a11:1"],
        },
        "Kriselogg-Org": {
            "type": "string",
            "description": "The organisation (also the subject's second token)",
            "examples": ["demo"],
        },
        "Kriselogg-Schema": {
            "type": "string",
            "description": "The contract's name and version: a new field comes with a default, "
            "anything else is a new version",
            "examples": ["IncidentEvent/v1"],
        },
    },
}


def _contracts() -> dict[str, Any]:
    """The contract that travels under each source token of `<root>.<org>.<source>.<name>`."""
    from shared.schemas import AlertFactV1, DeadlineFactV1, DocumentFactV1, IncidentEventV1

    return {
        "incident": IncidentEventV1,
        "alert": AlertFactV1,
        "deadline": DeadlineFactV1,
        "document": DocumentFactV1,
    }


def _publishes(root: str, dead_letters: str) -> dict[str, list[tuple[str, Any, str, str]]]:
    """service -> (title, contract, subject, description) of what it publishes."""
    from shared.schemas import (
        AlertFactV1,
        AnchorQueryV1,
        DeadLetterV1,
        DeadlineFactV1,
        DirectoryTreeV1,
        DocumentFactV1,
        IncidentEventV1,
    )

    org = "{org_id}"

    def dead_letter(service: str) -> tuple[str, Any, str, str]:
        return (
            f"{service}-dead-letters",
            DeadLetterV1,
            f"{dead_letters}.{service}.{{kind}}",
            f"A message {service} could not process: `invalid` at once, `exhausted` after its "
            "last redelivery. Kept in its own stream for an operator; never dropped.",
        )

    return {
        "incidents": [
            (
                "incident-events",
                IncidentEventV1,
                f"{root}.{org}.incident.{{type}}",
                "Every stored incident event, in log order per incident, relayed from the "
                "event store's outbox once committed (at least once; Nats-Msg-Id "
                "`<incident_id>:<seq>`).",
            ),
            (
                "anchor-query",
                AnchorQueryV1,
                f"{root}-rpc.{org}.AnchorQuery",
                "Request-reply, outside the stream: asks documents for the latest head it saw "
                "of an incident, to check the log's length on verify. The reply is an AnchorV1 "
                "(components/schemas).",
            ),
            dead_letter("incidents"),
        ],
        "notify": [
            (
                "alert-facts",
                AlertFactV1,
                f"{root}.{org}.alert.{{type}}",
                "RecipientAlerted, AlertAcknowledged and AlertEscalated, from notify's outbox; "
                "incidents appends each to the incident's log.",
            ),
            (
                "deadline-facts",
                DeadlineFactV1,
                f"{root}.{org}.deadline.DeadlineSet",
                "A duty with its deadline, law or routine, computed from the report; incidents "
                "appends DeadlineSet.",
            ),
            (
                "directory-trees",
                DirectoryTreeV1,
                f"$KV.{root}-directory.{org}",
                "The organisation's units and who answers for them, one key per organisation "
                f"in the JetStream key-value bucket `{root}-directory` (latest value only). "
                "incidents watches the bucket for its access rules.",
            ),
            dead_letter("notify"),
        ],
        "documents": [
            (
                "document-facts",
                DocumentFactV1,
                f"{root}.{org}.document.DocumentIssued",
                "A log form was issued (downloaded, or archived as final at the close); "
                "published before the file is handed out; incidents appends DocumentIssued.",
            ),
            dead_letter("documents"),
        ],
    }


@contextlib.contextmanager
def _clean_environment() -> Iterator[None]:
    """No KRISELOGG_* setting of this machine may change the document."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("KRISELOGG_")}
    for key in saved:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(saved)


def _brokers(data_dir: Path) -> dict[str, Any]:
    """Each service's broker as its create_app builds it (constructed, never connected)."""
    from services.cli import build_app
    from shared import bus
    from shared.settings import Settings

    settings = Settings(
        data_dir=data_dir,
        nats_url=SERVER,
        bus_namespace=NAMESPACE,
        event_store="sqlite",
        secret_key="asyncapi-" + "k" * 40,
    )
    made: dict[str, Any] = {}
    original = bus.make_broker

    def recording(settings: Settings, name: str) -> Any:
        made[name] = original(settings, name)
        return made[name]

    bus.make_broker = recording
    try:
        for name in SERVICES:
            build_app(name, settings)
    finally:
        bus.make_broker = original
    subjects = settings.subjects
    for name, publishers in _publishes(subjects.root, subjects.dead_letter_root).items():
        for title, contract, subject, description in publishers:
            made[name].publisher(subject, schema=contract, title=title, description=description)
    return made


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(
        quote(p.replace("~", "~0").replace("/", "~1"), safe="~:._-") for p in parts
    )


def _decode(part: str) -> str:
    return unquote(part).replace("~1", "/").replace("~0", "~")


def _prefix_refs(node: Any, prefix: str) -> Any:
    """Refs to channels, operations and messages of one service's document, prefixed."""
    if isinstance(node, list):
        return [_prefix_refs(item, prefix) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            parts = [_decode(p) for p in value.removeprefix("#/").split("/")]
            if parts[0] in ("channels", "operations"):
                parts[1] = prefix + parts[1]
            elif parts[:2] == ["components", "messages"]:
                parts[2] = prefix + parts[2]
            out[key] = _pointer(*parts)
        else:
            out[key] = _prefix_refs(value, prefix)
    return out


def _consumer(subscriber: Any) -> str:
    """How a subscriber consumes, in words: its JetStream consumer or its queue group."""
    config: Any = getattr(subscriber, "config", None)
    durable = getattr(config, "durable_name", None)
    if durable:
        return (
            f"Durable pull consumer `{durable}` on stream `{subscriber.stream.name}`, explicit "
            f"ack, at most {config.max_ack_pending} unacknowledged at a time. A message not "
            f"acknowledged within {config.ack_wait:g} s is redelivered; a failed one is retried "
            f"after growing delays and dead-lettered after {config.max_deliver - 1} attempts."
        )
    return f"Core NATS subscription, queue group `{subscriber.queue}`; answers each request."


def render() -> str:
    """The whole bus contract as YAML."""
    import yaml
    from faststream.specification.asyncapi import AsyncAPI

    from shared.schemas import AnchorV1

    contracts = _contracts()
    with _clean_environment(), tempfile.TemporaryDirectory(prefix="kriselogg-asyncapi-") as tmp:
        brokers = _brokers(Path(tmp))
        documents = {
            name: AsyncAPI(broker, title=f"kriselogg {name}", version="1")
            .to_specification()
            .to_jsonable()
            for name, broker in sorted(brokers.items())
        }
        consumers = {
            name: {s.specification.name: _consumer(s) for s in broker.subscribers}
            for name, broker in brokers.items()
        }
    merged: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "kriselogg bus",
            "version": "1",
            "description": "The messages between kriselogg's services on NATS JetStream. "
            f"Subjects are `{NAMESPACE}.<org_id>.<source>.<EventName>` in the stream "
            f"`{NAMESPACE.upper()}`; the root is the installation's bus namespace "
            "(KRISELOGG_BUS_NAMESPACE, default `kriselogg`). Every message carries its "
            "contract in the `Kriselogg-Schema` header. Generated by scripts/asyncapi.py from "
            "the services' FastStream brokers; do not edit by hand.",
        },
        "defaultContentType": "application/json",
        "servers": {},
        "channels": {},
        "operations": {},
        "components": {"messages": {}, "schemas": {}},
    }
    schemas = merged["components"]["schemas"]
    schemas["KriseloggHeaders"] = HEADERS
    for contract in [*contracts.values(), AnchorV1]:  # AnchorV1: the reply to AnchorQuery
        schema = contract.model_json_schema(ref_template="#/components/schemas/{model}")
        for key, value in schema.pop("$defs", {}).items():
            schemas[key] = value
        schemas[contract.__name__] = schema
    for service, document in documents.items():
        prefix = f"{service}:"
        document = _prefix_refs(copy.deepcopy(document), prefix)
        for key, server in document.get("servers", {}).items():
            server["description"] = (
                "The installation's NATS (KRISELOGG_NATS_URL); `kriselogg up` starts an "
                "embedded one"
            )
            merged["servers"][key] = server
        for key, channel in document.get("channels", {}).items():
            merged["channels"][prefix + key] = channel
        for key, operation in document.get("operations", {}).items():
            operation["tags"] = [{"name": service}]
            channel_key = key.removesuffix("Subscribe")
            if operation["action"] == "receive" and channel_key in consumers[service]:
                operation["description"] = (
                    f"Consumed by {service}. {consumers[service][channel_key]}"
                )
            else:
                operation["description"] = f"Published by {service}."
            merged["operations"][prefix + key] = operation
        for key, message in document.get("components", {}).get("messages", {}).items():
            message.pop("correlationId", None)  # the services correlate by Nats-Msg-Id
            message["title"] = prefix + message["title"]
            merged["components"]["messages"][prefix + key] = message
        for key, schema in document.get("components", {}).get("schemas", {}).items():
            if key != "EmptyPayload":
                schemas.setdefault(key, schema)
    # Consumers that read raw messages: the payload is the contract of the subject's source.
    for key, channel in merged["channels"].items():
        for ref in channel["messages"].values():
            message_key = _decode(ref["$ref"].rsplit("/", 1)[1])
            message = merged["components"]["messages"][message_key]
            if message["payload"] == {"$ref": "#/components/schemas/EmptyPayload"}:
                tokens = channel["address"].split(".")
                contract = contracts.get(tokens[2]) if len(tokens) > 3 else None
                if tokens[0] != NAMESPACE or contract is None:
                    raise SystemExit(
                        f"asyncapi: no contract known for {key} ({channel['address']}); "
                        "add its source to _contracts() in scripts/asyncapi.py"
                    )
                message["payload"] = {"$ref": f"#/components/schemas/{contract.__name__}"}
            if not channel["address"].startswith((f"{NAMESPACE}-rpc.", "$KV.")):
                message["headers"] = {"$ref": "#/components/schemas/KriseloggHeaders"}
        parameters = {
            name: {"description": text}
            for name, text in PARAMETERS.items()
            if "{" + name + "}" in channel["address"]
        }
        if parameters:
            channel["parameters"] = parameters
    return yaml.safe_dump(merged, sort_keys=True, allow_unicode=True, width=100)


def check() -> str | None:
    """None when docs/asyncapi.yaml is current, else what to do about it."""
    current = OUTPUT.read_text("utf-8") if OUTPUT.exists() else ""
    if current == render():
        return None
    return (
        f"{OUTPUT.relative_to(ROOT)} is stale: the bus contract changed. "
        "Run `.venv/bin/python scripts/asyncapi.py` and commit the file."
    )


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        problem = check()
        if problem:
            print(problem, file=sys.stderr)
            return 1
        print(f"{OUTPUT.relative_to(ROOT)} is current")
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    OUTPUT.write_text(render(), "utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
