"""Every incident API test runs on SQLite and on PostgreSQL (issue 3, acceptance 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Stack, running_stack


@pytest.fixture(params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest, nats_url: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    extra: dict[str, Any] = {}
    if request.param == "postgres":
        extra = {"event_store": "postgres", "postgres_dsn": request.getfixturevalue("postgres_dsn")}
    async with running_stack(nats_url, tmp_path, **extra) as s:
        yield s
