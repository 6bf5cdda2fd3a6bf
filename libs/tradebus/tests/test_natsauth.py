"""Auth on a real nats-server (the test run's, started with `natsauth.Credentials`): nobody gets in
anonymously, each service publishes its own subjects and nobody else's, the reader publishes none,
credential files are private, and a service with a wrong password stops with one clear line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client

from tradebus import natsauth, subjects
from tradebus.bus import ensure_streams
from tradebus.natsauth import ADMIN, READER, USERS, Credentials
from tradebus.settings import CONSOLE, SERVICES
from tradebus.testing import wait_for

OWN_SUBJECTS = {
    "ingest": ["bars.1m.FORGED"],
    "aggregator": [f"bars.{interval}.FORGED" for interval in ("5m", "15m", "1h", "4h", "1d", "1w")],
    "signal": ["signals.FORGED"],
    "risk": [f"exec.{kind}.FORGED" for kind in ("order", "fill", "trade", "position", "rejected", "breaker")],
    "telemetry": ["telemetry.quality.FORGED", "telemetry.readiness"],
    "rollup": ["rollups.daily", "rollups.strategy"],
}
"""Each service's row of DESIGN.md's subject table (its heartbeat and DLQ are added below)."""


def own(service: str, symbol: str = "FORGED") -> list[str]:
    rows = [subject.replace("FORGED", symbol) for subject in OWN_SUBJECTS[service]]
    return [*rows, subjects.heartbeat(service), subjects.dlq(service)]


def others(service: str) -> list[str]:
    return [subject for other in SERVICES if other != service for subject in own(other)]


def plain(url: str) -> str:
    return natsauth.strip_userinfo(url)


Connect = Callable[[str], Awaitable[tuple[Client, list[Exception]]]]


@pytest.fixture
async def connect_as(nats_url: str, nats_credentials: Credentials) -> AsyncIterator[Connect]:
    """Connect as a user of the run's server; each connection's async errors are collected."""
    clients: list[Client] = []

    async def connect(user: str) -> tuple[Client, list[Exception]]:
        errors: list[Exception] = []

        async def collect(exc: Exception) -> None:
            errors.append(exc)

        login = natsauth.Login(user, nats_credentials.password(user))
        client = await nats.connect(plain(nats_url), error_cb=collect, **login.connect_options())
        clients.append(client)
        return client, errors

    yield connect
    for client in clients:
        await client.close()


@pytest.fixture(scope="module", autouse=True)
async def streams(nats_url: str) -> None:
    admin = await nats.connect(nats_url)
    await ensure_streams(admin.jetstream())
    await admin.close()


async def test_an_anonymous_connection_is_refused(nats_url: str) -> None:
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
        await nats.connect(plain(nats_url), allow_reconnect=False, connect_timeout=3, error_cb=_quiet)


async def test_a_wrong_password_is_refused(nats_url: str) -> None:
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
        await nats.connect(
            plain(nats_url), user="signal", password="wrong", allow_reconnect=False, connect_timeout=3, error_cb=_quiet
        )


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_publishes_its_own_subjects(connect_as: Connect, service: str) -> None:
    client, errors = await connect_as(service)
    js = client.jetstream()
    await ensure_streams(js)  # what every service does at start
    for subject in own(service, "OWNED"):
        ack = await js.publish(subject, b"{}", timeout=5)
        assert ack.seq > 0, subject
    assert errors == []


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_cannot_publish_another_services_subjects(
    connect_as: Connect, nats_url: str, service: str
) -> None:
    """signal cannot publish exec.*, ingest cannot publish signals.*, risk cannot publish bars.*, ..."""
    client, errors = await connect_as(service)
    forbidden = others(service)
    for subject in forbidden:
        await client.publish(subject, b"{}")
    await client.flush()
    await _refused(errors, forbidden)
    await _nothing_stored(nats_url, [s for s in forbidden if s.endswith(".FORGED")])


@pytest.mark.parametrize("user", [READER, CONSOLE])
async def test_readers_cannot_publish_any_event_subject(connect_as: Connect, nats_url: str, user: str) -> None:
    """Neither the CLI's reader nor the console publishes anything: not even a heartbeat of its own."""
    client, errors = await connect_as(user)
    every = [subject for service in SERVICES for subject in own(service)] + [subjects.heartbeat(CONSOLE)]
    for subject in every:
        await client.publish(subject, b"{}")
    await client.flush()
    await _refused(errors, every)
    await _nothing_stored(nats_url, [s for s in every if s.endswith(".FORGED")])


async def _refused(errors: list[Exception], subjects: list[str]) -> None:
    """Every publish to `subjects` was refused (nats-py reports each server error in a task of its own)."""
    wanted = {subject.lower() for subject in subjects}

    def refused() -> set[str]:
        return {str(e).lower().partition('publish to "')[2].rstrip('"') for e in errors}

    await wait_for(_now(lambda: refused() >= wanted), timeout=10, what=f"{len(wanted)} publishes refused")
    assert refused() == wanted


