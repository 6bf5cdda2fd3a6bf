"""`tradebus backfill`: missing 1m history from Binance REST onto the bus and into ingest's series.

It runs the ingest service's own repair (`BinanceSeries.repair`): the stored series says which
minutes are missing, they are fetched in pages of 1000 within the request-weight limit
(429/418 and `Retry-After` honoured) and published page by page, each page stored once
JetStream acked it — so an interrupted backfill resumes where the stored series ends, and a
second run fetches only what is still missing. A running ingest service sees the same series.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg
from pydantic import ValidationError
from rich.console import Console

from tradebus import db
from tradebus.bus import Publisher, ensure_streams
from tradebus.embedded import nats_answers
from tradebus.natsauth import LoginRefused
from tradebus_cli import buslogin
from tradebus_cli.deps import DEFAULT_DATABASE_URL
from tradebus_cli.render import progress_bar
from tradebus_cli.rundir import stack_url
from tradebus_ingest.binance.rest import BinanceRest, RestUnavailable
from tradebus_ingest.binance.series import BinanceSeries, RepairProgress
from tradebus_ingest.clock import WallClock
from tradebus_ingest.repository import IngestRepository
from tradebus_ingest.settings import IngestSettings

_DAY_MS: Final = 86_400_000
BACKFILL_USER: Final = "ingest"
"""A backfill publishes 1m bars and writes ingest's series: it does ingest's job, as ingest."""


class BackfillError(Exception):
    """The backfill could not run or finish (bus, database or Binance unreachable)."""


@dataclass(frozen=True, slots=True)
class BackfillReport:
    symbols: tuple[str, ...]
    progress: RepairProgress

    @property
    def already_stored(self) -> int:
        """Minutes of the window the repair examined that it found stored."""
        return self.progress.examined - self.progress.total

    @property
    def without_data(self) -> int:
        """Missing minutes the exchange has no kline for (before a listing, during an outage)."""
        return self.progress.total - self.progress.published


async def backfill(
    *, nats_url: str, database_url: str, symbols: Sequence[str], days: float, console: Console
) -> BackfillReport:
    settings = IngestSettings(symbols=tuple(symbols), backfill_days=days)  # BINANCE_* from the environment
    if not nats_answers(nats_url):
        raise BackfillError(buslogin.unreachable(nats_url))
    try:
        pool = await db.create_pool(database_url, schema="ingest", wait_s=5.0)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise BackfillError(f"cannot reach PostgreSQL at {database_url}: {exc}") from exc
    try:
        client = await buslogin.connect(BACKFILL_USER, nats_url)
    except LoginRefused as exc:
        await pool.close()
        raise BackfillError(str(exc)) from None
    rest = BinanceRest.configured(settings)
    try:
        await db.migrate(pool, "ingest", "tradebus_ingest.migrations")
        js = client.jetstream()
        await ensure_streams(js)
        series = BinanceSeries(
            symbols=settings.symbols,
            publisher=Publisher(client, "cli"),
            repository=IngestRepository(pool),
            rest=rest,
            clock=WallClock(),
            history_ms=round(days * _DAY_MS),
            close_grace_ms=round(settings.binance_close_grace_s * 1000),
        )
        with progress_bar(console) as bar:
            task = bar.add_task(f"backfilling {len(settings.symbols)} symbol(s), {days:g} day(s)", total=None)

            def advance(progress: RepairProgress) -> None:
                bar.update(task, total=progress.total, completed=progress.done)

            progress = await series.repair(on_progress=advance)
    except RestUnavailable as exc:
        raise BackfillError(
            f"Binance REST at {settings.binance_rest_url}: {exc}; what was fetched is stored, run again to resume"
        ) from exc
    finally:
        await rest.aclose()
        await client.drain()
        await pool.close()
    return BackfillReport(settings.symbols, progress)


def backfill_command(nats_url: str, symbols: str | None, days: float | None, console: Console) -> int:
    """`tradebus backfill`: run, print what was done; the exit code (1 when it could not finish)."""
    try:
        defaults = IngestSettings() if symbols is None else IngestSettings(symbols=symbols)
    except ValidationError as exc:
        console.print(f"[bold red]bad --symbols / SYMBOLS: {exc.errors()[0]['msg']}[/]")
        return 2
    window = defaults.backfill_days if days is None else days
    try:
        report = asyncio.run(
            backfill(
                nats_url=nats_url,
                database_url=stack_url("DATABASE_URL", "postgres", DEFAULT_DATABASE_URL),
                symbols=defaults.symbols,
                days=window,
                console=console,
            )
        )
    except BackfillError as exc:
        console.print(f"[bold red]{exc}[/]")
        return 1
    except KeyboardInterrupt:
        console.print("backfill interrupted; what was published is stored, run again to resume")
        return 130
    console.print(
        f"{report.progress.published} bars published for {', '.join(report.symbols)} ({window:g} day(s)); "
        f"{report.already_stored} minutes were already stored, {report.without_data} have no data on the exchange"
    )
    return 0
