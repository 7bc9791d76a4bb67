"""HTTP API of the guidance catalogue.

Every answer carries the content version (body and `Content-Version` header), so an incident can
record exactly which guidance it followed. National content is resolved once at start-up; a
request only adds the caller's organisation's local additions.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.content.domain import Catalogue, LocalAddition, SearchIndex
from services.content.store import LocalStore
from shared.auth import Principal
from shared.http import Problem

log = logging.getLogger(__name__)


VERSION = "a52e2d54986c13a0"
VERSION_DOC = "The guidance version (also the Content-Version header); give it in the report"
ADDITION_ID = "3975a5f0-2142-4688-99e0-2589b4a75b4f"

# Local additions are modelled in services.content.domain; their fields are described here, for
# the OpenAPI document (shared.apidocs.describe_fields).
FIELD_DOCS: dict[str, dict[str, tuple[str, Any]]] = {
    "LocalAddition": {
        "kind": (
            "article (needs text), aid (needs tasks or text) or contact (needs contact)",
            "contact",
        ),
        "title": ("Its title (2-200 characters)", "Vakttelefonen vår"),
        "text": ("The text (at most 10 000 characters)", "Ring vakttelefonen døgnet rundt."),
        "tasks": (
            "Steps, in order (at most 30)",
            ["Ring vakttelefonen", "Skriv ned hva som skjedde"],
        ),
        "url": ("A link (https)", "https://intranett.example.org/rutiner/vold"),
        "contact": (
            "Who to call: needed for a contact",
            {"name": "Vakttelefonen", "phone": "+47 22 00 00 00"},
        ),
    },
    "Contact": {
        "name": ("Name or service (2-200 characters)", "Vakttelefonen"),
        "role": ("What they do (2-200 characters)", "Døgnbemannet vakt"),
        "phone": ("Phone number (digits, spaces, a leading +)", "+47 22 00 00 00"),
        "email": ("E-mail address", "vakt@example.org"),
    },
}


class Ref(BaseModel):
    id: str = Field(description="Its id", examples=["vold-fysisk"])
    title: str = Field(description="Its title", examples=["Fysisk vold mot ansatte"])


class ThemeRef(Ref):
    subthemes: list[Ref] = Field(description="Its sub-themes (GET .../subthemes/{id})")


class GroupRef(Ref):
    articles: list[Ref] = Field(description="Its articles (GET .../resources/{id})")


class Themes(BaseModel):
    """The national guidance: themes with their sub-themes, and the resource articles."""

    content_version: str = Field(description=VERSION_DOC, examples=[VERSION])
    themes: list[ThemeRef] = Field(description="Every theme")
    resources: list[GroupRef] = Field(description="Resource articles (first aid, plans), by group")


class RoleRef(Ref):
    contact: str | None = Field(
        default=None, description="How to reach them (external actors)", examples=["Ring 112"]
    )


class LawRef(Ref):
    """A provision of the shared legal registry (shared/law.yaml)."""

    id: str = Field(description="The provision's id in the legal registry", examples=["aml-5-2"])
    title: str = Field(description="As shown beside a measure", examples=["aml § 5-2"])
    citation: str = Field(
        description="The official citation, as a lawyer writes it",
        examples=["arbeidsmiljøloven § 5-2 første ledd første punktum"],
    )
    summary: str = Field(description="What it says, in short", examples=["Arbeidsgiveren skal…"])
    url: str = Field(
        description="Where to read it", examples=["https://lovdata.no/lov/2005-06-17-62/§3-1"]
    )


class Support(BaseModel):
    internal: list[RoleRef] = Field(description="Who helps from inside the organisation")
    external: list[RoleRef] = Field(description="Who helps from outside")


class AidRef(BaseModel):
    number: int = Field(description="The aid's number in the sub-theme", examples=[5])
    title: str = Field(description="Its title", examples=["Risikovurdering av vold og trusler"])


class MeasureView(BaseModel):
    id: str = Field(
        description="The measure's id (measure_id when it is logged)", examples=["risikovurdering"]
    )
    priority: int = Field(description="Its order in the phase, 1 first", examples=[1])
    title: str = Field(description="What to do", examples=["Kartlegg og risikovurder faren"])
    responsible: RoleRef = Field(description="Who does it")
    support: Support = Field(description="Who helps")
    tasks: list[str] = Field(
        description="Steps, in order", examples=[["Kartlegg sammen med de ansatte"]]
    )
    aids: list[AidRef] = Field(description="The sub-theme's aids for it")
    law: list[LawRef] = Field(description="The law behind it")
    resources: list[Ref] = Field(description="Resource articles for it")


class PhaseView(BaseModel):
    id: str = Field(description="forebyggende, akutt or oppfolging", examples=["akutt"])
    title: str = Field(description="The phase in words", examples=["Akuttfasen"])
    measures: list[MeasureView] = Field(description="Its measures, by priority")


class LinkView(BaseModel):
    title: str = Field(description="What it links to", examples=["Helsenorge"])
    url: str = Field(description="Where (https)", examples=["https://www.helsenorge.no"])


class AidView(AidRef):
    responsible: RoleRef = Field(description="Who uses it")
    purpose: str = Field(description="What it is for", examples=["Å gi den som er rammet trygghet"])
    tasks: list[str] = Field(description="Steps, in order", examples=[["Bli hos den rammede"]])
    law: list[LawRef] = Field(description="The law behind it")
    resources: list[Ref] = Field(description="Resource articles for it")
    links: list[LinkView] = Field(description="Links elsewhere")


class LocalRow(BaseModel):
    """An organisation's own addition to a sub-theme (LocalAddition, as stored)."""

    id: str = Field(description="Its id (DELETE .../local/{id})", examples=[ADDITION_ID])
    subtheme_id: str = Field(description="The sub-theme", examples=["vold-fysisk"])
    kind: str = Field(description="article, aid or contact", examples=["contact"])
    title: str = Field(description="Its title", examples=["Vakttelefonen vår"])
    text: str | None = Field(default=None, description="Its text", examples=["Ring vakttelefonen."])
    tasks: list[str] | None = Field(
        default=None, description="Steps", examples=[["Ring vakttelefonen"]]
    )
    url: str | None = Field(
        default=None, description="A link", examples=["https://intranett.example.org"]
    )
    contact: dict[str, Any] | None = Field(
        default=None,
        description="Who to call (Contact)",
        examples=[{"name": "Vakt", "phone": "+47 22 00 00 00"}],
    )
    created_by: str = Field(description="Person id of the admin who added it", examples=["p-admin"])
    created_at: str = Field(description="When (RFC 3339)", examples=["2026-03-01T12:00:00+00:00"])


