"""Rich tables for what `up` and `status` print."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tradebus.events import ReadinessStatus
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


def deps_table(deps: Mapping[str, Dependency]) -> Table:
    table = Table(title="Dependencies", title_justify="left")
    for column in ("dependency", "url", "where", "ok", "detail"):
        table.add_column(column)
    for name, dep in deps.items():
        detail = Text(dep.detail, style="bold red") if "ANONYMOUS" in dep.detail else dep.detail
        table.add_row(name, dep.url, "embedded" if dep.embedded else "external", _ok(dep.ok), detail)
    return table


def monitors_table(state: StackState) -> Table:
    """Prometheus and Alertmanager: where they answer, or why they do not run."""
    table = Table(title="Monitoring", title_justify="left")
    for column in ("monitor", "url", "running", "detail"):
        table.add_column(column)
    for name, monitor in sorted(state.monitors.items()):
        table.add_row(name, monitor.url, _ok(monitor.process is not None), f"restarts: {monitor.restarts}")
    for name, why in sorted(state.monitors_skipped.items()):
        table.add_row(name, "", _ok(False), why)
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
