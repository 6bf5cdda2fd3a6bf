"""`tradebus up | down | status`: run the stack with docker compose when an engine answers, else locally."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Final

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from tradebus.natsauth import Credentials
from tradebus.settings import CONSOLE, PROCESSES, url_for
from tradebus_cli import probe
from tradebus_cli.processes import alive, kill, terminate, wait_gone
from tradebus_cli.render import (
    GRAFANA_URL,
    connect_lines,
    deps_table,
    healing_table,
    monitors_table,
    print_readiness,
    progress_bar,
    services_table,
)
from tradebus_cli.rundir import SUPERVISOR_MODULE, RunDir, StackState, repo_root

READY_TIMEOUT_S: Final = 90.0
DOWN_GRACE_S: Final = 30.0
POLL_S: Final = 0.5
VERDICT_WAIT_S: Final = 15.0
LOG_TAIL_LINES: Final = 30


class StackError(Exception):
    """The stack could not be brought to the requested state; the message says why."""


def docker_engine_answers() -> bool:
    """True when docker compose should run the stack (`TRADEBUS_LOCAL=1` forces the local mode)."""
    if os.environ.get("TRADEBUS_LOCAL") == "1" or shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def default_urls() -> dict[str, str]:
    return {service: url_for(service) for service in PROCESSES}


def service_urls(state: StackState | None) -> dict[str, str]:
    return {name: s.url for name, s in state.services.items()} if state and state.services else default_urls()


# --------------------------------------------------------------------------- up
def up(console: Console) -> int:
    default_urls()  # a bad TRADEBUS_<SERVICE>_PORT fails here, before anything starts
    run = RunDir.from_env().ensure()
    state = run.read_state()
    if (state and state.mode == "docker") or run.supervisor_process():
        console.print("[bold]tradebus is already running[/]")
        return status(console)
    try:
        if docker_engine_answers():
            _up_docker(console, run)
        else:
            _up_local(console, run)
    except StackError as exc:
        console.print(f"[bold red]{exc}[/]")
        return 1
    console.print("[bold green]tradebus is up[/]")
    status(console, run)
    page = service_urls(run.read_state()).get(CONSOLE, "")
    console.print(f"[bold]the trader's console:[/] {page}/")
    return 0


def compose(run: RunDir, *args: str) -> list[str]:
    """`docker compose` reading the stack's NATS credentials (and `.env`, which `--env-file` would hide)."""
    command = ["docker", "compose"]
    if (dotenv := repo_root() / ".env").exists():
        command += ["--env-file", str(dotenv)]
    return [*command, "--env-file", str(Credentials(run.credentials).compose_env), *args]


def _up_docker(console: Console, run: RunDir) -> None:
    console.print("Docker engine found: [bold]docker compose up -d --build[/]")
    Credentials(run.credentials).generate()  # fresh at every `up`: the containers are recreated with them
    console.print(f"NATS credentials written to {run.credentials} (mode 0600)")
    code = subprocess.run(compose(run, "up", "-d", "--build"), cwd=repo_root(), check=False).returncode
    if code != 0:
        raise StackError(f"docker compose up failed (exit code {code})")
    run.write_state(StackState(mode="docker"))
    asyncio.run(_wait_ready(console, run, None))


def _up_local(console: Console, run: RunDir) -> None:
    console.print(f"No Docker engine (or TRADEBUS_LOCAL=1): running locally, run dir [bold]{run.path}[/]")
    with run.log_file("supervisor").open("ab") as out:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", SUPERVISOR_MODULE],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=run.path,
        )
    try:
        asyncio.run(_wait_ready(console, run, supervisor))
    except StackError:
        _print_log_tail(console, run, "supervisor")
        raise


def wait_ready(console: Console, run: RunDir) -> int:
    """Wait for the running stack's services to be ready again (after `restore` resumed them)."""
    try:
        asyncio.run(_wait_ready(console, run, None))
    except StackError as exc:
        console.print(f"[bold red]{exc}[/]")
        return 1
    console.print("[bold green]services ready[/]")
    return 0