class SubthemeView(BaseModel):
    """A sub-theme: its phases with prioritised measures, its aids, and local additions."""

    content_version: str = Field(description=VERSION_DOC, examples=[VERSION])
    id: str = Field(
        description="The sub-theme's id (category in a report)", examples=["vold-fysisk"]
    )
    title: str = Field(description="Its title", examples=["Fysisk vold mot ansatte"])
    theme: Ref = Field(description="The theme it belongs to")
    summary: str = Field(description="What situation it is for", examples=["En ansatt er slått"])
    phases: list[PhaseView] = Field(description="Before, during and after, in order")
    aids: list[AidView] = Field(description="Its aids (checklists), by number")
    local: list[LocalRow] = Field(description="The caller's organisation's own additions")


class SectionView(BaseModel):
    title: str = Field(description="The section's title", examples=["Sikre, varsle, hjelpe"])
    text: str | None = Field(description="Its text", examples=["De tre grunnreglene gjelder."])
    steps: list[str] = Field(description="Steps, in order", examples=[["Sikre deg selv og andre."]])


class ArticleView(BaseModel):
    """A resource article."""

    content_version: str = Field(description=VERSION_DOC, examples=[VERSION])
    id: str = Field(description="The article's id", examples=["forstehjelp-sykdom-ulykker"])
    title: str = Field(description="Its title", examples=["Førstehjelp ved sykdom og ulykker"])
    summary: str = Field(
        description="What it is about", examples=["Hva du gjør de første minuttene"]
    )
    keywords: list[str] = Field(description="Words it is found by", examples=[["førstehjelp"]])
    sections: list[SectionView] = Field(description="Its sections, in order")
    law: list[LawRef] = Field(description="The law behind it")
    links: list[LinkView] = Field(description="Links elsewhere")
    group: Ref = Field(description="Its resource group")


class SearchHit(BaseModel):
    id: str = Field(
        description="The sub-theme, article or measure", examples=["politiet-varsler-familien"]
    )
    title: str = Field(description="Its title", examples=["La politiet varsle familien"])
    score: float = Field(description="How well it matches; higher is better", examples=[10.9])
    subtheme: str | None = Field(
        default=None, description="Measures: their sub-theme", examples=["dodsfall-drap"]
    )
    phase: str | None = Field(default=None, description="Measures: their phase", examples=["akutt"])


