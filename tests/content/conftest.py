from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.cli import build_app
from services.content.domain import Catalogue
from services.content.store import load_catalogue
from shared.settings import Settings
from tests.support import demo_tokens


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


class ContentClient:
    def __init__(self, client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    def auth(self, who: str = "leader") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
async def content(tmp_path: Path) -> AsyncIterator[ContentClient]:
    """The content service alone, over HTTP in process: it needs no bus."""
    settings = Settings(data_dir=tmp_path)
    app = build_app("content", settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://content") as client:
            yield ContentClient(client, demo_tokens(settings))
