"""`tradebus`: run the stack, look at it, and put data on its bus."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from tradebus.settings import describe_invalid
from tradebus_cli import logs, stack
from tradebus_cli.buslogin import bus_url

app = typer.Typer(
    help="tradebus: an event-driven crypto trading pipeline on NATS JetStream.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
UsageError: type[Exception] = typer.BadParameter.__mro__[1]
"""click's (typer vendors its own copy of click, whose exceptions it does not export)."""
errors = Console(stderr=True, soft_wrap=True, highlight=False)


def main() -> None:
    """The console script: bad input and failures end in one line on stderr and a non-zero exit,
    never a traceback (`TRADEBUS_DEBUG=1` shows it)."""
    if len(sys.argv) == 1:
        sys.argv.append("--help")
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    known = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    prefix = f"tradebus {command}" if command in known else "tradebus"
    try:
        code = app(standalone_mode=False)
    except UsageError as exc:  # an unknown command, a missing or bad argument or option
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        errors.out(f"{prefix}: {message} (`{prefix} --help`)")
        code = 2
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except ValidationError as exc:  # settings read from the environment
        errors.out(f"{prefix}: {describe_invalid(exc)}")
        code = 2
    except Exception as exc:
        if os.environ.get("TRADEBUS_DEBUG") == "1":
            raise
        errors.out(f"{prefix}: {exc or type(exc).__name__} (TRADEBUS_DEBUG=1 shows the traceback)")
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


@app.command()
def up() -> None:
    """Start the stack (docker compose with a Docker engine, else locally) and wait until it is ready."""
    try:
        code = stack.up(console)
    except KeyboardInterrupt:
        console.print("stopped waiting; the stack keeps starting in the background (`tradebus down` stops it)")
        code = 130
    raise typer.Exit(code)


@app.command()
def down() -> None:
    """Stop the stack started by `up`, and only that."""
    raise typer.Exit(stack.down(console))


@app.command()
def status() -> None:
    """Each service's readiness and telemetry's readiness table; exit 1 when BLOCKED or unreachable."""
    raise typer.Exit(stack.status(console))


@app.command()
def bench(
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny sizes: proves every benchmark runs (no docs).")] = False,
    only: Annotated[str | None, typer.Option(help="Benchmarks or figure keys, e.g. replay,indicators.")] = None,
    json_path: Annotated[str, typer.Option("--json", help="Where to write the figures as JSON.")] = "",
    no_docs: Annotated[bool, typer.Option("--no-docs", help="Do not rewrite docs/BENCHMARKS.md.")] = False,
) -> None:
    """Measure the pipeline against raw NATS / PostgreSQL / TA-Lib baselines on a private bus and database."""
    from pathlib import Path

    from tradebus_cli.bench.runner import REPO_ROOT, Options, UnknownBench, run

    options = Options(
        smoke=smoke,
        only=frozenset(k.strip() for k in only.split(",") if k.strip()) if only else None,
        json_path=Path(json_path) if json_path else REPO_ROOT / "bench.json",
        docs_path=None if no_docs or smoke or only else REPO_ROOT / "docs" / "BENCHMARKS.md",
    )
    try:
        code = run(console, options)
    except UnknownBench as exc:
        raise typer.BadParameter(str(exc), param_hint="--only") from exc
    raise typer.Exit(code)


@app.command(name="logs")
def show_logs(
    service: Annotated[str | None, typer.Argument(help=f"one of: {', '.join(logs.LOG_NAMES)}")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines to show from the end of each log.")] = 50,
) -> None:
    """Show (or follow) the logs of the local stack."""
    if service is not None and service not in logs.LOG_NAMES:
        raise typer.BadParameter(f"unknown service {service!r}; one of: {', '.join(logs.LOG_NAMES)}")
    raise typer.Exit(logs.show(console, service, lines, follow))


@app.command()
def tail(
    subject: Annotated[str, typer.Argument(help="NATS subject, wildcards allowed, e.g. 'bars.>' or 'exec.*.BTCUSDT'.")],
    count: Annotated[int | None, typer.Option("--count", "-c", min=1, help="Stop after N messages.")] = None,
    raw: Annotated[bool, typer.Option("--json", help="Print each payload as it is, one per line.")] = False,
) -> None:
    """Pretty-print live events on SUBJECT (core NATS subscription) until Ctrl-C."""
    from tradebus.subjects import subject_problem
    from tradebus_cli.tail import TailError
    from tradebus_cli.tail import tail as run_tail

    if problem := subject_problem(subject):
        raise typer.BadParameter(f"{subject!r} is not a subject: {problem} (e.g. 'bars.>', 'exec.*.BTCUSDT')")
    try:
        asyncio.run(run_tail(bus_url(), subject, count=count, raw=raw, console=console))
    except TailError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command()
def preflight() -> None:
    """Check the risk configuration in the environment (RISK_*, SYMBOLS) as risk does at start."""
    from tradebus_cli import preflight as check

    raise typer.Exit(check.run(console))


@app.command(name="signal")
def signal_command(
    symbol: Annotated[str, typer.Argument(help="e.g. BTCUSDT")],
    horizons: Annotated[str, typer.Option(help="comma-separated horizons")] = "5m,15m,1h,4h",
    bar_limit: Annotated[int, typer.Option(min=1, help="bars per horizon")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw JSON")] = False,
) -> None:
    """Compute a multi-horizon signal now (POST /v1/signal on the signal service)."""
    from tradebus_cli import signal

    parts = signal.parse_horizons(horizons)
    raise typer.Exit(signal.run(console, symbol, parts, bar_limit, as_json))


@app.command()
def backfill(
    symbols: Annotated[str | None, typer.Option(help="Comma-separated, e.g. BTCUSDT,ETHUSDT (default: SYMBOLS).")] = (
        None
    ),
    days: Annotated[float | None, typer.Option(min=0, help="Days of 1m history (default: BACKFILL_DAYS, 30).")] = None,
) -> None:
    """Fetch missing 1m history from Binance REST (BINANCE_REST_URL) onto the bus; resumable."""
    from tradebus_cli.backfill import backfill_command

    raise typer.Exit(backfill_command(bus_url(), symbols, days, console))


@app.command()
def replay(
    files: Annotated[list[str], typer.Argument(help="Binance 1m kline CSV or zip files (globs allowed).")],
    speed: Annotated[str, typer.Option(help="'max', or a multiple of real time such as 60.")] = "max",
    symbol: Annotated[str | None, typer.Option(help="Symbol of the files when their names do not say it.")] = None,
) -> None:
    """Publish Binance kline files on bars.1m.<SYMBOL> as replayed history."""
    from tradebus_cli.replay import ReplayError
    from tradebus_cli.replay import replay as run_replay
    from tradebus_ingest.replay import parse_speed

    try:
        multiple = parse_speed(speed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--speed") from exc
    try:
        report = asyncio.run(run_replay(bus_url(), files, speed=multiple, symbol=symbol, console=console))
    except ReplayError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print("replay interrupted; what was published stays published (ids are deterministic)")
        raise typer.Exit(130) from None
    table = Table(title="Replay", title_justify="left")
    for column in ("symbol", "bars"):
        table.add_column(column)
    for name, bars in sorted(report.by_symbol.items()):
        table.add_row(name, str(bars))
    console.print(table)
    console.print(
        f"{report.bars_published} bars published from {report.files} file(s), {report.rows_rejected} rows rejected"
    )
    if report.rejected:
        console.print("rejected by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(report.rejected.items())))
