"""The run directory's supervisor lock and process identities: never trust a stale pid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tradebus.settings import PROCESSES
from tradebus_cli.rundir import Dependency, ProcessRef, RunDir
from tradebus_cli.supervisor import stack_env


def test_only_one_supervisor_holds_the_lock(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert not run.supervisor_running()
    held = run.lock_supervisor()
    assert held is not None
    assert run.pid_file.read_text().strip() == str(os.getpid())
    assert run.supervisor_running()
    assert run.lock_supervisor() is None
    run.release_supervisor(held)
    assert not run.supervisor_running()
    assert not run.pid_file.exists()


def test_a_pid_file_left_by_a_killed_supervisor_does_not_count(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.pid_file.write_text(f"{os.getpid()}\n")
    assert not run.supervisor_running()
    assert run.supervisor_process() is None


def test_a_recycled_pid_is_not_ours() -> None:
    me = ProcessRef.of(os.getpid())
    assert me.find() is not None
    assert me.model_copy(update={"create_time": me.create_time - 100}).find() is None


def test_an_exited_process_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    ref = ProcessRef.of(child.pid)
    child.wait()
    assert ref.find() is None


def test_services_get_the_resolved_urls_ports_and_make_up_defaults(monkeypatch) -> None:
    monkeypatch.setenv("TRADEBUS_RISK_PORT", "19084")
    resolved = {
        "nats": Dependency(url="nats://127.0.0.1:4999", embedded=True),
        "postgres": Dependency(url="postgresql://postgres@127.0.0.1:5432/tradebus"),
        "redis": Dependency(url="redis://127.0.0.1:6379/0", ok=False),
    }
    env = stack_env({"SYMBOLS": "SOLUSDT", "NATS_URL": "nats://127.0.0.1:4222", "PATH": "/bin"}, resolved)
    assert env["NATS_URL"] == "nats://127.0.0.1:4999"
    assert env["DATABASE_URL"] == "postgresql://postgres@127.0.0.1:5432/tradebus"
    assert env["SYMBOLS"] == "SOLUSDT"
    assert (env["INGEST_SOURCE"], env["BACKFILL_DAYS"], env["LOG_FORMAT"]) == ("auto", "30", "json")
    assert env["TRADEBUS_RISK_PORT"] == "19084"
    assert env["TRADEBUS_INGEST_PORT"] == "8081"
    assert {f"TRADEBUS_{s.upper()}_PORT" for s in PROCESSES} <= env.keys()
    assert env["PATH"] == "/bin"
