"""Services as real processes for a bench run, with their peak memory and CPU time watched by psutil."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import psutil

from tradebus.embedded import free_port

SAMPLE_EVERY_S: Final = 0.25
STOP_GRACE_S: Final = 30.0


@dataclass
class Usage:
    """One process's peak resident memory and the CPU seconds it spent since `mark()`."""

    peak_rss: int = 0
    cpu_at_mark: float = 0.0
    cpu_now: float = 0.0

    @property
    def cpu_s(self) -> float:
        return self.cpu_now - self.cpu_at_mark


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


@dataclass
class Infra:
    """CPU seconds since `mark()` of the processes serving the stack whose command line matches:
    the bus, the database's backends. Backends come and go; one first seen after the mark
    counts from zero."""

    match: Callable[[str], bool]
    exclude: set[int] = field(default_factory=set)
    """Pids left out although they match (the bench's own database connection)."""
    marked: bool = False
    base: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)

    def sample(self) -> None:
        for process in psutil.process_iter(["cmdline"]):
            try:
                if process.pid in self.exclude or not self.match(" ".join(process.info["cmdline"] or ())):
                    continue
                cpu = _cpu(process)
            except psutil.Error:
                continue
            self.base.setdefault(process.pid, cpu if not self.marked else 0.0)
            self.last[process.pid] = cpu

    def mark(self) -> None:
        """Count from now (again): every process seen now starts at its present CPU time."""
        self.base.clear()
        self.last.clear()
        self.marked = False
        self.sample()
        self.marked = True

    @property
    def cpu_s(self) -> float:
        return sum(cpu - self.base[pid] for pid, cpu in self.last.items())


@dataclass
class ServiceStack:
    """Starts `tradebus_<name>` processes with `env`, each on a free HTTP port, logging to `log_dir`."""

    env: Mapping[str, str]
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    usage: dict[str, Usage] = field(default_factory=dict)
    infra: dict[str, Infra] = field(default_factory=dict)
    """Named groups of processes serving the stack, sampled with the services."""
    _ps: dict[str, psutil.Process] = field(default_factory=dict)

    def start(self, names: Iterable[str], extra_env: Mapping[str, str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            port = self.ports[name] = free_port()
            env = {**os.environ, **self.env, **(extra_env or {}), f"TRADEBUS_{name.upper()}_PORT": str(port)}
            with (self.log_dir / f"{name}.log").open("ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", f"tradebus_{name}"], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            self.procs[name] = proc
            self._ps[name] = psutil.Process(proc.pid)
            self.usage[name] = Usage()

    async def wait_ready(self, names: Iterable[str], timeout_s: float = 90.0) -> None:
        """Until every named service answers 200 on /health/ready; raises with its log's tail if one exits."""
        pending = set(names)
        async with httpx.AsyncClient(timeout=2.0) as http:
            async with asyncio.timeout(timeout_s):
                while pending:
                    for name in sorted(pending):
                        self._check_alive(name)
                        try:
                            response = await http.get(f"http://127.0.0.1:{self.ports[name]}/health/ready")
                        except httpx.TransportError:
                            continue
                        if response.status_code == 200:
                            pending.discard(name)
                    await asyncio.sleep(0.2)

    def _check_alive(self, name: str) -> None:
        if (code := self.procs[name].poll()) is not None:
            tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {code} during the bench:\n{tail}")

    def mark(self) -> None:
        """Start counting CPU time from now (start-up and imports are not the work measured)."""
        for name, process in self._ps.items():
            self.usage[name].cpu_at_mark = self.usage[name].cpu_now = _cpu(process)
        for group in self.infra.values():
            group.mark()

    def sample(self) -> None:
        for name, process in self._ps.items():
            try:
                rss = process.memory_info().rss
                self.usage[name].cpu_now = _cpu(process)
            except psutil.NoSuchProcess:
                continue
            self.usage[name].peak_rss = max(self.usage[name].peak_rss, rss)
        for group in self.infra.values():
            group.sample()

    async def watch(self) -> None:
        """Sample every process until cancelled; also fails fast when a service dies."""
        while True:
            self.sample()
            for name in self.procs:
                self._check_alive(name)
            await asyncio.sleep(SAMPLE_EVERY_S)

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def stop(self) -> None:
        """SIGTERM every service we started, SIGKILL those still running after the grace period."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
