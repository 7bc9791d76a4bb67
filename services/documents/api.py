"""HTTP API of documents: the log form of an incident as Word or PDF, and the final archive."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from services.documents.store import (
    MEDIA_TYPES,
    Archive,
    BrokenChain,
    ConversionFailed,
    ConverterMissing,
    IncidentUnavailable,
    LogForms,
    NotAllowed,
    NotFound,
)
from shared.auth import Principal
from shared.http import Problem
from shared.schemas import Actor


class ArchivedFile(BaseModel):
    filename: str = Field(
        description="The file's name (GET .../archive/{filename})",
        examples=["loggskjema-endelig-12.pdf"],
    )
    size: int = Field(description="Its size in bytes", examples=[37911])
    sha256: str = Field(
        description="SHA-256 of the file (hex), as in its DocumentIssued entry",
        examples=["c324d691f55402bfed1c1341694fd20ccae4388a6c126e173542a718f5af0e11"],
    )
    stored_at: str = Field(
        description="When it was archived (RFC 3339)", examples=["2026-03-09T14:02:11+00:00"]
    )


class Archived(BaseModel):
    """The final log forms of a closed incident, as archived when it was closed."""

    incident_id: str = Field(
        description="The incident", examples=["0b6f6a52-4a3e-4c9e-9f7e-2d1c1f0e8a11"]
    )
    files: list[ArchivedFile] = Field(description="Word and PDF, by name")


class Formats(BaseModel):
    """What the log form can be had as here and now."""

    formats: list[Literal["docx", "pdf"]] = Field(
        description="Word always (once incidents is connected); PDF only where LibreOffice is "
        "installed, so a client offers only what it can get",
        examples=[["docx", "pdf"]],
    )


def file_response(description: str) -> dict[str, Any]:
    """OpenAPI for an answer that is a Word or PDF file."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {"description": description, "content": {t: binary for t in MEDIA_TYPES.values()}}


def not_found(incident_id: UUID) -> Problem:
    return Problem(
        404, "Hendelsen finnes ikke", f"Ingen hendelse {incident_id} i virksomheten din."
    )


def build_router(
    forms: Callable[[], LogForms | None],
    archive: Archive,
    caller: Callable[..., Awaitable[Principal]],
) -> APIRouter:
    router = APIRouter(prefix="/api/v1/documents", tags=["documents"])
    Caller = Annotated[Principal, Depends(caller)]

    def connected(request: Request) -> tuple[LogForms, str]:
        """The issuer, and the caller's own token to read incidents with (its rules apply)."""
        issuer = forms()
        if issuer is None:
            raise Problem(
                503,
                "Hendelsestjenesten er ikke koblet til",
                "Dokumenttjenesten vet ikke hvor hendelsestjenesten er: sett "
                "KRISELOGG_INCIDENTS_URL.",
            )
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return issuer, token

    @router.get(
        "/formats",
        summary="The formats the log form can be issued in now",
        response_model=Formats,
    )
    def formats(_: Caller) -> Formats:
        issuer = forms()
        if issuer is None:
            return Formats(formats=[])
        return Formats(formats=["docx", "pdf"] if issuer.converter.available() else ["docx"])

    @router.get(
        "/incidents/{incident_id}/log.{fmt}",
        summary="The log form as Word or PDF, from the verified log",
        response_class=Response,
        responses={
            200: file_response("The log form"),
            409: {"description": "The chain does not verify; no document is issued"},
            503: {"description": "No PDF converter, or incidents unreachable"},
        },
    )
    async def log_form(
        incident_id: UUID,
        fmt: Literal["docx", "pdf"],
        who: Caller,
        request: Request,
        as_of: Annotated[
            datetime | None, Query(description="RFC 3339; the log as it stood then")
        ] = None,
    ) -> Response:
        """The log form, verified before rendering, and recorded as DocumentIssued."""
        if as_of is not None and as_of.tzinfo is None:
            raise Problem(
                422, "Ugyldig as_of", "Oppgi as_of med tidssone, f.eks. 2026-03-09T14:02:00Z."
            )
        issuer, token = connected(request)
        try:
            issued = await issuer.issue(
                org_id=who.org_id,
                incident_id=str(incident_id),
                token=token,
                fmt=fmt,
                as_of=as_of,
                issued_by=Actor(id=who.person_id, name=who.name),
            )
        except NotFound:
            raise not_found(incident_id) from None
        except NotAllowed as exc:
            raise Problem(403, "Ingen tilgang", str(exc)) from None
        except BrokenChain as exc:
            raise Problem(
                409,
                "Loggen er ikke gyldig",
                f"Ingen dokument ble utstedt; kontrollen sa: {exc.reason}.",
                first_invalid_seq=exc.first_invalid_seq,
            ) from None
        except ConverterMissing as exc:
            # `available_formats` tells a client (the portal) what it can offer instead.
            raise Problem(
                503, "PDF er ikke tilgjengelig", str(exc), available_formats=["docx"]
            ) from None
        except ConversionFailed as exc:
            raise Problem(
                503, "PDF-en kunne ikke lages", str(exc), available_formats=["docx"]
            ) from None
        except IncidentUnavailable as exc:
            raise Problem(
                503, "Hendelsestjenesten svarer ikke", f"Prøv igjen om litt ({exc})."
            ) from None
        fact = issued.fact
        return Response(
            issued.content,
            media_type=issued.media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{fact.filename}"',
                "X-Kriselogg-As-Of-Seq": str(fact.as_of_seq),
                "X-Kriselogg-Head-Hash": fact.head_hash,
                "X-Kriselogg-SHA256": fact.sha256,
            },
        )

    async def may_read(incident_id: UUID, request: Request) -> None:
        issuer, token = connected(request)
        try:
            await issuer.source.check_read(str(incident_id), token)
        except NotFound:
            raise not_found(incident_id) from None
        except NotAllowed as exc:
            raise Problem(403, "Ingen tilgang", str(exc)) from None
        except IncidentUnavailable as exc:
            raise Problem(
                503, "Hendelsestjenesten svarer ikke", f"Prøv igjen om litt ({exc})."
            ) from None

    @router.get(
        "/incidents/{incident_id}",
        summary="The archived final log forms of a closed incident",
        response_model=None,
        responses={200: {"model": Archived, "description": "The files"}},
    )
    async def archived(incident_id: UUID, who: Caller, request: Request) -> dict[str, Any]:
        """The final log forms kept when the incident was closed."""
        await may_read(incident_id, request)
        files = await asyncio.to_thread(archive.list, who.org_id, str(incident_id))
        if files is None:
            raise not_found(incident_id)
        return {"incident_id": str(incident_id), "files": files}

    @router.get(
        "/incidents/{incident_id}/archive/{filename}",
        summary="One archived file",
        response_class=Response,
        responses={200: file_response("The archived file")},
    )
    async def archived_file(
        incident_id: UUID, filename: str, who: Caller, request: Request
    ) -> Response:
        await may_read(incident_id, request)
        content = await asyncio.to_thread(archive.read, who.org_id, str(incident_id), filename)
        if content is None:
            raise not_found(incident_id)
        suffix = filename.rsplit(".", 1)[-1]
        return Response(
            content,
            media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"),
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    return router
