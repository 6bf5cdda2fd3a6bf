"""pytest plugin: a private NATS and a private PostgreSQL database for each test run.

Every run starts its own JetStream-enabled nats-server on a free port (so streams never collide
with a running stack or another run) and creates a fresh database on the configured PostgreSQL
(`DATABASE_URL`, default 127.0.0.1:5432) when it answers, else on an embedded PostgreSQL. Both
are removed at the end of the run.

The nats-server runs with auth on, as a stack does: the run generates every user's credentials
once (`natsauth.Credentials`) and exports `NATS_CREDENTIALS_DIR`, so a service under test connects
as its own user and a permission it lacks fails the test; the URLs the fixtures yield carry the
`admin` user, for the tests' own publishing and inspecting.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client

from tradebus.embedded import EmbeddedNats, EmbeddedPostgres, postgres_answers
from tradebus.natsauth import ADMIN, Credentials, Login, with_login
from tradebus.testing import close_admin_clients
from tradebus.testing.redisserver import RedisServer

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


TEST_RATE_LIMIT = "1000000"
"""Requests a minute a test's services allow one client: every stack of a run (and every run on
the machine) shares the machine's Redis windows, and tests poll at 20 Hz; the tests of the limits
set their own."""


@pytest.fixture(scope="session", autouse=True)
def _generous_rate_limits() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in ("RATE_LIMIT_PER_CLIENT", "RATE_LIMIT_PER_TOKEN")}
    for name in saved:
        os.environ[name] = TEST_RATE_LIMIT
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def nats_credentials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Credentials]:
    """Every NATS user's password for this run (files of mode 0600), exported to the services
    under test as `NATS_CREDENTIALS_DIR`."""
    credentials = Credentials(tmp_path_factory.mktemp("nats-credentials"))
    credentials.generate()
    previous = os.environ.get("NATS_CREDENTIALS_DIR")
    os.environ["NATS_CREDENTIALS_DIR"] = str(credentials.directory)
    try:
        yield credentials
    finally:
        if previous is None:
            os.environ.pop("NATS_CREDENTIALS_DIR", None)
        else:
            os.environ["NATS_CREDENTIALS_DIR"] = previous


def login_url(url: str, credentials: Credentials, user: str = ADMIN) -> str:
    """`url` with `user`'s credentials in it (`nats://user:password@host:port`)."""
    return with_login(url, Login(user, credentials.password(user)))


@pytest.fixture(scope="session", autouse=True)
async def _admin_clients() -> AsyncIterator[None]:
    """Closes the connections `tradebus.testing.admin_publisher` kept for the run."""
    yield
    await close_admin_clients()


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory, nats_credentials: Credentials) -> Iterator[str]:
    """URL (as the admin user) of a JetStream nats-server with auth on, owned by this test run."""
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"), auth_config=nats_credentials.server_config).start()
    try:
        yield login_url(server.url, nats_credentials)
    finally:
        server.stop()


@pytest.fixture
def private_nats_url(tmp_path: Path, nats_credentials: Credentials) -> Iterator[str]:
    """A nats-server of this test's own, for tests whose services must see no other test's streams."""
    server = EmbeddedNats(tmp_path / "nats", auth_config=nats_credentials.server_config).start()
    try:
        yield login_url(server.url, nats_credentials)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A DSN with rights to create databases: the configured server, else an embedded one."""
    configured = os.environ.get("TRADEBUS_TEST_ADMIN_DSN", DEFAULT_ADMIN_DSN)
    if postgres_answers(configured):
        yield configured
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    try:
        yield server.dsn("postgres")
    finally:
        server.stop()


def _with_database(dsn: str, name: str) -> str:
    """`dsn` pointing at database `name` (works for host and Unix-socket DSNs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def _create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def database_url(pg_admin_dsn: str) -> Iterator[str]:
    """A brand-new, empty database for one test, dropped afterwards."""
    name = f"tradebus_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(pg_admin_dsn, name))
    try:
        yield _with_database(pg_admin_dsn, name)
    finally:
        asyncio.run(_drop_database(pg_admin_dsn, name))


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    """A NATS client on the test run's server."""
    client = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.drain()


@pytest.fixture
def data_dir() -> Path:
    """The repository's tests/data folder (real Binance captures, see its SOURCES.md)."""
    return Path(__file__).resolve().parents[5] / "tests" / "data"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own on a free port, which the test may stop and start again."""
    try:
        server = RedisServer(tmp_path / "redis").start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()
