"""NATS: the server config is valid, and the per-service users of auth.conf can run JetStream
for their own subjects but cannot publish anyone else's."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeout

from tradebus.bus import ensure_streams
from tradebus.embedded import free_port, nats_answers, nats_server_binary
from tradebus.settings import SERVICES

NATS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "nats"
USERS = (*SERVICES, "admin")
PASSWORDS = {f"NATS_{user.upper()}_PASSWORD": f"test-{user}" for user in USERS}


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


def test_auth_config_is_valid_and_needs_the_passwords_from_the_environment() -> None:
    result = check_config(NATS_DIR / "auth.conf", PASSWORDS)
    assert result.returncode == 0, result.stderr
    assert "test-" not in (NATS_DIR / "auth.conf").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def auth_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
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
        process = subprocess.Popen(args, env={**os.environ, **PASSWORDS}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while not nats_answers(f"nats://127.0.0.1:{port}"):
            assert process.poll() is None and time.monotonic() < deadline, (workdir / "server.log").read_text()
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def url(user: str, port: int) -> str:
    return f"nats://{user}:test-{user}@127.0.0.1:{port}"


async def test_a_service_user_creates_streams_publishes_its_subjects_and_consumes(auth_nats: int) -> None:
    ingest = await nats.connect(url("ingest", auth_nats))
    risk = await nats.connect(url("risk", auth_nats))
    try:
        await ensure_streams(ingest.jetstream())
        ack = await ingest.jetstream().publish("bars.1m.BTCUSDT", b"{}", headers={"Nats-Msg-Id": "auth-test-1"})
        assert ack.stream == "BARS"
        await ingest.jetstream().publish("telemetry.heartbeat.ingest", b"{}")
        await ingest.jetstream().publish("dlq.ingest", b"{}")
        pull = await risk.jetstream().pull_subscribe("bars.1m.*", durable="risk-auth-test", stream="BARS")
        (msg,) = await pull.fetch(1, timeout=5)
        assert msg.subject == "bars.1m.BTCUSDT"
        await msg.ack_sync()
        await risk.jetstream().publish("exec.order.BTCUSDT", b"{}")
    finally:
        await ingest.close()
        await risk.close()


@pytest.mark.parametrize(
    ("user", "subject"),
    [("ingest", "signals.BTCUSDT"), ("aggregator", "bars.1m.BTCUSDT"), ("signal", "exec.order.BTCUSDT"),
     ("rollup", "dlq.risk"), ("telemetry", "telemetry.heartbeat.risk")],
)  # fmt: skip
async def test_a_service_user_cannot_publish_another_services_subjects(auth_nats: int, user: str, subject: str) -> None:
    errors: list[Exception] = []

    async def collect(error: Exception) -> None:
        errors.append(error)

    client = await nats.connect(url(user, auth_nats), error_cb=collect)
    try:
        await ensure_streams(client.jetstream())
        with pytest.raises(NatsTimeout):
            await client.jetstream().publish(subject, b"{}", timeout=0.5)
    finally:
        await client.close()
    assert any("permissions violation" in str(e).lower() for e in errors)


async def test_a_wrong_password_is_refused(auth_nats: int) -> None:
    with pytest.raises((nats.errors.NoServersError, nats.errors.Error, OSError)):
        await nats.connect(f"nats://ingest:wrong@127.0.0.1:{auth_nats}", allow_reconnect=False, connect_timeout=2)
