from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class ContentSettings(Settings):
    api_url: str | None = Field(
        default=None,
        description="With `serve content`: the origin the portal calls the API on (the proxy)",
    )