class SearchResult(BaseModel):
    """Sub-themes, articles and measures in which every search word is found, best first."""

    content_version: str = Field(description=VERSION_DOC, examples=[VERSION])
    query: str = Field(description="The words searched for", examples=["politi"])
    subthemes: list[SearchHit] = Field(description="Matching sub-themes")
    articles: list[SearchHit] = Field(description="Matching resource articles")
    measures: list[SearchHit] = Field(description="Matching measures")


def not_found(kind: str, item_id: str) -> Problem:
    return Problem(404, "Finnes ikke", f"{kind} {item_id} finnes ikke i veiledningen.")


def build_router(
    catalogue: Catalogue,
    index: SearchIndex,
    local: LocalStore,
    caller: Callable[..., Awaitable[Principal]],
) -> APIRouter:
    router = APIRouter(prefix="/api/v1/guidance", tags=["guidance"])
    Caller = Annotated[Principal, Depends(caller)]
    version = catalogue.version
    headers = {"Content-Version": version}
    # Resolved once: the national content never changes while the service runs.
    tree = {"content_version": version, **catalogue.tree()}
    subthemes = {sid: catalogue.subtheme_view(sid) for sid in catalogue.subthemes}
    articles = {aid: catalogue.article_view(aid) for aid in catalogue.articles}

    def answer(body: dict[str, Any], status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=headers)

    @router.get(
        "/themes", summary="Themes with their sub-themes, and the resources", response_model=Themes
    )
    def themes(_: Caller) -> JSONResponse:
        return answer(tree)

    @router.get(
        "/subthemes/{subtheme_id}",
        summary="Phases with prioritised measures and aids",
        response_model=SubthemeView,
    )
    async def subtheme(subtheme_id: str, who: Caller) -> JSONResponse:
        view = subthemes.get(subtheme_id)
        if view is None:
            raise not_found("Deltemaet", subtheme_id)
        additions = await asyncio.to_thread(local.for_subtheme, who.org_id, subtheme_id)
        return answer({"content_version": version, **view, "local": additions})

    @router.get(
        "/resources/{article_id}",
        summary="A resource article (first aid, plans, ...)",
        response_model=ArticleView,
    )
    def resource(article_id: str, _: Caller) -> JSONResponse:
        view = articles.get(article_id)
        if view is None:
            raise not_found("Ressursen", article_id)
        return answer({"content_version": version, **view})

    @router.get(
        "/search",
        summary="Sub-themes, measures and articles matching the words",
        response_model=SearchResult,
    )
    def search(
        _: Caller,
        q: Annotated[str, Query(min_length=1, max_length=200, description="Search words")],
        limit: Annotated[int, Query(ge=1, le=50)] = 20,
    ) -> JSONResponse:
        groups: dict[str, list[dict[str, Any]]] = {"subthemes": [], "articles": [], "measures": []}
        for hit in index.search(q, limit):
            item = {k: v for k, v in hit.__dict__.items() if v is not None and k != "kind"}
            groups[f"{hit.kind}s"].append(item)
        return answer({"content_version": version, "query": q, **groups})

    @router.post(
        "/subthemes/{subtheme_id}/local",
        status_code=201,
        summary="Add the organisation's own article, aid or contact to a sub-theme (admin)",
        response_model=LocalRow,
    )
    async def add_local(subtheme_id: str, addition: LocalAddition, who: Caller) -> JSONResponse:
        if not who.has_any("admin"):
            raise Problem(403, "Ingen tilgang", "Bare administrator kan legge til lokalt innhold.")
        if subtheme_id not in subthemes:
            raise not_found("Deltemaet", subtheme_id)
        row = await asyncio.to_thread(
            local.add,
            who.org_id,
            subtheme_id,
            addition.kind,
            addition.model_dump(exclude_none=True, exclude={"kind"}),
            who.person_id,
        )
        return answer(row, status=201)

    @router.delete(
        "/local/{addition_id}", status_code=204, summary="Remove a local addition (admin)"
    )
    async def delete_local(addition_id: str, who: Caller) -> Response:
        if not who.has_any("admin"):
            raise Problem(403, "Ingen tilgang", "Bare administrator kan fjerne lokalt innhold.")
        if not await asyncio.to_thread(local.delete, who.org_id, addition_id):
            raise not_found("Det lokale innholdet", addition_id)
        return Response(status_code=204, headers=headers)

    return router
