"""NATS: the server config is valid, auth.conf is natsauth's table with passwords from the
environment (bcrypt hashes, as compose passes them), and its users work as the services need."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout

from tradebus import natsauth
from tradebus.bus import ensure_streams
from tradebus.embedded import free_port, nats_answers, nats_server_binary

NATS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "nats"


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> natsauth.Credentials:
    generated = natsauth.Credentials(tmp_path_factory.mktemp("credentials"))
    generated.generate()
    return generated


@pytest.fixture(scope="module")
def server_env(credentials: natsauth.Credentials) -> dict[str, str]:
    """The nats container's environment as compose gives it: each NATS_<USER>_PASSWORD is the
    `..._HASH` value of compose.env (a bcrypt hash in double quotes; single quotes keep it literal)."""
    hashes = dict(line.split("=", 1) for line in credentials.compose_env.read_text().splitlines())
    return {
        natsauth.password_variable(user): hashes[f"{natsauth.password_variable(user)}_HASH"].strip("'")
        for user in natsauth.USERS
    }


def check_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nats_server_binary(), "-c", str(path), "-t"],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_server_config_is_valid() -> None:
    result = check_config(NATS_DIR / "nats.conf")
    assert result.returncode == 0, result.stderr


def test_auth_config_is_the_one_natsauth_renders() -> None:
    """deploy/nats/auth.conf is generated (`python -m tradebus.natsauth`): one table of permissions."""
    assert (NATS_DIR / "auth.conf").read_text(encoding="utf-8") == natsauth.compose_auth_conf()


def test_auth_config_is_valid_with_the_hashes_from_the_environment(server_env: dict[str, str]) -> None:
    result = check_config(NATS_DIR / "auth.conf", server_env)
    assert result.returncode == 0, result.stderr
    assert "$2b$" not in (NATS_DIR / "auth.conf").read_text(encoding="utf-8")
    missing = check_config(NATS_DIR / "auth.conf", {})
    assert missing.returncode != 0


@pytest.fixture(scope="module")
def auth_nats(tmp_path_factory: pytest.TempPathFactory, server_env: dict[str, str]) -> Iterator[int]:
    """A nats-server running deploy/nats/auth.conf (store under a temp dir, free ports)."""
    workdir = tmp_path_factory.mktemp("nats-auth")
    config = (NATS_DIR / "nats.conf").read_text(encoding="utf-8")
    assert 'store_dir: "/data"' in config
    (workdir / "nats.conf").write_text(config.replace('store_dir: "/data"', f'store_dir: "{workdir}"'))
    shutil.copy(NATS_DIR / "auth.conf", workdir / "auth.conf")
    port = free_port()
    args = [nats_server_binary(), "-c", str(workdir / "auth.conf"), "-a", "127.0.0.1", "-p", str(port)]
    args += ["-m", str(free_port())]
    with open(workdir / "server.log", "wb") as log:
        process = subprocess.Popen(args, env={**os.environ, **server_env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while not nats_answers(f"nats://127.0.0.1:{port}"):
            assert process.poll() is None and time.monotonic() < deadline, (workdir / "server.log").read_text()
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


Connect = Callable[..., Awaitable[Client]]


@pytest.fixture
def login(credentials: natsauth.Credentials, auth_nats: int) -> Connect:
    async def connect(user: str, **options: object) -> Client:
        password = credentials.password(user)
        return await nats.connect(
            f"nats://127.0.0.1:{auth_nats}", **natsauth.Login(user, password).connect_options(), **options
        )

    return connect


async def test_a_service_user_creates_streams_publishes_its_subjects_and_consumes(login: Connect) -> None:
    ingest = await login("ingest")
    risk = await login("risk")
    try:
        await ensure_streams(ingest.jetstream())
        ack = await ingest.jetstream().publish("bars.1m.BTCUSDT", b"{}", headers={"Nats-Msg-Id": "auth-test-1"})
        assert ack.stream == "BARS"
        await ingest.jetstream().publish("telemetry.heartbeat.ingest", b"{}")
        await ingest.jetstream().publish("dlq.ingest", b"{}")
        pull = await risk.jetstream().pull_subscribe("bars.1m.*", durable="risk-bars-1m", stream="BARS")
        (msg,) = await pull.fetch(1, timeout=5)
        assert msg.subject == "bars.1m.BTCUSDT"
        await msg.ack_sync()
        await risk.jetstream().publish("exec.order.BTCUSDT", b"{}")
    finally:
        await ingest.close()
        await risk.close()


async def test_signal_cannot_publish_an_order(login: Connect) -> None:
    errors: list[Exception] = []

    async def collect(error: Exception) -> None:
        errors.append(error)

    client = await login("signal", error_cb=collect)
    try:
        with pytest.raises(NatsTimeout):
            await client.jetstream().publish("exec.order.BTCUSDT", b"{}", timeout=0.5)
    finally:
        await client.close()
    assert any("permissions violation" in str(e).lower() for e in errors)


async def test_an_anonymous_connection_or_a_wrong_password_is_refused(auth_nats: int) -> None:
    async def quiet(_: Exception) -> None:
        """Refusals are expected."""

    for userinfo in ("", "ingest:wrong@"):
        with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
            await nats.connect(
                f"nats://{userinfo}127.0.0.1:{auth_nats}", allow_reconnect=False, connect_timeout=2, error_cb=quiet
            )
