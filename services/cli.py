"""The composition root: `kriselogg up | serve | demo | token | verify | directory import`."""

from __future__ import annotations

import json
import logging
import reprlib
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import httpx
import typer
import uvicorn
import yaml
from fastapi import FastAPI
from pydantic import ValidationError

from shared import witness as w
from shared.auth import ROLES, issue_token, issue_witness_token, signing_key
from shared.canonical import verify_chain
from shared.clock import SYSTEM_CLOCK, Clock
from shared.infra import EmbeddedNats
from shared.note import NoteError, parse_verifier
from shared.settings import Settings

SERVICES = ("content", "incidents", "documents", "notify")
# Plain click help and errors, not typer's rich panels: those show a "<bool>" type beside every
# flag (even --help) and wrap an error over several boxed lines.
cli = typer.Typer(
    help="kriselogg: crisis guidance and an audit-proof incident log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
directory_cli = typer.Typer(
    help="The organisation directory.", no_args_is_help=True, rich_markup_mode=None
)
cli.add_typer(directory_cli, name="directory")
catalogue_cli = typer.Typer(
    help="The guidance catalogue.", no_args_is_help=True, rich_markup_mode=None
)
cli.add_typer(catalogue_cli, name="catalogue")

# Every command that needs the instance's key or data takes the same --data as `up`. Only `up`
# creates the directory and its key; the others refuse a directory without one, since a new key
# would sign tokens that the running instance refuses.
DEFAULT_DATA = Path("kriselogg-data")
DATA_ENV = "KRISELOGG_DATA_DIR"
DataDir = Annotated[
    Path,
    typer.Option(
        "--data",
        envvar=DATA_ENV,
        help="Data directory of the instance (the one given to `kriselogg up`)",
    ),
]

DEMO_LOGINS = (
    ("p-ln", "Lise Nord", ["leader"], "leader of Hjemmetjenesten nord"),
    ("p-ansatt", "Ali Ansatt", ["reporter"], "employee who reports"),
    ("p-vo", "Vera Verneombud", ["safety_rep"], "safety representative"),
    ("p-admin", "Astrid Admin", ["admin"], "administrator"),
    ("p-hr", "Per Personal", ["hr"], "HR adviser"),
    ("p-revisor", "Rut Revisor", ["auditor"], "auditor who checks the logs"),
)


def build_app(name: str, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    """Each service is built from its own settings class, read from the same environment.

    `clock` is the service's "now": the system clock, except where a test moves it.
    """
    values = settings.model_dump()
    if name == "content":
        from services.content.app import create_app as content_app
        from services.content.settings import ContentSettings

        return content_app(ContentSettings(**values), clock)
    if name == "incidents":
        from services.incidents.app import create_app as incidents_app
        from services.incidents.settings import IncidentSettings

        return incidents_app(IncidentSettings(**values), clock)
    if name == "documents":
        from services.documents.app import create_app as documents_app
        from services.documents.settings import DocumentSettings

        return documents_app(DocumentSettings(**values), clock)
    if name == "notify":
        from services.notify.app import create_app as notify_app
        from services.notify.settings import NotifySettings

        return notify_app(NotifySettings(**values), clock)
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


# Libraries whose INFO lines would carry what people wrote. httpx logs every request line,
# query string included, at INFO: the portal calls the API through it in process, so a guidance
# search would be logged with its words (/api/v1/guidance/search?q=...). Our own log lines name
# ids, counts and kinds only; these libraries are held to WARNING whatever the level.
QUIET_LOGGERS = ("httpx", "httpcore", "faststream", "uvicorn.access")


def _configure_logging(command: str, level: str) -> None:
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        _fail(command, f"KRISELOGG_LOG_LEVEL: unknown level {level!r}; use DEBUG, INFO, WARNING")
    logging.basicConfig(level=number, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    floor = max(logging.WARNING, logging.getLogger().getEffectiveLevel())
    # FastStream also logs every consumed message at INFO: noise on the hot path.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(floor)


def _fail(command: str, message: str, code: int = 2) -> NoReturn:
    """One line on stderr that names the problem, and the exit code (2: the user's to fix)."""
    text = " ".join(message.split())  # an OS or library message never spreads over lines
    typer.echo(f"kriselogg {command}: {text}", err=True)
    raise typer.Exit(code)


def _settings(command: str, **given: Any) -> Settings:
    """The settings from KRISELOGG_* and the options; a bad variable is named, not a traceback."""
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        _fail(command, f"KRISELOGG_{field.upper()}: {first['msg']}")


def _instance_key(command: str, data: Path) -> str:
    """KRISELOGG_SECRET_KEY, or the key file that `kriselogg up` made in `data`; never a new one.

    shared.auth.signing_key creates a missing key file: a token signed with such a key is refused
    (401) by the instance that has its own, so a missing key is an error here.
    """
    settings = _settings(command, data_dir=data)
    if settings.secret_key:
        return settings.secret_key
    hint = f"give the --data of `kriselogg up` (or {DATA_ENV}), or set KRISELOGG_SECRET_KEY"
    if not data.is_dir():
        _fail(command, f"no instance key: there is no data directory {data}; {hint}")
    if not (data / "secret.key").is_file():
        _fail(command, f"no instance key in {data} (no secret.key there); {hint}")
    try:
        return signing_key(settings)
    except (OSError, RuntimeError) as exc:  # unreadable, or an empty key file
        _fail(command, f"cannot read the instance key in {data}: {exc}")


def _refused_key(command: str, url: str, data: Path, response: httpx.Response) -> None:
    if response.status_code == 401:
        _fail(
            command,
            f"{url} refused the token signed with the key from {data}: that is not the key of "
            "the instance running there (give its --data, or its KRISELOGG_SECRET_KEY)",
            1,
        )


def _unreachable(command: str, url: str, exc: Exception) -> NoReturn:
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        _fail(command, f"--url {url!r} is not an http(s) URL ({exc})")
    if isinstance(exc, httpx.ConnectError):
        _fail(command, f"nothing answers at {url} ({exc}); is `kriselogg up` running there?", 1)
    _fail(command, f"{url} did not answer as expected ({type(exc).__name__}: {exc})", 1)


@cli.command()
def up(
    data: Annotated[
        Path,
        typer.Option(
            "--data", envvar=DATA_ENV, help="Data directory; made, with its key, if missing"
        ),
    ] = DEFAULT_DATA,
    port: Annotated[int, typer.Option(help="Port of the one origin")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    no_demo: Annotated[bool, typer.Option("--no-demo", help="Do not seed the demo org")] = False,
) -> None:
    """Start NATS, the four services and the portal on one origin (embedded mode)."""
    from services.gateway import Gateway
    from shared.compression import compressed

    settings = _settings("up", data_dir=data.resolve())
    if "public_url" not in settings.model_fields_set:
        # Links in the messages must reach this origin: its port, unless PUBLIC_URL says where
        # people reach it (a proxy, a real host name).
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        settings = settings.model_copy(update={"public_url": f"http://{shown}:{port}"})
    # The one command that makes the data directory and the instance key.
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        _fail("up", f"--data {settings.data_dir} is a file, not a directory")
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        signing_key(settings)
    except (OSError, RuntimeError) as exc:  # no permission, an empty key file
        _fail("up", f"cannot use the data directory {settings.data_dir}: {exc}")
    _configure_logging("up", settings.log_level)
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
            # The whole origin compressed: the API's JSON and the docs too, not only the portal
            # (content compresses its own answers, and gzip leaves an encoded answer alone).
            compressed(Gateway(apps)),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
            # X-Forwarded-For is believed from these peers only (uvicorn's default would trust
            # loopback, where `up` runs without a proxy).
            forwarded_allow_ips=settings.trusted_proxies,
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
    data: DataDir = DEFAULT_DATA,
) -> None:
    """Run one service alone (production; configuration from KRISELOGG_* variables)."""
    if service not in SERVICES:
        raise typer.BadParameter(
            f"unknown service {service!r}; choose one of {', '.join(SERVICES)}"
        )
    settings = _settings("serve", data_dir=data.resolve())
    if service != "content" and not settings.nats_url:
        _fail("serve", "KRISELOGG_NATS_URL must point at the NATS server.")
    # All services must sign and verify with one key: a service must not make its own.
    _instance_key("serve", settings.data_dir)
    _configure_logging("serve", settings.log_level)
    app = build_app(service, settings)
    ReadyServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            forwarded_allow_ips=settings.trusted_proxies,
        )
    ).run()


@cli.command()
def demo(
    url: Annotated[str, typer.Option(help="Where `kriselogg up` runs")] = "http://127.0.0.1:8000",
    data: DataDir = DEFAULT_DATA,
) -> None:
    """Walk the violence-report story against a running instance and print the timeline."""
    settings = _settings("demo", data_dir=data)
    key = _instance_key("demo", data)
    try:
        zone = ZoneInfo(settings.timezone)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        _fail("demo", f"KRISELOGG_TIMEZONE: unknown time zone {settings.timezone!r}")
    people = {p: (n, r) for p, n, r, _ in DEMO_LOGINS}

    def as_(person: str) -> dict[str, str]:
        name, roles = people[person]
        token = issue_token(key, org_id="demo", person_id=person, name=name, roles=roles)
        return {"Authorization": f"Bearer {token}"}

    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            _demo_story(client, as_, zone)
    except httpx.HTTPStatusError as exc:
        _refused_key("demo", url, data, exc.response)
        first_line = str(exc).splitlines()[0]  # not httpx's "For more information" link
        _fail("demo", f"{url} did not answer as expected ({first_line})", 1)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        _unreachable("demo", url, exc)
    except _DemoFailed as exc:
        _fail("demo", str(exc), 1)


class _DemoFailed(Exception):
    """The instance answered, but the story cannot go on; the message says why."""


def _demo_story(client: httpx.Client, as_: Callable[[str], dict[str, str]], zone: ZoneInfo) -> None:
    def call(method: str, path: str, who: str, body: Any = None) -> Any:
        response = client.request(method, path, json=body, headers=as_(who))
        response.raise_for_status()
        return response.json()

    def timeline_until(incident: str, done: Callable[[list[dict[str, Any]]], bool]) -> Any:
        deadline = time.monotonic() + 15
        while True:
            timeline = call("GET", f"/api/v1/incidents/{incident}/timeline", "p-ln")
            if done(timeline["events"]) or time.monotonic() > deadline:
                return timeline
            time.sleep(0.1)  # a CLI watching a running system over HTTP

    typer.echo("1. Ali Ansatt reports that a user hit him (vold-fysisk, Hjemmetjenesten nord).")
    report = {
        "category": "vold-fysisk", "title": "Slått av bruker under morgenbesøk",
        "unit_id": "u-nord",  # no occurred_at: it happened now, by the instance's clock
        "affected": ["p-ansatt"], "severity": "high",
        "facts": {"injury": True, "police_contacted": False},
    }  # fmt: skip
    incident = call("POST", "/api/v1/incidents", "p-ansatt", report)["id"]
    typer.echo("2. kriselogg alerts the nearest leader and the safety representative.")
    alerted = timeline_until(
        incident, lambda events: sum(e["type"] == "RecipientAlerted" for e in events) >= 2
    )
    typer.echo("3. Lise Nord acknowledges, follows the guidance and logs what she did.")
    mine = next(
        (
            e["data"]["alert_id"]
            for e in alerted["events"]
            if e["type"] == "RecipientAlerted" and e["data"]["recipient"]["id"] == "p-ln"
        ),
        None,
    )
    if mine is None:
        raise _DemoFailed(
            "Lise Nord was not alerted within 15 s: does the instance hold the demo organisation "
            "(`kriselogg up` without --no-demo)?"
        )
    call("POST", f"/api/v1/alerts/{mine}/ack", "p-ln")
    guidance = call("GET", "/api/v1/guidance/subthemes/vold-fysisk", "p-ln")
    acute = next(p for p in guidance["phases"] if p["id"] == "akutt")
    for measure in acute["measures"][:2]:
        body = {"measure_id": measure["id"], "title": measure["title"], "status": "done"}
        call("POST", f"/api/v1/incidents/{incident}/measures", "p-ln", body)
    note = {"text": "Ali er sendt til legevakten; kollega følger ham."}
    call("POST", f"/api/v1/incidents/{incident}/notes", "p-ln", note)
    final = timeline_until(
        incident, lambda events: any(e["type"] == "AlertAcknowledged" for e in events)
    )
    typer.echo(f"\nTimeline of incident {incident}:")
    for event in final["events"]:
        detail = event["data"].get("title") or event["data"].get("text") or ""
        who = (event["data"].get("recipient") or event["actor"])["name"]
        at = datetime.fromisoformat(event["recorded_at"]).astimezone(zone).strftime("%H:%M:%S")
        typer.echo(f"  {event['seq']:>3}  {at}  {event['type']:<18} "
                   f"{who}{': ' + detail if detail else ''}")  # fmt: skip
    verified = call("GET", f"/api/v1/incidents/{incident}/verify", "p-ln")
    state = "intact" if verified["valid"] else f"NOT valid from seq {verified['first_invalid_seq']}"
    typer.echo(f"\nThe log is {state}: {verified['length']} events, head {verified['head_hash']}")
    typer.echo(f"Open it in the portal: {str(client.base_url).rstrip('/')}/hendelser/{incident}")


@cli.command()
def token(
    org: Annotated[str, typer.Option(help="Organisation id")],
    person: Annotated[str, typer.Option(help="Person id (the token's subject)")],
    roles: Annotated[str, typer.Option(help="Comma-separated roles")] = "reporter",
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    hours: Annotated[int, typer.Option(min=1, help="Lifetime in hours")] = 12,
    data: DataDir = DEFAULT_DATA,
) -> None:
    """Print a bearer token signed with the instance key (development and scripts)."""
    role_list = [r.strip() for r in roles.split(",") if r.strip()]
    # Checked before the key is read, so a mistyped role is what the user hears about first.
    unknown = sorted(set(role_list) - ROLES)
    if unknown:
        raise typer.BadParameter(
            f"unknown roles: {', '.join(unknown)}; choose from {', '.join(sorted(ROLES))}",
            param_hint="--roles",
        )
    if not role_list:
        # A token without a role is refused by every rule; better said now than by a 403 later.
        raise typer.BadParameter("give at least one role", param_hint="--roles")
    key = _instance_key("token", data)
    typer.echo(
        issue_token(
            key,
            org_id=org,
            person_id=person,
            name=name or person,
            roles=role_list,
            ttl=timedelta(hours=hours),
        )
    )


@cli.command("witness-token")
def witness_token(
    org: Annotated[str, typer.Option(help="Organisation id")],
    days: Annotated[int, typer.Option(min=1, max=3660, help="Lifetime in days")] = 366,
    data: DataDir = DEFAULT_DATA,
) -> None:
    """Print a read-only token for a witness: checkpoints, keys and proofs, nothing else."""
    typer.echo(issue_witness_token(_instance_key("witness-token", data), org_id=org, days=days))


@cli.command("witness")
def witness_command(
    state: Annotated[Path, typer.Option(help="This witness's own folder (keep it safe)")],
    url: Annotated[
        str | None, typer.Option(help="kriselogg's address, e.g. https://krise.example")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="KRISELOGG_WITNESS_TOKEN", help="A witness token")
    ] = None,
    key: Annotated[
        list[str] | None, typer.Option(help="A verifier key line to trust (from the e-mail)")
    ] = None,
    note: Annotated[
        Path | None, typer.Option(help="Check this checkpoint (e-mail, printed form) instead")
    ] = None,
) -> None:
    """Check that the organisation's log only grew since this witness last looked.

    Exit 0: the log grew (or is unchanged) and nothing before was changed. Exit 1: it was
    changed, shrunk, split in two (a fork) or signed by a key you do not trust: keep the
    folder and tell AMU. Exit 2: wrong use. Exit 3: the log could not be asked.
    """
    if url is None and note is None:
        _fail("witness", "give --url (and a witness token), or --note with a checkpoint file")
    if url is not None and not token:
        _fail("witness", "give the witness token with --token or KRISELOGG_WITNESS_TOKEN")
    try:
        trusted = [parse_verifier(line) for line in key or []]
        text = note.read_text(encoding="utf-8") if note is not None else None
    except (NoteError, OSError) as exc:
        _fail("witness", str(exc))
    client = w.LogClient(url, token or "") if url is not None else None
    try:
        accepted = w.witness(w.WitnessState(state), client, note=text, trusted=trusted)
    except w.WitnessAlarm as exc:
        typer.echo(w.ALARM.format(what=str(exc), state=state), err=True)
        raise typer.Exit(w.TAMPERED) from None
    except w.WitnessError as exc:
        typer.echo(f"kriselogg witness: {exc}; nothing was checked", err=True)
        raise typer.Exit(w.UNREACHABLE) from None
    finally:
        if client is not None:
            client.close()
    if accepted.first_key:
        typer.echo(
            f"Første kjøring: stoler nå på nøkkelen {accepted.key.line()}\n"
            "Sammenlign den med nøkkelen i e-posten med kontrollsummer før du stoler på svaret."
        )
    cp = accepted.checkpoint
    if accepted.previous is None:
        typer.echo(f"OK: {cp.origin} har {cp.size} hendelser. Kontrollsummen er lagret.")
    elif cp.size < accepted.previous:
        typer.echo(
            f"OK: kontrollsummen for {cp.size} hendelser hører til den samme loggen som du har "
            f"kontrollert (nå {accepted.previous} hendelser)."
        )
    else:
        typer.echo(
            f"OK: {cp.origin} har vokst fra {accepted.previous} til {cp.size} hendelser, "
            "og ingenting fra før er endret."
        )


