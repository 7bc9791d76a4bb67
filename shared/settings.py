"""All configuration: environment variables prefixed `KRISELOGG_`."""

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
    # Channels for alerts (notify). A person is reached on the channels they have, in order.
    smtp_host: str | None = Field(default=None, description="Unset: no e-mail channel")
    smtp_port: int = 25
    smtp_from: str = "kriselogg@localhost"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    sms_url: str | None = Field(
        default=None, description="SMS gateway endpoint (HTTP POST, JSON); unset: no SMS channel"
    )
    sms_user: str | None = None
    sms_password: str | None = None
    sms_inbound_secret: str | None = Field(
        default=None,
        description="HMAC key the SMS gateway (or its relay) signs replies with, for "
        "POST /api/v1/sms/inbound; unset: replies to alert SMS are not taken",
    )
    webhook_secret: str | None = Field(
        default=None, description="HMAC key for webhook signatures; unset: derived from the key"
    )
    delivery_timeout_seconds: float = Field(default=10.0, gt=0)
    # Wait before the 2nd, 3rd, ... attempt on a channel; after the last, the next channel.
    delivery_backoff_seconds: list[float] = Field(default=[2.0, 10.0, 30.0])
    ack_link_days: int = Field(default=7, ge=1, description="Validity of acknowledgement links")
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
    # window, so it must cover the longest outage after which a relay resends.
    jetstream_duplicate_window_seconds: int = Field(default=24 * 3600, ge=1)
    max_deliver: int = Field(default=8, ge=1)
    log_level: str = "INFO"
    trusted_proxies: list[str] = Field(
        default=[],
        description="Addresses or networks (CIDR) of the reverse proxies in front of kriselogg, "
        "whose X-Forwarded-For names the real client (for rate limits); none by default, so no "
        "client can claim another's address",
    )
    cors_origins: list[str] = Field(
        default=[], description="Other origins whose pages may call the API; none by default"
    )

    @property
    def subjects(self) -> Subjects:
        return Subjects(self.bus_namespace)

    def service_dir(self, service: str) -> Path:
        path = self.data_dir / service
        path.mkdir(parents=True, exist_ok=True)
        return path
