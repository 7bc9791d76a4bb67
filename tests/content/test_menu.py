from __future__ import annotations

from services.content.store import load_catalogue
from tests.support import Stack


def test_menu_of_the_product_sheet_loads() -> None:
    menu = load_catalogue()
    titles = {t.title for t in menu.themes}
    assert {"Dødsfall", "Brann og redning", "Trusselsituasjoner", "Ulykke", "Sykdom"} <= titles
    assert all(t.subthemes for t in menu.themes)
    assert len(menu.version) == 16


async def test_themes_over_http_carry_the_content_version(stack: Stack) -> None:
    response = await stack.client.get("/api/v1/guidance/themes", headers=stack.auth())
    assert response.status_code == 200
    body = response.json()
    assert body["content_version"] == response.headers["Content-Version"]
    assert any(s["id"] == "vold-fysisk" for t in body["themes"] for s in t["subthemes"])
    unauthenticated = await stack.client.get("/api/v1/guidance/themes")
    assert unauthenticated.status_code == 401
