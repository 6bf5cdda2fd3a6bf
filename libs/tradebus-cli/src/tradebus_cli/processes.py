"""Stopping processes we started, identified by pid and start time, and nothing else."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

import psutil

from tradebus_cli.rundir import ProcessRef

KILL_WAIT_S: Final = 5.0


def alive(refs: Mapping[str, ProcessRef]) -> dict[str, psutil.Process]:
    """The processes among `refs` that still run (a recycled pid is not ours)."""
    return {name: process for name, ref in refs.items() if (process := ref.find()) is not None}


def running(processes: Mapping[str, psutil.Process]) -> dict[str, psutil.Process]:
    """The processes that have neither exited nor become zombies."""
    found = {}
    for name, process in processes.items():
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                found[name] = process
        except psutil.NoSuchProcess:
            continue
    return found


def wait_gone(processes: Mapping[str, psutil.Process], timeout_s: float) -> dict[str, psutil.Process]:
    """Wait until every process is gone or `timeout_s` passed; return the ones still running.

    Polls instead of `psutil.wait_procs`: an orphan whose reaper is slow stays a zombie, and a
    zombie has stopped for our purposes.
    """
    deadline = time.monotonic() + timeout_s
    left = running(processes)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = running(left)
    return left


def kill(processes: Mapping[str, psutil.Process]) -> None:
    for process in processes.values():
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    wait_gone(processes, KILL_WAIT_S)


def terminate(processes: Mapping[str, psutil.Process]) -> None:
    for process in processes.values():
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            continue


def stop_processes(refs: Mapping[str, ProcessRef], grace_s: float) -> list[str]:
    """SIGTERM the live ones among `refs`, SIGKILL those left after `grace_s`; their names."""
    targets = alive(refs)
    terminate(targets)
    kill(wait_gone(targets, grace_s))
    return sorted(targets)
