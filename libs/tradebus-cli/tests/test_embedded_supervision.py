"""The supervisor restarts the embedded nats-server and PostgreSQL it started, and `down` stops the new ones.

A local stack (TRADEBUS_LOCAL=1) whose NATS and PostgreSQL URLs answer nothing, so the
supervisor embeds both under a private run directory on private ports. The test kills each
with SIGKILL, waits for the supervisor to bring it back (same port, same socket, new pid in
`state.json`) and for every service to be ready again, then checks `down` leaves no process
behind — the restarted ones included — by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from stack_cli import cli

from tradebus.embedded import free_port, nats_answers
from tradebus.settings import PROCESSES
from tradebus.testing import wait_for
from tradebus_cli.rundir import ProcessRef, RunDir

pytestmark = pytest.mark.e2e


async def _all_ready(urls: dict[str, str]) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:
        for url in urls.values():
            try:
                if (await client.get(f"{url}/health/ready")).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
    return True


def _family(ref: ProcessRef) -> dict[str, ProcessRef]:
    """`ref` and its live descendants (a postmaster's backends), to check later that none survives."""
    found = {f"pid {ref.pid}": ref}
    process = ref.find()
    if process is not None:
        for child in process.children(recursive=True):
            try:
                found[f"pid {child.pid} (child of {ref.pid})"] = ProcessRef.of(child.pid)
            except psutil.NoSuchProcess:
                continue
    return found


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory the embedded PostgreSQL's own user can reach (pytest's tmp_path is 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix="tradebus-sup-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_embedded_nats_and_postgres_are_restarted_and_down_stops_the_new_ones(open_dir: Path) -> None:
    run = RunDir(open_dir / "run")
    nats_port = free_port()
    env = {
        **os.environ,
        "TRADEBUS_RUN_DIR": str(run.path),
        "TRADEBUS_LOCAL": "1",
        "TRADEBUS_MONITORING": "0",  # Prometheus and Alertmanager: test_alert_routing.py
        "NATS_URL": f"nats://127.0.0.1:{nats_port}",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/tradebus",
        "SYMBOLS": "BTCUSDT",
        "INGEST_SOURCE": "synthetic",
        "BACKFILL_DAYS": "0.05",
        "HEARTBEAT_INTERVAL_S": "1",
        "COLUMNS": "200",
        **{f"TRADEBUS_{s.upper()}_PORT": str(free_port()) for s in PROCESSES},
    }
    urls = {s: f"http://127.0.0.1:{env[f'TRADEBUS_{s.upper()}_PORT']}" for s in PROCESSES}
    seen: dict[str, ProcessRef] = {}

    def remember(state_name: str) -> None:
        state = run.read_state()
        assert state is not None
        for name, ref in state.processes().items():
            seen[f"{state_name}: {name}"] = ref

    try:
        code, output = await cli("up", env=env, timeout=120.0)
        assert code == 0, output
        state = run.read_state()
        assert state is not None
        nats, pg = state.deps["nats"], state.deps["postgres"]
        assert nats.embedded and pg.embedded and nats.process and pg.process, state.deps
        assert nats.url == env["NATS_URL"]
        remember("first")
        seen |= _family(pg.process)

        for dep, victim in (("nats", nats.process), ("postgres", pg.process)):
            os.kill(victim.pid, signal.SIGKILL)

            async def back(dep: str = dep, victim: ProcessRef = victim) -> bool:
                now = run.read_state()
                current = now.deps[dep] if now else None
                if not current or not current.process or current.process.pid == victim.pid:
                    return False
                return current.restarts == 1 and current.process.find() is not None and await _all_ready(urls)

            await wait_for(back, timeout=90, what=f"the killed embedded {dep} restarted and every service ready")
            remember(f"after {dep} restart")
            state = run.read_state()
            assert state is not None
            assert state.deps[dep].url == (nats if dep == "nats" else pg).url
            new_pg = state.deps["postgres"].process
            assert new_pg is not None
            seen |= _family(new_pg)

        state = run.read_state()
        assert state is not None
        assert state.deps["nats"].url == f"nats://127.0.0.1:{nats_port}" and nats_answers(state.deps["nats"].url)
        log = run.log_file("supervisor").read_text()
        assert log.count("embedded dependency restarted") == 2, log[-3000:]
    finally:
        code, output = await cli("down", env=env, timeout=90)
    assert code == 0, output
    left = {name: ref.pid for name, ref in seen.items() if ref.find() is not None}
    assert left == {}
    assert not nats_answers(f"nats://127.0.0.1:{nats_port}")
    assert run.read_state() is None
