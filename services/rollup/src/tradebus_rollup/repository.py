"""SQL of the rollup schema: stored trades, performance tables with their outbox, job bookkeeping.

All writes are idempotent: a trade is keyed by its id, a performance row by its day or
strategy and only rewritten when its figures' `revision` changed. Recomputations run under one
transaction-level advisory lock, so with several instances the last writer of a row has
always read every trade committed before it — no older figures can overwrite newer ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Final, NamedTuple

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from prometheus_client.context_managers import Timer

from tradebus import metrics
from tradebus.events import DailyPerformance, Mode, PerformanceFigures, StrategyPerformance, TradeEvent
from tradebus_rollup.performance import ClosedTrade

SERVICE: Final = "rollup"

FIGURE_COLUMNS: Final = tuple(PerformanceFigures.model_fields)

INSERT_TRADE: Final = """
INSERT INTO trades (trade_id, event_id, trace_id, mode, symbol, strategy, direction, quantity, entry_price,
                    exit_price, entry_time, exit_time, gross_pnl, fees, net_pnl, exit_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (trade_id) DO NOTHING"""

_TRADE_FACTS: Final = "SELECT trade_id, strategy, exit_time, gross_pnl, fees, net_pnl, mode FROM trades"
TRADES_BETWEEN: Final = f"{_TRADE_FACTS} WHERE exit_time >= $1 AND exit_time < $2"
TRADES_OF_STRATEGIES: Final = f"{_TRADE_FACTS} WHERE strategy = ANY($1::text[])"
STRATEGIES_BETWEEN: Final = "SELECT DISTINCT strategy FROM trades WHERE exit_time >= $1 AND exit_time < $2"

RECOMPUTE_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtext('tradebus.rollup.recompute'))"
EOD_TRY_LOCK: Final = "SELECT pg_try_advisory_lock(hashtext('tradebus.rollup.eod'))"
EOD_UNLOCK: Final = "SELECT pg_advisory_unlock(hashtext('tradebus.rollup.eod'))"
EOD_DONE: Final = "SELECT EXISTS (SELECT 1 FROM eod_runs WHERE day = $1)"
EOD_RECORD: Final = "INSERT INTO eod_runs (day, instance) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING"

TOTALS: Final = """
WITH curve AS (SELECT net_pnl, sum(net_pnl) OVER (ORDER BY exit_time, trade_id) AS cumulative FROM trades)
SELECT count(*) AS trades,
       count(*) FILTER (WHERE net_pnl > 0) AS wins,
       coalesce(sum(net_pnl), 0) AS net_pnl,
       greatest(coalesce(max(cumulative), 0), 0) AS peak
FROM curve"""
LATEST_DAY_PNL: Final = "SELECT net_pnl FROM daily_performance ORDER BY day DESC LIMIT 1"
DAILY_BETWEEN: Final = """
SELECT * FROM daily_performance
WHERE ($1::date IS NULL OR day >= $1) AND ($2::date IS NULL OR day <= $2)
ORDER BY day"""
ALL_STRATEGIES: Final = "SELECT * FROM strategy_performance ORDER BY strategy"


class TableSql(NamedTuple):
    """The statements shared by both performance tables, which differ only in their key."""

    name: str
    upsert: str
    unpublished: str
    mark_published: str


def _table_sql(name: str, key: str, key_type: str) -> TableSql:
    columns = (key, *FIGURE_COLUMNS, "mode", "revision")
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*columns[1:], "computed_at"))
    return TableSql(
        name=name,
        upsert=f"""INSERT INTO {name} ({", ".join(columns)}, computed_at) VALUES ({placeholders}, now())
                   ON CONFLICT ({key}) DO UPDATE SET {updates}
                   WHERE {name}.revision IS DISTINCT FROM EXCLUDED.revision""",
        unpublished=f"""SELECT {key} AS key, * FROM {name} WHERE published_revision IS DISTINCT FROM revision
                        ORDER BY {key} LIMIT $1""",
        mark_published=f"""UPDATE {name} AS t SET published_revision = v.revision
                           FROM unnest($1::{key_type}[], $2::text[]) AS v(key, revision)
                           WHERE t.{key} = v.key AND t.revision = v.revision""",
    )


DAILY: Final = _table_sql("daily_performance", "day", "date")
STRATEGY: Final = _table_sql("strategy_performance", "strategy", "text")


@dataclass(frozen=True, slots=True)
class PerformanceRow:
    """One revision of a day's or a strategy's figures."""

    key: date | str
    figures: PerformanceFigures
    mode: Mode
    revision: str


@dataclass(frozen=True, slots=True)
class Totals:
    """Every stored trade at once, for the gauges."""

    trades: int
    wins: int
    net_pnl: Decimal
    peak: Decimal
    latest_day_pnl: Decimal | None


def _figures(record: asyncpg.Record) -> PerformanceFigures:
    return PerformanceFigures(**{c: record[c] for c in FIGURE_COLUMNS})


def _closed_trade(record: asyncpg.Record) -> ClosedTrade:
    return ClosedTrade(
        trade_id=record["trade_id"],
        strategy=record["strategy"],
        exit_time=record["exit_time"],
        gross_pnl=record["gross_pnl"],
        fees=record["fees"],
        net_pnl=record["net_pnl"],
        mode=Mode(record["mode"]),
    )


def _timed(query: str) -> Timer:
    return metrics.DB_SECONDS.labels(SERVICE, query).time()


class Recomputation:
    """Reads and writes of one recomputation, inside its locked transaction."""

    def __init__(self, conn: PoolConnectionProxy) -> None:
        self._conn = conn

    async def trades_between(self, start: datetime, end: datetime) -> list[ClosedTrade]:
        with _timed("trades_between"):
            return [_closed_trade(r) for r in await self._conn.fetch(TRADES_BETWEEN, start, end)]

    async def trades_of(self, strategies: Sequence[str]) -> list[ClosedTrade]:
        with _timed("trades_of_strategies"):
            return [_closed_trade(r) for r in await self._conn.fetch(TRADES_OF_STRATEGIES, list(strategies))]

    async def strategies_between(self, start: datetime, end: datetime) -> list[str]:
        with _timed("strategies_between"):
            return [r["strategy"] for r in await self._conn.fetch(STRATEGIES_BETWEEN, start, end)]

    async def upsert(self, table: TableSql, rows: Sequence[PerformanceRow]) -> None:
        """Write each row unless the stored one already has the same revision."""
        args = [
            (row.key, *(getattr(row.figures, c) for c in FIGURE_COLUMNS), row.mode.value, row.revision) for row in rows
        ]
        with _timed(f"upsert_{table.name}"):
            await self._conn.executemany(table.upsert, args)


class RollupRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def store_trades(self, events: Sequence[TradeEvent]) -> None:
        """Insert the trades; one already stored (a redelivery) is left as it is."""
        args = [
            (
                t.trade_id,
                e.event_id,
                e.trace_id,
                e.mode.value,
                t.symbol,
                t.strategy,
                t.direction.value,
                t.quantity,
                t.entry_price,
                t.exit_price,
                t.entry_time,
                t.exit_time,
                t.gross_pnl,
                t.fees,
                t.net_pnl,
                t.exit_reason,
            )
            for e in events
            for t in (e.data,)
        ]
        with _timed("insert_trades"):
            await self._pool.executemany(INSERT_TRADE, args)

    @asynccontextmanager
    async def recomputation(self) -> AsyncIterator[Recomputation]:
        """A transaction holding the recompute lock (one recomputation at a time, cluster-wide)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(RECOMPUTE_LOCK)
            yield Recomputation(conn)

    async def unpublished(self, table: TableSql, limit: int) -> list[PerformanceRow]:
        """Rows whose latest revision has not been published yet (the outbox)."""
        with _timed(f"unpublished_{table.name}"):
            records = await self._pool.fetch(table.unpublished, limit)
        return [PerformanceRow(r["key"], _figures(r), Mode(r["mode"]), r["revision"]) for r in records]

    async def mark_published(self, table: TableSql, rows: Sequence[PerformanceRow]) -> None:
        """Record the revisions as published (unless a newer one was written meanwhile)."""
        with _timed(f"mark_published_{table.name}"):
            await self._pool.execute(table.mark_published, [r.key for r in rows], [r.revision for r in rows])

    async def daily(self, first: date | None, last: date | None) -> list[DailyPerformance]:
        with _timed("daily_between"):
            records = await self._pool.fetch(DAILY_BETWEEN, first, last)
        return [DailyPerformance(day=r["day"], **_figures(r).model_dump()) for r in records]

    async def strategies(self) -> list[StrategyPerformance]:
        with _timed("all_strategies"):
            records = await self._pool.fetch(ALL_STRATEGIES)
        return [StrategyPerformance(strategy=r["strategy"], **_figures(r).model_dump()) for r in records]

    async def totals(self) -> Totals:
        with _timed("totals"):
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(TOTALS)
                latest = await conn.fetchval(LATEST_DAY_PNL)
        assert row is not None
        return Totals(row["trades"], row["wins"], row["net_pnl"], row["peak"], latest)

    @asynccontextmanager
    async def eod_lock(self) -> AsyncIterator[bool]:
        """Try the cluster-wide end-of-day lock; yields whether this instance holds it."""
        async with self._pool.acquire() as conn:
            held = bool(await conn.fetchval(EOD_TRY_LOCK))
            try:
                yield held
            finally:
                if held:
                    await conn.execute(EOD_UNLOCK)

    async def eod_done(self, day: date) -> bool:
        return bool(await self._pool.fetchval(EOD_DONE, day))

    async def record_eod(self, day: date, instance: str) -> None:
        await self._pool.execute(EOD_RECORD, day, instance)
