from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class DocumentSettings(Settings):
    incidents_url: str | None = Field(
        default=None,
        description="Base URL of the incidents service (`serve`); `up` connects them in process",
    )
    soffice: str = Field(default="soffice", description="LibreOffice's command, for PDF")
    pdf_timeout_seconds: float = Field(default=60.0, gt=0)
    pdf_workers: int = Field(default=2, ge=1, le=16, description="Parallel PDF conversions")