async def _wait_ready(console: Console, run: RunDir, supervisor: subprocess.Popen[bytes] | None) -> None:
    """Show progress until every service answers ready; StackError on timeout or supervisor exit."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    with progress_bar(console, transient=True) as progress:
        task = progress.add_task("resolving NATS, PostgreSQL, Redis", total=len(PROCESSES))
        async with probe.client() as client:
            while True:
                if supervisor is not None and supervisor.poll() is not None:
                    raise StackError(f"the supervisor exited with code {supervisor.returncode}")
                state = run.read_state()
                if supervisor is None or (state and state.supervisor and state.supervisor.pid == supervisor.pid):
                    healths = await probe.probe_all(client, service_urls(state))
                    ready = [h.service for h in healths if h.ready]
                    waiting = [h.service for h in healths if not h.ready]
                    progress.update(task, completed=len(ready), description=f"waiting for {', '.join(waiting)}")
                    if not waiting:
                        break
                if time.monotonic() > deadline:
                    raise StackError(
                        f"not ready within {READY_TIMEOUT_S:.0f} s; it keeps starting in the background "
                        f"(`tradebus status`, `tradebus logs`, `tradebus down`)"
                    )
                await asyncio.sleep(POLL_S)
            progress.update(task, description="waiting for telemetry's first readiness verdict")
            await _wait_verdict(client, service_urls(run.read_state())["telemetry"], deadline)


async def _wait_verdict(client: httpx.AsyncClient, telemetry_url: str, deadline: float) -> None:
    """Give telemetry a few heartbeats to hear from every service, so the table `up` prints means something."""
    deadline = min(deadline, time.monotonic() + VERDICT_WAIT_S)
    while time.monotonic() < deadline:
        if (await probe.fetch_readiness(client, telemetry_url)).usable:
            return
        await asyncio.sleep(POLL_S)


def _print_log_tail(console: Console, run: RunDir, name: str) -> None:
    path = run.log_file(name)
    if path.exists():
        lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        console.print(f"[dim]last lines of {path}:[/]")
        console.out("\n".join(lines), highlight=False)


# --------------------------------------------------------------------------- status
async def _gather(state: StackState | None) -> tuple[list[probe.ServiceHealth], probe.ReadinessReport]:
    urls = service_urls(state)
    async with probe.client() as client:
        return await asyncio.gather(probe.probe_all(client, urls), probe.fetch_readiness(client, urls["telemetry"]))


def status(console: Console, run: RunDir | None = None) -> int:
    """Print services, dependencies and readiness; 0 when READY or DEGRADED, else 1."""
    run = run or RunDir.from_env()
    state = run.read_state()
    service_urls(state)  # a bad TRADEBUS_<SERVICE>_PORT fails before anything is printed
    if state is None and not run.supervisor_running():
        console.print(f"[dim]no local stack recorded in {run.path}; probing the default URLs[/]")
    healths, report = asyncio.run(_gather(state))
    console.print(services_table(healths))
    if state and state.deps:
        console.print(deps_table(state.deps))
        for line in connect_lines(state.deps):
            console.print(line, soft_wrap=True, highlight=False)
    if run.pause_file.exists():
        console.print(f"[bold yellow]services paused by `tradebus restore` (delete {run.pause_file} to resume)[/]")
    if state and state.mode == "local":
        console.print(monitors_table(state))
    elif state and state.mode == "docker":
        console.print(f"Prometheus http://127.0.0.1:9090, Alertmanager http://127.0.0.1:9093, Grafana {GRAFANA_URL}")
    if state and any(service.actions for service in state.services.values()):
        console.print(healing_table(state))
    print_readiness(console, report)
    return 0 if report.usable else 1


# --------------------------------------------------------------------------- down
def down(console: Console) -> int:
    """Stop this run's stack: SIGTERM to the supervisor (which stops its children and embedded deps),
    or to what a killed supervisor left behind; SIGKILL whatever still runs after 30 s."""
    run = RunDir.from_env()
    state = run.read_state()
    if state and state.mode == "docker":
        code = subprocess.run(compose(run, "down"), cwd=repo_root(), check=False).returncode
        if code == 0:
            run.clear_state()
            console.print("docker compose stack stopped")
        return code
    targets = _run_processes(run, state)
    if not targets:
        console.print("nothing running")
        run.clear_state()
        return 0
    supervisor = targets.get("supervisor")
    terminate({"supervisor": supervisor} if supervisor else targets)
    with console.status(f"stopping {len(targets)} processes"):
        left = wait_gone(targets, DOWN_GRACE_S)
    if left:
        console.print(f"[yellow]still running after {DOWN_GRACE_S:.0f} s, killing: {', '.join(sorted(left))}[/]")
        kill(left)
    if not run.supervisor_running():
        run.clear_state()
        run.pid_file.unlink(missing_ok=True)
    console.print(_stopped_table(targets))
    return 0


def _run_processes(run: RunDir, state: StackState | None) -> dict[str, psutil.Process]:
    """Everything of this run still alive: recorded processes plus the supervisor's descendants."""
    targets = alive(state.processes()) if state else {}
    supervisor = run.supervisor_process()
    if supervisor:
        targets["supervisor"] = supervisor
        known = {p.pid for p in targets.values()}
        for child in supervisor.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.pid not in known:
                    targets[f"pid {child.pid} ({child.name()})"] = child
    return targets


def _stopped_table(stopped: Mapping[str, psutil.Process]) -> Table:
    table = Table(title="Stopped", title_justify="left")
    table.add_column("process")
    table.add_column("pid", justify="right")
    for name, process in sorted(stopped.items()):
        table.add_row(name, str(process.pid))
    return table
