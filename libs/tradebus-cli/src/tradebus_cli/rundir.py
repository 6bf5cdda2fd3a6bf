"""The run directory: where a local stack keeps its pid file, state, logs and embedded data.

`state.json` is how `up`, `status`, `down` and `logs` (separate processes) learn what the
supervisor started: URLs, process ids (with their start times, so a recycled pid is never
mistaken for ours) and which dependencies are embedded. The pid file carries an exclusive
`flock` held for the supervisor's lifetime, so "is it running?" never trusts a stale file.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import psutil
from pydantic import BaseModel, Field

SUPERVISOR_MODULE = "tradebus_cli.supervisor"


def repo_root() -> Path:
    """The tradebus checkout: the nearest parent of the working directory holding `libs/tradebus`."""
    here = Path.cwd().resolve()
    package_root = Path(__file__).resolve().parents[4]
    for candidate in (here, *here.parents, package_root):
        if (candidate / "libs" / "tradebus").is_dir():
            return candidate
    return here


class ProcessRef(BaseModel):
    """A process we started, identified by pid and start time (pids get recycled)."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        return cls(pid=pid, create_time=psutil.Process(pid).create_time())

    def find(self) -> psutil.Process | None:
        """The live process, or None once it is gone (a zombie counts as gone)."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.create_time) > 0.5 or process.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.NoSuchProcess:
            return None
        return process


class Dependency(BaseModel):
    """Where a dependency is, and whether the supervisor started it (and so must stop it)."""

    url: str
    embedded: bool = False
    ok: bool = True
    detail: str = ""
    process: ProcessRef | None = None
    """The current process of an embedded dependency: replaced when the supervisor restarts it."""
    restarts: int = 0
    credentials_dir: str = ""
    """Where the local stack wrote this dependency's credentials (NATS: `<user>.password`, 0600)."""


class HealingAction(BaseModel):
    """What the supervisor did on its own to heal a process, and why (R-5.3)."""

    at: str
    what: str
    why: str


class ServiceState(BaseModel):
    url: str
    process: ProcessRef | None = None
    restarts: int = 0
    actions: list[HealingAction] = Field(default_factory=list)
    """The watchdog's latest actions on it (the last `ACTIONS_KEPT`)."""


class StackState(BaseModel):
    mode: Literal["local", "docker"]
    supervisor: ProcessRef | None = None
    services: dict[str, ServiceState] = Field(default_factory=dict)
    monitors: dict[str, ServiceState] = Field(default_factory=dict)
    """Prometheus and Alertmanager, where the supervisor runs them."""
    monitors_skipped: dict[str, str] = Field(default_factory=dict)
    """Why a monitor does not run (not installed, port in use, switched off)."""
    deps: dict[str, Dependency] = Field(default_factory=dict)

    def processes(self) -> dict[str, ProcessRef]:
        """Every process of the run by a readable name: supervisor, services, monitors, embedded deps."""
        found = {f"service {name}": s.process for name, s in self.services.items() if s.process}
        found |= {f"monitor {name}": m.process for name, m in self.monitors.items() if m.process}
        found |= {f"embedded {name}": d.process for name, d in self.deps.items() if d.embedded and d.process}
        if self.supervisor:
            found["supervisor"] = self.supervisor
        return found


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def from_env(cls) -> RunDir:
        """`TRADEBUS_RUN_DIR`, else `<repo>/.run`."""
        configured = os.environ.get("TRADEBUS_RUN_DIR")
        return cls(Path(configured).resolve() if configured else repo_root() / ".run")

    @property
    def pid_file(self) -> Path:
        return self.path / "supervisor.pid"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def credentials(self) -> Path:
        """Where `tradebus up` writes the embedded NATS's credentials (a directory of mode 0700)."""
        return self.path / "credentials"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def ensure(self) -> RunDir:
        self.logs.mkdir(parents=True, exist_ok=True)
        return self

    def read_state(self) -> StackState | None:
        try:
            return StackState.model_validate_json(self.state_file.read_bytes())
        except FileNotFoundError:
            return None

    def write_state(self, state: StackState) -> None:
        """Replace the state atomically so a reader never sees half a file."""
        partial = self.state_file.with_suffix(".tmp")
        partial.write_text(state.model_dump_json(indent=2))
        partial.replace(self.state_file)

    def clear_state(self) -> None:
        self.state_file.unlink(missing_ok=True)

    def supervisor_running(self) -> bool:
        """Whether a supervisor holds the lock (a stale pid file from a killed one does not count)."""
        try:
            with self.pid_file.open("r") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(handle, fcntl.LOCK_UN)
                return False
        except FileNotFoundError:
            return False

    def supervisor_process(self) -> psutil.Process | None:
        """The running supervisor, checked by its lock and its command line."""
        if not self.supervisor_running():
            return None
        try:
            process = psutil.Process(int(self.pid_file.read_text().strip()))
            return process if SUPERVISOR_MODULE in " ".join(process.cmdline()) else None
        except (OSError, ValueError, psutil.Error):
            return None

    def lock_supervisor(self) -> IO[str] | None:
        """Take the supervisor lock and write our pid; None if another supervisor holds it."""
        self.ensure()
        handle = self.pid_file.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return handle

    def release_supervisor(self, handle: IO[str]) -> None:
        self.pid_file.unlink(missing_ok=True)
        handle.close()


def stack_url(env_var: str, dep: str, default: str) -> str:
    """`env_var` when set, else the URL of the local stack's `dep` (it may be embedded), else `default`."""
    if url := os.environ.get(env_var):
        return url
    state = RunDir.from_env().read_state()
    if state and dep in state.deps:
        return state.deps[dep].url
    return default
