"""The local stack supervisor (`python -m tradebus_cli.supervisor`, started detached by `tradebus up`).

It resolves NATS / PostgreSQL / Redis (embedding the first two when they do not answer), runs
the six services and the console as child processes, and Prometheus and Alertmanager when installed
(`monitoring`), restarts any that exits with backoff — the embedded nats-server and PostgreSQL
too (`depwatch`) — counts every restart (`tradebus_supervisor_restarts_total` on
TRADEBUS_SUPERVISOR_PORT, so a crash healed within a second still shows) and keeps
`state.json` current. On SIGTERM/SIGINT
it stops the children (SIGKILL after a grace period), then the embedded dependencies it
started, and removes its pid file.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Final

from prometheus_client import Counter, start_http_server

from tradebus.logging import configure_logging, get_logger
from tradebus.natsauth import Credentials
from tradebus.service import EXIT_LOGIN_REFUSED
from tradebus.settings import PROCESSES, port_for, url_for
from tradebus_cli import deps, monitoring
from tradebus_cli.deps import Embedded, redact
from tradebus_cli.depwatch import WatchedDependency
from tradebus_cli.processes import stop_processes
from tradebus_cli.restart import RestartPolicy
from tradebus_cli.rundir import Dependency, HealingAction, ProcessRef, RunDir, ServiceState, StackState
from tradebus_cli.watchdog import Watchdog, WatchdogPolicy

log = get_logger("tradebus.supervisor")

RESTARTS = Counter(
    "tradebus_supervisor_restarts_total",
    "Processes of the local stack started again after they exited (services, monitors, embedded deps).",
    ["service"],
)
WATCHDOG_ACTIONS = Counter(
    "tradebus_supervisor_watchdog_actions_total",
    "Services the watchdog killed to restart them: running, but /health/live failing (hung, or a consumer stalled).",
    ["service"],
)
ACTIONS_KEPT: Final = 20
SUPERVISOR_PORT_ENV: Final = "TRADEBUS_SUPERVISOR_PORT"
SUPERVISOR_PORT: Final = 8088
PROMETHEUS_PORT: Final = 9090
ALERTMANAGER_PORT: Final = 9093

STACK_DEFAULTS: Final[Mapping[str, str]] = {
    "SYMBOLS": "BTCUSDT,ETHUSDT",
    "INGEST_SOURCE": "auto",
    "BACKFILL_DAYS": "30",
    "LOG_FORMAT": "json",
}
"""What `make up` runs with unless the environment says otherwise."""

STOP_GRACE_S: Final = 20.0
TICK_S: Final = 0.2
DEPENDENCY_RESTART_ENV: Final = "TRADEBUS_DEPENDENCY_RESTART_S"
"""First delay before an embedded dependency that exited is started again (default 1 s, doubling
like the services'); the chaos suite sets 20 to hold PostgreSQL down for a 20 s outage."""


def dependency_policy(env: Mapping[str, str]) -> RestartPolicy:
    default = RestartPolicy()
    first = float(env.get(DEPENDENCY_RESTART_ENV) or default.initial_s)
    return RestartPolicy(initial_s=first, max_s=max(first, default.max_s))


class StopRequest:
    """Set by the signal handler; the main loop polls it (no locks inside a signal handler)."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __call__(self, signum: int, _: FrameType | None) -> None:
        self.signal = signal.Signals(signum).name

    def __bool__(self) -> bool:
        return self.signal is not None


@dataclass
class Child:
    """One supervised service and its restart bookkeeping."""

    name: str
    command: tuple[str, ...] = ()
    """What to run; empty for a service (`python -m tradebus_<name>`)."""
    process: subprocess.Popen[bytes] | None = None
    ref: ProcessRef | None = None
    started_at: float = 0.0
    delay_s: float | None = None
    restart_at: float = 0.0
    restarts: int = 0
    paused: bool = False
    """Stopped on request: its next start is no restart."""
    actions: list[HealingAction] = field(default_factory=list)


NATS_LOGIN_VARIABLES: Final = ("NATS_USER", "NATS_PASSWORD", "NATS_PASSWORD_FILE", "NATS_CREDENTIALS_DIR")


def stack_env(base: Mapping[str, str], resolved: Mapping[str, Dependency]) -> dict[str, str]:
    """The services' environment: the caller's, `make up` defaults, resolved URLs and ports.
    With the embedded (authenticated) NATS no NATS login of the caller's is passed on: each
    service gets its own (`service_logins`)."""
    env = {**STACK_DEFAULTS, **base}
    if resolved["nats"].credentials_dir:
        for name in NATS_LOGIN_VARIABLES:
            env.pop(name, None)
    env["NATS_URL"] = resolved["nats"].url
    env["DATABASE_URL"] = resolved["postgres"].url
    env["REDIS_URL"] = resolved["redis"].url
    env["PYTHONUNBUFFERED"] = "1"
    for service in PROCESSES:
        env[f"TRADEBUS_{service.upper()}_PORT"] = str(port_for(service))
    return env


def service_logins(nats: Dependency) -> dict[str, dict[str, str]]:
    """Each service's own NATS user and password, for its environment alone (none with NATS_URL's
    server: the caller's environment says how to log in there)."""
    if not nats.credentials_dir:
        return {}
    credentials = Credentials(Path(nats.credentials_dir))
    return {name: {"NATS_USER": name, "NATS_PASSWORD": credentials.password(name)} for name in PROCESSES}


class Supervisor:
    def __init__(
        self,
        run: RunDir,
        env: Mapping[str, str],
        deps: Mapping[str, Dependency],
        policy: RestartPolicy,
        embedded: Embedded | None = None,
    ):
        self.run = run
        self.env = dict(env)
        self.deps = {name: dep.model_copy(update={"url": redact(dep.url)}) for name, dep in deps.items()}
        self.logins = service_logins(deps["nats"])
        self.policy = policy
        self.children = [Child(name) for name in PROCESSES]
        self.me = ProcessRef.of(os.getpid())
        dep_policy = dependency_policy(env)
        servers = {"nats": embedded.nats, "postgres": embedded.postgres} if embedded else {}
        self.watched = [WatchedDependency(name, server, dep_policy) for name, server in servers.items() if server]
        self.metrics_port = int(env.get(SUPERVISOR_PORT_ENV) or SUPERVISOR_PORT)
        targets = {name: f"127.0.0.1:{port_for(name)}" for name in PROCESSES}
        targets[monitoring.SUPERVISOR_JOB] = f"127.0.0.1:{self.metrics_port}"
        self.monitoring = monitoring.plan(
            env, run.path, targets,
            prometheus_port=int(env.get("TRADEBUS_PROMETHEUS_PORT") or PROMETHEUS_PORT),
            alertmanager_port=int(env.get("TRADEBUS_ALERTMANAGER_PORT") or ALERTMANAGER_PORT),
        )  # fmt: skip
        self.monitors = [Child(m.name, command=m.command) for m in self.monitoring.monitors]
        self.paused = False
        for name in (*PROCESSES, *(m.name for m in self.monitors), *(w.name for w in self.watched)):
            RESTARTS.labels(name)  # at 0 from the start, so increase() counts the first restart
        self.watchdog = Watchdog(WatchdogPolicy.from_env(env), list(PROCESSES))
        for name in PROCESSES:
            WATCHDOG_ACTIONS.labels(name)

    def serve_metrics(self) -> None:
        """The restart counters on 127.0.0.1 (a thread of prometheus_client's); a port in use
        costs the counters, never the stack."""
        try:
            start_http_server(self.metrics_port, addr="127.0.0.1")
        except OSError as exc:
            log.warning("supervisor metrics not served", port=self.metrics_port, error=str(exc))

    def start(self, child: Child) -> None:
        with self.run.log_file(child.name).open("ab") as out:
            child.process = subprocess.Popen(
                list(child.command) or [sys.executable, "-m", f"tradebus_{child.name}"],
                env={**self.env, **self.logins.get(child.name, {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.run.path,
            )
        child.ref = ProcessRef.of(child.process.pid)  # now, while it surely exists (at worst as a zombie)
        child.started_at = time.monotonic()

    def reap(self, child: Child, now: float) -> bool:
        """If `child` exited, schedule its restart; True when something changed (a paused one: `pause`)."""
        if child.paused or child.process is None or (code := child.process.poll()) is None:
            return False
        uptime = now - child.started_at
        child.process = child.ref = None
        if code == EXIT_LOGIN_REFUSED:  # its credentials are refused: another start cannot help
            child.restart_at = math.inf
            log.error("service's NATS login refused; not restarting it", service=child.name,
                      log_file=str(self.run.log_file(child.name)))  # fmt: skip
            return True
        child.delay_s = self.policy.next_delay(child.delay_s, uptime)
        child.restart_at = now + child.delay_s
        log.warning(
            "service exited, restarting", service=child.name, exit_code=code, uptime_s=round(uptime, 1),
            restart_in_s=child.delay_s, log_file=str(self.run.log_file(child.name)),
        )  # fmt: skip
        return True

    def loop(self, stop: StopRequest) -> None:
        """Start every service and monitor, then restart whichever exits, until asked to stop."""
        for child in self.supervised:
            self.start(child)
        self.save()
        log.info(
            "stack started", services={c.name: url_for(c.name) for c in self.children},
            monitors={m.name: m.url for m in self.monitoring.monitors}, not_running=dict(self.monitoring.skipped),
        )  # fmt: skip
        while not stop:
            now = time.monotonic()
            changed = self.watch_dependencies(now)
            changed |= self.pause(now)
            if self.watchdog.due(now):
                changed |= self.heal(now)
            for child in self.supervised:
                changed |= self.reap(child, now)
                if child.process is None and now >= child.restart_at and not stop and not child.paused:
                    self.start(child)
                    child.restarts += 1
                    RESTARTS.labels(child.name).inc()
                    log.info("service restarted", service=child.name, restarts=child.restarts)
                    changed = True
            if changed:
                self.save()
            time.sleep(TICK_S)
        log.info("stopping stack", signal=stop.signal)

    def pause(self, now: float) -> bool:
        """Stop every service while the run's pause file exists, start them again (no restart
        counted) once it is gone; True when something changed."""
        wanted = self.run.pause_file.exists()
        changed = False
        for child in self.children:
            if wanted and not child.paused:
                child.paused = True
                if child.process is not None:
                    child.process.terminate()
                    child.restart_at = now + STOP_GRACE_S  # SIGKILL after the grace period
                log.info("service paused", service=child.name)
            elif wanted and child.process is not None and now >= child.restart_at:
                child.process.kill()
            if wanted and child.process is not None and child.process.poll() is not None:
                child.process = child.ref = None
                changed = True
            if not wanted and child.paused:
                child.paused, child.restart_at = False, 0.0
                if child.process is None:
                    self.start(child)
                    log.info("service resumed", service=child.name)
                changed = True
        paused = wanted and all(c.process is None for c in self.children)
        changed |= paused != self.paused
        self.paused = paused
        return changed

    def heal(self, now: float) -> bool:
        """Kill each service the watchdog finds running but not live (the restart path brings it
        back); True when it acted or gave up on one."""
        running = {
            c.name: (url_for(c.name), c.started_at)
            for c in self.children
            if c.process and c.process.poll() is None and not c.paused  # a paused one is being stopped
        }
        verdicts = self.watchdog.round(now, running)
        for child in self.children:
            if child.name not in verdicts or child.process is None:
                continue
            why = verdicts[child.name]
            if not why:
                record = self.watchdog.records[child.name]
                why = f"{record.last_failure}; {self.watchdog.policy.max_per_hour} restarts in the last hour already"
                log.error("service not live; the watchdog leaves it (restart limit)", service=child.name, why=why)
                self._record(child, "left running: restart limit reached", why)
                continue
            log.warning("service not live, the watchdog restarts it", service=child.name, why=why)
            self._record(child, "killed to restart (SIGKILL)", why)
            WATCHDOG_ACTIONS.labels(child.name).inc()
            child.process.kill()
        return bool(verdicts)

    @staticmethod
    def _record(child: Child, what: str, why: str) -> None:
        child.actions = [*child.actions, HealingAction(at=datetime.now(tz=UTC).isoformat(), what=what, why=why)]
        child.actions = child.actions[-ACTIONS_KEPT:]

    def watch_dependencies(self, now: float) -> bool:
        """Restart an embedded dependency that exited; True when its recorded pid changed."""
        changed = False
        for watched in self.watched:
            if watched.tick(now) and (pid := watched.server.pid) is not None:
                if watched.restarts > self.deps[watched.name].restarts:
                    RESTARTS.labels(watched.name).inc()
                dep = self.deps[watched.name]
                self.deps[watched.name] = dep.model_copy(
                    update={"process": ProcessRef.of(pid), "restarts": watched.restarts}
                )
                changed = True
        return changed

    @property
    def supervised(self) -> list[Child]:
        return [*self.children, *self.monitors]

    def save(self) -> None:
        urls = {m.name: m.url for m in self.monitoring.monitors}
        self.run.write_state(
            StackState(
                mode="local",
                supervisor=self.me,
                services={
                    c.name: ServiceState(url=url_for(c.name), process=c.ref, restarts=c.restarts, actions=c.actions)
                    for c in self.children
                },
                monitors={
                    m.name: ServiceState(url=urls[m.name], process=m.ref, restarts=m.restarts) for m in self.monitors
                },
                monitors_skipped=dict(self.monitoring.skipped),
                deps=self.deps,
                paused=self.paused,
            )
        )

    def stop_children(self) -> None:
        """SIGTERM every service and monitor, SIGKILL those still running after the grace period."""
        running = [c.process for c in self.supervised if c.process and c.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("service ignored SIGTERM, killing it", pid=process.pid)
                process.kill()
                process.wait()


def stop_leftovers(run: RunDir) -> None:
    """Stop what a killed supervisor left running (they hold the ports and the embedded data), and
    forget a pause a killed restore left behind (it paused the previous supervisor's services)."""
    run.pause_file.unlink(missing_ok=True)
    previous = run.read_state()
    if previous and previous.mode == "local":
        stopped = stop_processes(previous.processes(), grace_s=STOP_GRACE_S)
        if stopped:
            log.warning("stopped processes left over by a previous supervisor", processes=stopped)
    run.clear_state()


def main() -> None:
    """Run the stack until SIGTERM/SIGINT; exit 1 if another supervisor runs or a dependency fails."""
    configure_logging("supervisor", os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("LOG_FORMAT", "json"))
    stop = StopRequest()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    run = RunDir.from_env().ensure()
    lock = run.lock_supervisor()
    if lock is None:
        log.error("another supervisor is already running this stack", run_dir=str(run.path))
        sys.exit(1)
    resolved: deps.Resolved | None = None
    supervisor: Supervisor | None = None
    try:
        stop_leftovers(run)
        resolved = deps.resolve(
            os.environ.get("NATS_URL"),  # unset: a NATS of the stack's own, with auth on
            os.environ.get("DATABASE_URL", deps.DEFAULT_DATABASE_URL),
            os.environ.get("REDIS_URL", deps.DEFAULT_REDIS_URL),
            run.path,
        )
        log.info("dependencies", **{name: f"{redact(d.url)} ({d.detail})" for name, d in resolved.deps.items()})
        if not stop:
            supervisor = Supervisor(
                run, stack_env(os.environ, resolved.deps), resolved.deps, RestartPolicy(), resolved.embedded
            )
            supervisor.serve_metrics()
            supervisor.loop(stop)
    except Exception:
        log.exception("supervisor failed")
        sys.exit(1)
    finally:
        if supervisor:
            supervisor.watchdog.close()
            supervisor.stop_children()
        if resolved:
            resolved.embedded.stop()
        run.clear_state()
        run.release_supervisor(lock)
        log.info("supervisor stopped")


if __name__ == "__main__":
    main()
