from __future__ import annotations

from shared.settings import Settings


class ContentSettings(Settings):
    pass
