"""The composition root: `kriselogg up | serve | token | verify | directory import`."""

from __future__ import annotations

import json
import logging
import signal
from datetime import timedelta
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
import yaml
from fastapi import FastAPI

from shared.auth import issue_token, signing_key
from shared.canonical import verify_chain
from shared.infra import EmbeddedNats
from shared.settings import Settings

SERVICES = ("content", "incidents", "documents", "notify")
cli = typer.Typer(
    help="kriselogg: crisis guidance and an audit-proof incident log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
directory_cli = typer.Typer(help="The organisation directory.", no_args_is_help=True)
cli.add_typer(directory_cli, name="directory")
catalogue_cli = typer.Typer(help="The guidance catalogue.", no_args_is_help=True)
cli.add_typer(catalogue_cli, name="catalogue")

DEMO_LOGINS = (
    ("p-ln", "Lise Nord", ["leader"], "leader of Hjemmetjenesten nord"),
    ("p-ansatt", "Ali Ansatt", ["reporter"], "employee who reports"),
    ("p-vo", "Vera Verneombud", ["safety_rep"], "safety representative"),
    ("p-admin", "Astrid Admin", ["admin"], "administrator"),
)


def build_app(name: str, settings: Settings) -> FastAPI:
    """Each service is built from its own settings class, read from the same environment."""
    values = settings.model_dump()
    if name == "content":
        from services.content.app import create_app as content_app
        from services.content.settings import ContentSettings

        return content_app(ContentSettings(**values))
    if name == "incidents":
        from services.incidents.app import create_app as incidents_app
        from services.incidents.settings import IncidentSettings

        return incidents_app(IncidentSettings(**values))
    if name == "documents":
        from services.documents.app import create_app as documents_app
        from services.documents.settings import DocumentSettings

        return documents_app(DocumentSettings(**values))
    if name == "notify":
        from services.notify.app import create_app as notify_app
        from services.notify.settings import NotifySettings

        return notify_app(NotifySettings(**values))
    raise typer.BadParameter(f"unknown service {name!r}; choose one of {', '.join(SERVICES)}")


def connect_in_process(apps: dict[str, FastAPI]) -> None:
    """One process, one origin: documents reads incidents through ASGI, not over the network,
    and the portal (content) calls the whole API through the gateway in process."""
    import httpx

    from services.gateway import Gateway

    if "documents" in apps and "incidents" in apps:
        apps["documents"].state.incidents_transport = httpx.ASGITransport(app=apps["incidents"])
    if "content" in apps:
        apps["content"].state.api_transport = httpx.ASGITransport(app=Gateway(apps))


def demo_directory() -> dict[str, Any]:
    loaded = yaml.safe_load((files("services") / "demo_directory.yaml").read_text("utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def seed_demo(notify: FastAPI) -> None:
    from services.notify.domain import Directory

    directory = Directory.model_validate(demo_directory())
    problems = directory.problems()
    if problems:
        raise RuntimeError(f"demo directory is invalid: {problems}")
    notify.state.store.put_directory(directory)


class ReadyServer(uvicorn.Server):
    """uvicorn that says so on stdout once it listens and every lifespan has started.

    Scripts, supervisors and the tests wait for this line instead of polling the port.
    """

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"{READY_LINE} http://{self.config.host}:{self.config.port}", flush=True)


READY_LINE = "kriselogg: ready on"


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # FastStream logs every consumed message at INFO: noise on the hot path (DESIGN §10).
    logging.getLogger("faststream").setLevel(logging.WARNING)


@cli.command()
def up(
    data: Annotated[Path, typer.Option(help="Data directory")] = Path("kriselogg-data"),
    port: Annotated[int, typer.Option(help="Port of the one origin")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    no_demo: Annotated[bool, typer.Option("--no-demo", help="Do not seed the demo org")] = False,
) -> None:
    """Start NATS, the four services and the portal on one origin (embedded mode)."""
    from services.gateway import Gateway

    settings = Settings(data_dir=data.resolve())
    _configure_logging(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    nats: EmbeddedNats | None = None
    if not settings.nats_url:
        nats = EmbeddedNats(store_dir=settings.data_dir / "nats").start()
        settings = settings.model_copy(update={"nats_url": nats.url})
    try:
        apps = {name: build_app(name, settings) for name in SERVICES}
        connect_in_process(apps)
        if not no_demo:
            seed_demo(apps["notify"])
            apps["content"].state.dev_people = [
                {"person_id": p, "name": n, "roles": r, "what": w, "org_id": "demo"}
                for p, n, r, w in DEMO_LOGINS
            ]
        url = f"http://{host}:{port}"
        typer.echo(f"kriselogg is starting on {url}  (Ctrl-C stops everything)")
        typer.echo(f"  data: {settings.data_dir}   bus: {settings.nats_url}")
        if not no_demo:
            key = signing_key(settings)
            typer.echo(
                "  Demo logins (organisation 'demo'); use as 'Authorization: Bearer <token>':"
            )
            for person, name, roles, what in DEMO_LOGINS:
                token = issue_token(key, org_id="demo", person_id=person, name=name, roles=roles)
                typer.echo(f"   {name} ({what}):\n     {token}")
        config = uvicorn.Config(
            Gateway(apps),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
        server = ReadyServer(config)
        # uvicorn re-raises the stop signal after its graceful shutdown; with the default
        # handler SIGTERM would kill us before `finally` stops nats-server. Stopping is done.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        server.run()
        if not server.started:
            raise typer.Exit(1)
    finally:
        if nats is not None:
            nats.stop()


@cli.command()
def serve(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}")],
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    host: Annotated[str, typer.Option(help="Interface")] = "127.0.0.1",
) -> None:
    """Run one service alone (production; configuration from KRISELOGG_* variables)."""
    if service not in SERVICES:
        raise typer.BadParameter(
            f"unknown service {service!r}; choose one of {', '.join(SERVICES)}"
        )
    settings = Settings()
    _configure_logging(settings.log_level)
    if service != "content" and not settings.nats_url:
        typer.echo("KRISELOGG_NATS_URL must point at the NATS server.", err=True)
        raise typer.Exit(2)
    app = build_app(service, settings)
    ReadyServer(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    ).run()


@cli.command()
def token(
    org: Annotated[str, typer.Option(help="Organisation id")],
    person: Annotated[str, typer.Option(help="Person id (the token's subject)")],
    roles: Annotated[str, typer.Option(help="Comma-separated roles")] = "reporter",
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    hours: Annotated[int, typer.Option(help="Lifetime in hours")] = 12,
) -> None:
    """Print a bearer token signed with the instance key (development and scripts)."""
    settings = Settings()
    role_list = [r.strip() for r in roles.split(",") if r.strip()]
    try:
        typer.echo(
            issue_token(
                signing_key(settings),
                org_id=org,
                person_id=person,
                name=name or person,
                roles=role_list,
                ttl=timedelta(hours=hours),
            )
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@cli.command()
def verify(file: Annotated[Path, typer.Argument(help="Exported incident (JSON Lines)")]) -> None:
    """Verify an exported incident: exit 0 if intact, 1 with the first bad seq if not."""
    events: list[dict[str, Any]] = []
    for number, line in enumerate(file.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            typer.echo(f"INVALID: line {number} is not JSON")
            raise typer.Exit(1) from None
    report = verify_chain(events)
    if report.valid:
        typer.echo(f"VALID: {report.length} events, head {report.head_hash}")
        return
    typer.echo(f"INVALID: first bad seq {report.first_invalid_seq}: {report.reason}")
    raise typer.Exit(1)


@directory_cli.command("import")
def directory_import(
    file: Annotated[Path, typer.Argument(help="Directory file (YAML or JSON)")],
    org: Annotated[str, typer.Option(help="Organisation id")],
    url: Annotated[str, typer.Option(help="Base URL of kriselogg")] = "http://127.0.0.1:8000",
) -> None:
    """Load an organisation directory into a running kriselogg."""
    import httpx

    body = yaml.safe_load(file.read_text("utf-8"))
    key = signing_key(Settings())
    admin = issue_token(key, org_id=org, person_id="cli", name="kriselogg CLI", roles=["admin"])
    response = httpx.put(
        f"{url}/api/v1/directory",
        json=body,
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    if response.status_code != 200:
        problem = response.json()
        typer.echo(f"{problem.get('title')}: {problem.get('detail')}", err=True)
        for item in problem.get("problems", []):
            typer.echo(f"  - {item}", err=True)
        raise typer.Exit(1)
    typer.echo(f"imported: {response.json()}")


@catalogue_cli.command("check")
def catalogue_check(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Catalogue directory (default: the one shipped)"),
    ] = None,
) -> None:
    """Validate the catalogue files; print every problem with its file and line."""
    from services.content.domain import CatalogueError
    from services.content.store import load_catalogue

    try:
        catalogue = load_catalogue(directory)
    except CatalogueError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"{len(exc.problems)} problem(s) in the catalogue", err=True)
        raise typer.Exit(1) from None
    measures = sum(
        len(ms) for _, sub in catalogue.subthemes.values() for _, ms in sub.phases.items()
    )
    typer.echo(
        f"catalogue OK: {len(catalogue.themes)} themes, {len(catalogue.subthemes)} sub-themes, "
        f"{measures} measures, {len(catalogue.articles)} articles, version {catalogue.version}"
    )


def main() -> None:
    cli(prog_name="kriselogg")


if __name__ == "__main__":
    main()