# `verify` prints the same lines as scripts/verify_export.py for the same findings (README,
# "Verifying a log yourself"; tests/test_verifiers.py runs both on every case):
#   VALID <n> events, head <hash>
#   INVALID at line <n>: <why>                                 a line that is no event
#   INVALID at seq <s> (line <n>): <why>                       the first event that fails
#   INVALID: no events (an incident starts with IncidentReported)


class _NotAnEvent(Exception):
    """A line of an export that cannot be one of its events; the message is the line to print."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(f"INVALID at line {line}: {why}")


def _no_constant(name: str) -> NoReturn:
    # json.loads accepts NaN and Infinity, which are not JSON (RFC 8259) and which canonical_json
    # refuses to write: no export can hold them, and hashing them would raise.
    raise ValueError(f"{name} is not JSON")


class _DuplicateKey(Exception):
    """Not a ValueError on purpose: the reader must tell it apart from a JSON syntax error."""

    def __init__(self, key: str) -> None:
        # ASCII only: the message must print even where stdout cannot encode the key.
        shown = reprlib.repr(key).encode("ascii", "backslashreplace").decode()
        super().__init__(f"the key {shown} appears twice")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of duplicate keys, other parsers the first: the same line would
    # show another value elsewhere than the one that was hashed, so it must not verify.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


@dataclass
class _ExportReader:
    """Yields the events of an export one line at a time, remembering where it is.

    verify_chain consumes the events lazily and stops at the first bad one, so a damaged line
    is reported only if every event before it is intact, and `line`, `seq` and `event` are
    those of the event the chain check was at when it stopped or raised.
    """

    line: int = 0
    seq: int = 0
    event: dict[str, Any] | None = None

    def events(self, lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
        for number, raw in enumerate(lines, start=1):
            self.line = number
            if not raw.strip():
                continue  # skipped, but counted: line numbers are those of the file
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _NotAnEvent(number, "not UTF-8") from None
            try:
                event = json.loads(
                    text, parse_constant=_no_constant, object_pairs_hook=_unique_keys
                )
            except (ValueError, RecursionError):  # JSONDecodeError, too many digits, too deep
                raise _NotAnEvent(number, "not JSON") from None
            except _DuplicateKey as exc:
                raise _NotAnEvent(number, str(exc)) from None
            if not isinstance(event, dict):
                raise _NotAnEvent(number, "not a JSON object")
            self.seq += 1
            self.event = event
            yield event

    def invalid(self, why: str) -> str:
        """The line that names the event the chain check stopped at."""
        return f"INVALID at seq {self.seq} (line {self.line}): {why}"


@cli.command()
def verify(file: Annotated[Path, typer.Argument(help="Exported incident (JSON Lines)")]) -> None:
    """Verify an exported incident: exit 0 if intact, 1 naming the first bad line or seq."""
    reader = _ExportReader()
    try:
        # Binary lines end at b"\n" only, as the export writes them. Decoded text would also be
        # split at U+2028, U+2029 and U+0085, which canonical JSON keeps raw inside strings: a
        # note containing one would cut its event in two.
        with file.open("rb") as lines:
            report = verify_chain(reader.events(lines))
    except OSError as exc:
        typer.echo(f"kriselogg verify: cannot read {file}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    except _NotAnEvent as exc:
        typer.echo(str(exc))
        raise typer.Exit(1) from None
    except (ValueError, RecursionError):
        # Parsed, but canonical JSON cannot be written for it (a lone surrogate such as "\ud800"
        # cannot be encoded as UTF-8; nesting too deep for json.dumps): no hash can match it.
        typer.echo(reader.invalid("cannot be hashed as canonical JSON"))
        raise typer.Exit(1) from None
    if not report.valid:
        # verify_chain stopped at the event the reader yielded last: that is the one it names.
        why = str(report.reason)
        if reader.event is not None and why == f"expected seq {reader.seq}":
            why += f", found {reprlib.repr(reader.event['seq'])}"  # an integer, or seq says so
        typer.echo(reader.invalid(why))
        raise typer.Exit(1)
    if report.length == 0:
        # An empty chain links up trivially, but every incident starts with IncidentReported.
        typer.echo("INVALID: no events (an incident starts with IncidentReported)")
        raise typer.Exit(1)
    typer.echo(f"VALID {report.length} events, head {report.head_hash}")


@directory_cli.command("import")
def directory_import(
    file: Annotated[Path, typer.Argument(help="Directory file (YAML or JSON)")],
    org: Annotated[str, typer.Option(help="Organisation id")],
    url: Annotated[str, typer.Option(help="Base URL of kriselogg")] = "http://127.0.0.1:8000",
    data: DataDir = DEFAULT_DATA,
) -> None:
    """Load an organisation directory into a running kriselogg."""
    command = "directory import"
    key = _instance_key(command, data)
    body = _read_directory(command, file)
    admin = issue_token(key, org_id=org, person_id="cli", name="kriselogg CLI", roles=["admin"])
    try:
        response = httpx.put(
            f"{url.rstrip('/')}/api/v1/directory",
            # YAML may hold dates and times, which JSON has not: they go as their ISO text.
            content=json.dumps(body, default=str, ensure_ascii=False).encode(),
            headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
            timeout=30,
        )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        _unreachable(command, url, exc)
    _refused_key(command, url, data, response)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code != 200:
        problem = answer if isinstance(answer, dict) else {}
        title = problem.get("title") or response.reason_phrase
        detail = problem.get("detail") or f"HTTP {response.status_code} from {url}"
        typer.echo(f"kriselogg {command}: {title}: {detail}", err=True)
        for item in problem.get("problems", []):
            typer.echo(f"  - {item}", err=True)
        raise typer.Exit(1)
    if not isinstance(answer, dict):
        _fail(command, f"{url} is not kriselogg (no directory answer from it)", 1)
    typer.echo(
        f"imported the directory of {answer.get('org')}: {answer.get('units')} units, "
        f"{answer.get('people')} people"
    )


def _read_directory(command: str, file: Path) -> dict[str, Any]:
    """The parsed directory file; a file that cannot be one is named with its line."""
    try:
        text = file.read_text("utf-8")
    except UnicodeDecodeError:
        _fail(command, f"{file}: not UTF-8 text")
    except OSError as exc:
        _fail(command, f"cannot read {file}: {exc.strerror or exc}")
    try:
        body = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}, line {mark.line + 1}, column {mark.column + 1}" if mark else f"{file}"
        _fail(command, f"{where}: not valid YAML: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:  # e.g. a control character (ReaderError)
        _fail(command, f"{file}: not valid YAML: {exc}")
    if not isinstance(body, dict):
        _fail(command, f"{file}: not a directory (a mapping with org, units and people)")
    return body


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

    if directory is not None and not directory.is_dir():
        _fail("catalogue check", f"--dir {directory} is not a directory")
    try:
        catalogue = load_catalogue(directory)
    except OSError as exc:
        _fail("catalogue check", f"cannot read the catalogue in {directory}: {exc}")
    except UnicodeDecodeError as exc:
        _fail("catalogue check", f"a catalogue file in {directory} is not UTF-8 text ({exc})")
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
