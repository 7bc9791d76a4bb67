"""Issue 17, item 7: only values every verifier reads the same way get into the hashed log.

In lax parsing, 1, 1.0, "true" and "yes" all became `true` for a yes / no fact: the log then
said something the person never said. A number beyond ±(2^53 − 1) reads as another number in
JavaScript and many JSON libraries, so the event's canonical bytes (and hash) would differ there.
Both are refused with a 422 in Norwegian, and nothing is stored.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import REPORT, Stack

REFUSED: list[dict[str, Any]] = [
    {"injury": 1.0},
    {"injury": 1},
    {"injury": "true"},
    {"police_involved": "ja"},
    {"antall_involverte": 1.0},
    {"antall_involverte": 2**53},
    {"antall_involverte": -(2**53)},
]


@pytest.mark.parametrize("facts", REFUSED, ids=[str(f) for f in REFUSED])
async def test_a_value_that_is_not_what_it_seems_is_refused(
    stack: Stack, facts: dict[str, Any]
) -> None:
    before = (await stack.client.get("/api/v1/incidents", headers=stack.auth())).json()
    response = await stack.client.post(
        "/api/v1/incidents", json={**REPORT, "facts": facts}, headers=stack.auth("reporter")
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Ugyldig forespørsel"
    after = (await stack.client.get("/api/v1/incidents", headers=stack.auth())).json()
    assert after == before


async def test_true_false_null_and_safe_integers_are_kept_exactly(stack: Stack) -> None:
    facts = {"injury": True, "death": False, "serious_injury": None,
             "antall_involverte": 2**53 - 1}  # fmt: skip
    created = await stack.client.post(
        "/api/v1/incidents", json={**REPORT, "facts": facts}, headers=stack.auth("reporter")
    )
    assert created.status_code == 201, created.text
    export = await stack.client.get(
        f"/api/v1/incidents/{created.json()['id']}/export", headers=stack.auth()
    )
    first = export.content.splitlines()[0]
    assert b'"antall_involverte":9007199254740991' in first
    assert b'"injury":true' in first and b'"death":false' in first
