"""Every incident test runs on SQLite and on PostgreSQL (issue 3, acceptance 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.incidents.settings import IncidentSettings
from services.incidents.store import IncidentLog
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


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> IncidentSettings:
    """The incident store's settings alone, for tests of the store without the services."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        return IncidentSettings(data_dir=tmp_path, event_store="postgres", postgres_dsn=dsn)
    return IncidentSettings(data_dir=tmp_path)


@pytest.fixture
def store(settings: IncidentSettings) -> Iterator[IncidentLog]:
    log = IncidentLog(settings)
    yield log
    log.close()
