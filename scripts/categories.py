"""Write shared/categories.yaml: every guidance sub-theme id with its kind, from the catalogue.

The services that decide who is told (notify) and who may read (the access rules) need each
category's kind, but must not import the content service. This generated file is their contract,
like docs/asyncapi.yaml; tests/content/test_categories.py fails when it is stale.

    .venv/bin/python scripts/categories.py          # rewrite it
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.content.store import load_catalogue  # noqa: E402
from shared.law import CATEGORIES_PATH  # noqa: E402

HEADER = (
    "# Generated from services/content/catalogue by scripts/categories.py: do not edit.\n"
    "# Each guidance sub-theme (an incident's category) with its kind: arbeidsmiljo events go to\n"
    "# the safety rep (aml § 6-2), personlig ones only to the nearest leader and HR.\n"
)


def render() -> str:
    catalogue = load_catalogue()
    body = {
        "categories": {
            sub.id: {"kind": sub.kind, "title": f"{theme.title}: {sub.title}", "theme": theme.id}
            for theme in catalogue.themes
            for sub in theme.subthemes
        }
    }
    return HEADER + yaml.safe_dump(body, allow_unicode=True, sort_keys=False, width=100)


if __name__ == "__main__":
    CATEGORIES_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {CATEGORIES_PATH.relative_to(ROOT)}")
