"""The catalogue's shape, validated on load. Pure: the loader gets text, not paths."""

from __future__ import annotations

from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, StringConstraints

from shared.canonical import canonical_json, sha256_hex

Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,80}$")]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubthemeRef(Strict):
    id: Id
    title: Title


class Theme(Strict):
    id: Id
    title: Title
    subthemes: list[SubthemeRef]


class Menu(Strict):
    themes: list[Theme]

    @property
    def version(self) -> str:
        """A hash of the catalogue, so an incident can record which guidance it followed."""
        return sha256_hex(canonical_json(self.model_dump()))[:16]


def load_menu(text: str) -> Menu:
    menu = Menu.model_validate(yaml.safe_load(text))
    ids = [s.id for t in menu.themes for s in t.subthemes] + [t.id for t in menu.themes]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate ids in the catalogue: {', '.join(duplicates)}")
    return menu
