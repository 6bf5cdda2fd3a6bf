"""One bench run: a private NATS and a PostgreSQL, every benchmark in turn, then the report."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from rich.console import Console

from tradebus.bench import Bench, BenchEnv, Figure, stopwatch
from tradebus_cli.bench import pipeline, report
from tradebus_cli.bench.infra import admin_postgres, private_nats, reset_streams
from tradebus_cli.bench.plugins import service_benches

REPO_ROOT: Final = Path(__file__).resolve().parents[5]
"""The checkout this (editable) package lives in: where bench.json and docs/BENCHMARKS.md go."""

ALIASES: Final = {
    "resources": "replay",
    "latency_p99": "latency",
    "latency_durable_p99": "latency",
    "indicators": "signal",
    "backfill": "aggregator",
    "ingest_replay": "ingest",
}
"""Figure keys accepted by --only, and the benchmark that measures each."""


class UnknownBench(ValueError):
    """--only named no benchmark and no figure key."""


@dataclass(frozen=True, slots=True)
class Options:
    smoke: bool
    only: frozenset[str] | None
    json_path: Path
    docs_path: Path | None


def benches(progress: Callable[[str], None]) -> dict[str, Bench]:
    """Every benchmark by name, the services' own first (they are short), the pipeline's last."""

    def with_progress(fn: Callable[[BenchEnv, Callable[[str], None]], object]) -> Bench:
        return lambda env: fn(env, progress)  # type: ignore[return-value]

    return {
        **service_benches(),
        "replay": with_progress(pipeline.replay),
        "latency": with_progress(pipeline.live_latency),
    }


def select(available: Mapping[str, Bench], only: frozenset[str] | None) -> dict[str, Bench]:
    if only is None:
        return dict(available)
    wanted = {ALIASES.get(name, name) for name in only}
    unknown = wanted - set(available)
    if unknown:
        choices = sorted({*available, *ALIASES})
        raise UnknownBench(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(choices)}")
    return {name: bench for name, bench in available.items() if name in wanted}


async def _run_all(env: BenchEnv, chosen: Mapping[str, Bench], console: Console) -> tuple[list[Figure], list[str]]:
    figures: list[Figure] = []
    failed: list[str] = []
    for name, bench in chosen.items():
        console.log(f"bench {name} …")
        try:
            with stopwatch() as took:
                got = await bench(env)
                await reset_streams(env.nats_url)
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            console.print(f"[bold red]bench {name} failed[/]\n{traceback.format_exc()}")
            failed.append(name)
            continue
        console.log(f"bench {name}: {', '.join(f.key for f in got)} in {took():.0f} s")
        figures.extend(got)
    return figures, failed


def run(console: Console, options: Options) -> int:
    """Run the chosen benchmarks and report; 1 when a benchmark failed or a required figure is missing."""
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # services benched in-process: no INFO lines in the table
    logging.getLogger("httpx").setLevel(logging.WARNING)  # readiness polls
    status = console.status("starting")
    chosen = select(benches(status.update), options.only)
    work_dir = Path(tempfile.mkdtemp(prefix="tradebus-bench-"))
    failed: list[str] = []
    try:
        with stopwatch() as took, status, private_nats(work_dir) as nats_url, admin_postgres(work_dir) as dsn:
            env = BenchEnv(nats_url=nats_url, admin_dsn=dsn, work_dir=work_dir, smoke=options.smoke)

            async def main() -> tuple[list[Figure], list[str]]:
                try:
                    return await _run_all(env, chosen, console)
                finally:
                    await env.drop_databases()

            figures, failed = asyncio.run(main())
    finally:
        if failed:
            console.print(f"logs kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    measured = {f.key for f in figures}
    missing = [key for key in report.REQUIRED if key not in measured] if options.only is None else []
    console.print(report.rich_legend(figures))
    console.print(report.rich_table(figures))
    report.write_json(options.json_path, figures, missing)
    console.print(f"figures written to {options.json_path}")
    if options.docs_path is not None:
        command = "make bench" if sys.argv[1:] == ["bench"] else "tradebus " + " ".join(sys.argv[1:])
        report.update_docs(options.docs_path, figures, missing, command, took())
        console.print(f"table written to {options.docs_path}")
    if missing:
        console.print(f"[bold red]not measured: {', '.join(missing)}[/]")
    return 1 if failed or missing else 0
