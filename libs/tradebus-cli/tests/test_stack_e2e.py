"""`tradebus up` / `status` / `down` on the real services, as processes, against the test bus and database.

The stack runs locally (TRADEBUS_LOCAL=1) under a private run directory and private ports; the
test kills one service with SIGKILL and expects the supervisor to bring it back, then checks
that `down` leaves no process of the run behind.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import stat
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import nats
import nats.errors
import psutil
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from stack_cli import cli, missing_services, ready

from tradebus.embedded import free_port
from tradebus.natsauth import USERS, Credentials
from tradebus.settings import PROCESSES
from tradebus.testing import wait_for
from tradebus_cli.rundir import ProcessRef, RunDir, ServiceState
from tradebus_cli.supervisor import NATS_LOGIN_VARIABLES

pytestmark = pytest.mark.e2e


async def test_up_restarts_a_killed_service_and_down_leaves_nothing(
    tmp_path: Path, nats_url: str, database_url: str, nc: Client
) -> None:
    if missing := missing_services():
        pytest.skip(f"service packages not importable yet: {', '.join(f'tradebus_{s}' for s in missing)}")
    bars: list[Msg] = []

    async def collect(msg: Msg) -> None:
        bars.append(msg)

    await nc.subscribe("bars.1m.*", cb=collect)
    run = RunDir(tmp_path / "run")
    env = {
        **os.environ,
        "TRADEBUS_RUN_DIR": str(run.path),
        "TRADEBUS_LOCAL": "1",
        "TRADEBUS_MONITORING": "0",  # Prometheus and Alertmanager: test_alert_routing.py
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "SYMBOLS": "BTCUSDT",
        "BACKFILL_DAYS": "0.2",
        "HEARTBEAT_INTERVAL_S": "1",
        "COLUMNS": "200",
        "TRADEBUS_WATCHDOG_INTERVAL_S": "0.5",
        "TRADEBUS_WATCHDOG_MISSES": "2",
        "TRADEBUS_WATCHDOG_GRACE_S": "3",
        "TRADEBUS_SUPERVISOR_PORT": str(free_port()),
        **{f"TRADEBUS_{s.upper()}_PORT": str(free_port()) for s in PROCESSES},
    }
    urls = {s: f"http://127.0.0.1:{env[f'TRADEBUS_{s.upper()}_PORT']}" for s in PROCESSES}
    seen: dict[str, ProcessRef] = {}
    try:
        code, output = await cli("up", env=env)
        assert code == 0, output
        for url in urls.values():
            assert url in output
        state = run.read_state()
        assert state is not None and state.supervisor is not None
        assert not state.deps["nats"].embedded and not state.deps["postgres"].embedded
        seen["supervisor"] = state.supervisor
        seen |= {f"{name} 0": s.process for name, s in state.services.items() if s.process}
        assert len(seen) == 1 + len(PROCESSES)

        async with httpx.AsyncClient(timeout=2) as client:
            for url in urls.values():
                assert await ready(client, url), (await client.get(f"{url}/health/ready")).text

            async def bars_flowing() -> bool:
                return bool(bars)

            await wait_for(bars_flowing, timeout=30, what="1m bars on bars.1m.*")
            assert bars[0].subject == "bars.1m.BTCUSDT"

            def replaced(
                name: str, old: ProcessRef, healed: Callable[[ServiceState], bool]
            ) -> Callable[[], Awaitable[bool]]:
                """`name` runs as a new process, `healed` holds of its state, and it is ready."""

                async def check() -> bool:
                    now = run.read_state()
                    current = now.services[name] if now else None
                    if not current or not current.process or current.process.pid == old.pid:
                        return False
                    seen[f"{name} 1"] = current.process
                    return healed(current) and await ready(client, urls[name])

                return check

            victim = state.services["signal"].process
            assert victim is not None
            os.kill(victim.pid, signal.SIGKILL)
            restarted = replaced("signal", victim, lambda s: s.restarts >= 1)
            await wait_for(restarted, timeout=30, what="the killed signal service restarted and ready")

            # a hang (SIGSTOP): it runs, so no exit to restart on; the watchdog's probes fail and it acts
            hung = state.services["rollup"].process
            assert hung is not None
            os.kill(hung.pid, signal.SIGSTOP)
            healed = replaced("rollup", hung, lambda s: bool(s.actions))
            await wait_for(healed, timeout=60, what="the hung rollup killed by the watchdog, restarted and ready")
            (action,) = run.read_state().services["rollup"].actions  # type: ignore[union-attr]
            assert action.what == "killed to restart (SIGKILL)" and "/health/live failed 2 times" in action.why
            counters = (await client.get(f"http://127.0.0.1:{env['TRADEBUS_SUPERVISOR_PORT']}/metrics")).text
            assert 'tradebus_supervisor_watchdog_actions_total{service="rollup"} 1.0' in counters

        code, output = await cli("status", env=env)
        assert code == 0, output
        assert "Readiness" in output and "Self-healing" in output and "killed to restart" in output

        async def signalled() -> bool:
            code, _ = await cli("signal", "BTCUSDT", "--horizons", "5m,15m", "--json", env=env)
            return code == 0

        await wait_for(signalled, timeout=30, what="`tradebus signal` answered from stored bars")
        code, output = await cli("signal", "BTCUSDT", "--horizons", "5m,15m", env=env)
        assert code == 0, output
        assert "BTCUSDT" in output and "consensus" in output
        code, output = await cli("signal", "NOPEUSDT", env=env)
        assert code == 1 and "404" in output, output
    finally:
        code, output = await cli("down", env=env, timeout=60)
    assert code == 0, output
    assert "supervisor" in output
    assert {name: ref.pid for name, ref in seen.items() if ref.find() is not None} == {}
    assert not run.supervisor_running()
    assert run.read_state() is None


async def test_local_mode_runs_its_own_nats_with_auth_and_each_service_as_itself(
    tmp_path: Path, database_url: str
) -> None:
    """No NATS_URL: `up` starts an embedded nats-server with fresh credentials (0600 files in the
    run directory) even though another server answers on 4222; nobody gets in anonymously, each
    service's environment holds its own password and no other, and `tail` reads as `reader`."""
    if missing := missing_services():
        pytest.skip(f"service packages not importable yet: {', '.join(f'tradebus_{s}' for s in missing)}")
    run = RunDir(tmp_path / "run")
    inherited = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", *NATS_LOGIN_VARIABLES)}
    env = {
        **inherited,
        "TRADEBUS_RUN_DIR": str(run.path),
        "TRADEBUS_LOCAL": "1",
        "TRADEBUS_MONITORING": "0",  # Prometheus and Alertmanager: test_alert_routing.py
        "DATABASE_URL": database_url,
        "SYMBOLS": "BTCUSDT",
        "BACKFILL_DAYS": "0.05",
        "HEARTBEAT_INTERVAL_S": "1",
        "COLUMNS": "200",
        **{f"TRADEBUS_{s.upper()}_PORT": str(free_port()) for s in PROCESSES},
    }
    try:
        code, output = await cli("up", env=env)
        assert code == 0, output
        # the database's line, pasted as it is, connects
        pasted = next(line for line in output.splitlines() if line.startswith("PostgreSQL: "))
        command = [*shlex.split(pasted.removeprefix("PostgreSQL: ")), "-tAc", "SELECT current_database()"]
        psql = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(psql.communicate(), 30)
        assert out.decode().strip() == urlsplit(database_url).path.lstrip("/"), err
        assert "local mode runs no Grafana; Docker does" in output
        state = run.read_state()
        assert state is not None
        bus = state.deps["nats"]
        assert bus.embedded and bus.credentials_dir == str(run.credentials)
        credentials = Credentials(run.credentials)
        assert stat.S_IMODE(run.credentials.stat().st_mode) == 0o700
        for path in [credentials.password_file(u) for u in USERS] + [credentials.server_config]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

        async def quiet(_: Exception) -> None:
            """The refusal is the point."""

        with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
            await nats.connect(bus.url, allow_reconnect=False, connect_timeout=3, error_cb=quiet)

        passwords = {user: credentials.password(user) for user in USERS}
        for name, service in state.services.items():
            assert service.process is not None
            environ = psutil.Process(service.process.pid).environ()
            assert (environ["NATS_USER"], environ["NATS_PASSWORD"]) == (name, passwords[name])
            others = [user for user, password in passwords.items() if user != name and password in str(environ)]
            assert others == [], f"{name} can read the passwords of {others}"

        code, output = await cli("tail", "telemetry.heartbeat.*", "--count", "1", "--json", env=env, timeout=60)
        assert code == 0 and '"service.heartbeat"' in output, output
    finally:
        code, output = await cli("down", env=env, timeout=60)
    assert code == 0, output
