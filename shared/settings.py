"""All configuration: environment variables prefixed `KRISELOGG_` (DESIGN §3 and §8)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.subjects import Subjects


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KRISELOGG_", extra="ignore")

    data_dir: Path = Field(default=Path("kriselogg-data"), description="Where stores and keys live")
    nats_url: str | None = Field(default=None, description="Unset: start the embedded nats-server")
    event_store: Literal["sqlite", "postgres"] = "sqlite"
    postgres_dsn: str | None = None
    secret_key: str | None = Field(
        default=None, description="Token signing key; unset: a key file in the data dir"
    )
    escalation_seconds: int = Field(default=900, ge=1)
    timezone: str = "Europe/Oslo"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "kriselogg@localhost"
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL used in links sent to people"
    )
    bus_namespace: str = Field(
        default="kriselogg",
        pattern=r"^[a-z0-9-]{1,32}$",
        description="Subject root and stream name; lets installations share one NATS cluster",
    )
    jetstream_replicas: int = Field(default=1, ge=1, le=5)
    # The bus contracts are at-least-once; JetStream drops a duplicate Nats-Msg-Id only inside this
    # window, so it must cover the longest outage after which a relay resends (DESIGN §10).
    jetstream_duplicate_window_seconds: int = Field(default=24 * 3600, ge=1)
    max_deliver: int = Field(default=8, ge=1)
    log_level: str = "INFO"

    @property
    def subjects(self) -> Subjects:
        return Subjects(self.bus_namespace)

    def service_dir(self, service: str) -> Path:
        path = self.data_dir / service
        path.mkdir(parents=True, exist_ok=True)
        return path
