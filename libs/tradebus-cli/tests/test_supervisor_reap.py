"""What the supervisor does when a service process exits: a crash (or a fenced-off instance,
exit 75) is restarted with backoff; a refused NATS login (exit 78) is not restarted forever."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path

from tradebus.service import EXIT_LOGIN_REFUSED, FENCED_EXIT_CODE
from tradebus_cli.restart import RestartPolicy
from tradebus_cli.rundir import Dependency, RunDir
from tradebus_cli.supervisor import Child, Supervisor, stop_leftovers


def _exited_with(code: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    process.wait()
    return process


def _supervisor(tmp_path: Path) -> Supervisor:
    deps = {name: Dependency(url=f"{name}://127.0.0.1:1") for name in ("nats", "postgres", "redis")}
    return Supervisor(RunDir(tmp_path / "run"), {}, deps, RestartPolicy())


def test_a_crash_or_a_fenced_exit_is_restarted_and_a_refused_login_is_not(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path)
    now = time.monotonic()
    for code, restarted in ((-9, True), (1, True), (FENCED_EXIT_CODE, True), (EXIT_LOGIN_REFUSED, False)):
        child = Child("rollup", process=_exited_with(code), started_at=now - 5)
        assert supervisor.reap(child, now)
        assert child.process is None
        assert (child.restart_at < math.inf) is restarted, code


def test_a_pause_stops_the_services_and_its_end_starts_them_with_no_restart_counted(tmp_path: Path) -> None:
    """`tradebus restore`'s pause: every service stopped (dependencies untouched), `paused` only
    once all are gone, started again when the pause file goes; a stale one is dropped at start."""
    supervisor = _supervisor(tmp_path)
    supervisor.run.ensure()
    sleeper = (sys.executable, "-c", "import time; time.sleep(60)")
    supervisor.children = [Child(name, command=sleeper) for name in ("signal", "risk")]
    for child in supervisor.children:
        supervisor.start(child)
    first = [c.process for c in supervisor.children]
    try:
        supervisor.run.pause_file.touch()
        deadline = time.monotonic() + 10
        while not supervisor.paused:
            assert time.monotonic() < deadline, "the services were not stopped"
            supervisor.pause(time.monotonic())
            time.sleep(0.05)
        assert [p.poll() if p else None for p in first] == [-signal.SIGTERM, -signal.SIGTERM]
        assert all(c.process is None and not supervisor.reap(c, time.monotonic()) for c in supervisor.children)

        supervisor.run.pause_file.unlink()
        assert supervisor.pause(time.monotonic())
        assert not supervisor.paused
        assert all(c.process is not None and c.process.poll() is None for c in supervisor.children)
        assert [c.restarts for c in supervisor.children] == [0, 0]
    finally:
        for child in supervisor.children:
            if child.process:
                child.process.kill()
                child.process.wait()
    supervisor.run.pause_file.touch()
    stop_leftovers(supervisor.run)
    assert not supervisor.run.pause_file.exists()