async def _nothing_stored(nats_url: str, forged: list[str]) -> None:
    admin = await nats.connect(nats_url)
    try:
        js = admin.jetstream()
        for subject in forged:
            stream = await js.find_stream_name_by_subject(subject)
            with pytest.raises(nats.js.errors.NotFoundError):
                await js.get_last_msg(stream, subject)
    finally:
        await admin.close()


async def test_the_reader_reads_events_and_stream_state_but_nobodys_replies(connect_as: Connect) -> None:
    reader, errors = await connect_as(READER)
    ingest, _ = await connect_as("ingest")
    await _sees(reader, ingest, "bars.>", "bars.1m.READERSEES")
    info = await reader.jetstream().stream_info("BARS")
    assert info.config.name == "BARS"
    assert errors == []
    await reader.subscribe(f"{natsauth.inbox_prefix('ingest')}.>")
    await reader.flush()
    await wait_for(_now(lambda: bool(errors)), timeout=5, what="the subscription refused")
    assert "subscription" in str(errors[0]).lower()


async def test_a_service_cannot_delete_purge_or_take_another_services_messages(connect_as: Connect) -> None:
    client, errors = await connect_as("signal")
    forbidden = [
        "$JS.API.STREAM.DELETE.EXEC",
        "$JS.API.STREAM.PURGE.BARS",
        "$JS.API.STREAM.MSG.DELETE.BARS",
        "$JS.API.CONSUMER.DELETE.SIGNALS.risk-signals",
        "$JS.API.CONSUMER.MSG.NEXT.SIGNALS.risk-signals",
        "$JS.API.CONSUMER.CREATE.EXEC.rollup-trades",
        "$JS.ACK.SIGNALS.risk-signals.1.1.1.1.1",
    ]
    for subject in forbidden:
        await client.publish(subject, b"{}", reply=client.new_inbox())
    await client.flush()
    await _refused(errors, forbidden)


def test_credential_files_are_readable_by_the_owner_only(nats_credentials: Credentials) -> None:
    directory = nats_credentials.directory
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = [nats_credentials.password_file(u) for u in USERS]
    files += [nats_credentials.server_config, nats_credentials.compose_env]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    server_config = nats_credentials.server_config.read_text()
    assert all(nats_credentials.password(u) not in server_config for u in USERS)  # hashes only
    assert server_config.count('password: "$2b$') == len(USERS)


def test_fresh_credentials_replace_the_old_ones(tmp_path: pytest.TempPathFactory) -> None:
    credentials = Credentials(tmp_path / "credentials")  # type: ignore[operator]
    first = credentials.generate()
    second = credentials.generate()
    assert set(first) == set(USERS) and all(first[u] != second[u] for u in USERS)
    assert credentials.password(ADMIN) == second[ADMIN]
    assert len(second[ADMIN]) >= 40  # 32 random bytes, URL-safe


def test_a_service_with_a_wrong_password_stops_with_one_clear_line(nats_url: str, database_url: str) -> None:
    env = {
        **os.environ,
        "NATS_URL": plain(nats_url),
        "DATABASE_URL": database_url,
        "NATS_PASSWORD": "not-the-password",
        "TRADEBUS_ROLLUP_PORT": "0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tradebus_rollup"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 78, output
    assert "refused user 'rollup'" in output and "NATS_PASSWORD" in output, output
    assert "Traceback" not in output, output
    assert output.count("\n") <= 3, output


async def _quiet(_: Exception) -> None:
    """nats-py prints every connect error otherwise."""


def _now(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


async def test_the_console_follows_events_and_reads_last_messages_but_makes_no_consumer(connect_as: Connect) -> None:
    """The console's user: core subscriptions and last-message reads; creating a consumer is refused,
    so it can leave no durable behind and ack nothing for a service."""
    console, _ = await connect_as(CONSOLE)
    signal, _ = await connect_as("signal")
    await ensure_streams(signal.jetstream())
    await _sees(console, signal, "signals.*", "signals.CONSOLESEES")
    last = await console.jetstream().get_last_msg("SIGNALS", "signals.CONSOLESEES")
    assert last.data == b"{}"
    with pytest.raises(nats.errors.Error):
        await console.jetstream().add_consumer("SIGNALS", durable_name="console-sneaky", timeout=2)


async def _sees(reader: Client, publisher: Client, pattern: str, subject: str) -> None:
    """`reader`, subscribed to `pattern`, receives what `publisher` publishes on `subject`."""
    seen: list[str] = []

    async def keep(msg: nats.aio.msg.Msg) -> None:
        seen.append(msg.subject)

    await reader.subscribe(pattern, cb=keep)
    await reader.flush()
    await publisher.jetstream().publish(subject, b"{}", timeout=5)
    await wait_for(_now(lambda: subject in seen), timeout=5, what=f"{subject} seen")
