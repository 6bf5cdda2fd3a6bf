"""What the supervisor does when a service process exits: a crash (or a fenced-off instance,
exit 75) is restarted with backoff; a refused NATS login (exit 78) is not restarted forever."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

from tradebus.service import EXIT_LOGIN_REFUSED, FENCED_EXIT_CODE
from tradebus_cli.restart import RestartPolicy
from tradebus_cli.rundir import Dependency, RunDir
from tradebus_cli.supervisor import Child, Supervisor


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
