from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class IncidentSettings(Settings):
    event_key: str | None = Field(
        default=None,
        description="AES key (base64) for events at rest; unset: a key file in the data dir",
    )
    encrypt_events: bool = True
    snapshot_interval: int = Field(default=1000, ge=1)
    aggregate_cache_size: int = Field(default=1000, ge=0)
