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
    log_name: str = Field(
        default="kriselogg.local",
        pattern=r"^[A-Za-z0-9.:/_-]{1,100}$",
        description="The log's name: the key name of its checkpoints, and with /<org> the origin",
    )
    log_signing_key: str | None = Field(
        default=None,
        description="Ed25519 seed (base64) signing checkpoints; unset: key files in the data dir",
    )
    log_checkpoint_seconds: float = Field(
        default=300.0, gt=0, description="A new checkpoint at least this often while the log grows"
    )
    tsa_url: str | None = Field(
        default=None, description="RFC 3161 time-stamp authority for checkpoints; unset: none"
    )
