"""Where the catalogue comes from: the data files shipped inside this package."""

from __future__ import annotations

from importlib.resources import files

from services.content.domain import Menu, load_menu


def load_catalogue() -> Menu:
    return load_menu((files("services.content") / "catalogue" / "menu.yaml").read_text("utf-8"))
