"""The signal schema: recent bars per series and every emitted signal (idempotent writes)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg

from tradebus import metrics
from tradebus.events import Bar, SignalEvent
from tradebus.timeframes import interval_ms

_BAR_FIELDS: Final = (
    ("symbol", "text"),
    ("interval", "text"),
    ("open_time", "timestamptz"),
    ("close_time", "timestamptz"),
    ("open", "numeric"),
    ("high", "numeric"),
    ("low", "numeric"),
    ("close", "numeric"),
    ("volume", "numeric"),
    ("quote_volume", "numeric"),
    ("trades", "integer"),
    ("complete", "boolean"),
    ("source", "text"),
    ("revision", "integer"),
)
_SIGNAL_FIELDS: Final = (
    ("event_id", "text"),
    ("symbol", "text"),
    ("interval", "text"),
    ("bar_time", "timestamptz"),
    ("state", "text"),
    ("confidence", "numeric"),
    ("mode", "text"),
    ("trace_id", "text"),
    ("event", "json"),
)
_COLUMNS: Final = ", ".join(name for name, _ in _BAR_FIELDS)


def _insert_unnest(table: str, fields: tuple[tuple[str, str], ...], first: int) -> str:
    """`INSERT INTO table (…) SELECT * FROM unnest($first::type[], …)`: one array parameter per
    column, zipped back into rows."""
    columns = ", ".join(name for name, _ in fields)
    arrays = ", ".join(f"${first + i}::{kind}[]" for i, (_, kind) in enumerate(fields))
    return f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays})"


STORE: Final = f"""
WITH upserted AS (
    {_insert_unnest("bars", _BAR_FIELDS, 1)}
    ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
        close_time = EXCLUDED.close_time, open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
        close = EXCLUDED.close, volume = EXCLUDED.volume, quote_volume = EXCLUDED.quote_volume,
        trades = EXCLUDED.trades, complete = EXCLUDED.complete, source = EXCLUDED.source,
        revision = EXCLUDED.revision
    WHERE bars.revision < EXCLUDED.revision
)
{_insert_unnest("signals", _SIGNAL_FIELDS, len(_BAR_FIELDS) + 1)}
ON CONFLICT (event_id) DO NOTHING
"""
"""A chunk's bars and signals in one statement (so one transaction) of one array per column:
one round trip, parse and plan instead of a transaction of three `executemany`. A signal's
event is stored as the published text (`json` only checks its syntax)."""

PRUNE_BARS: Final = """
DELETE FROM bars WHERE symbol = $1 AND interval = $2 AND open_time < (
    SELECT open_time FROM bars WHERE symbol = $1 AND interval = $2
    ORDER BY open_time DESC OFFSET $3 - 1 LIMIT 1)
"""

PRUNE_EVERY: Final = 64
"""A series is pruned when one of its bars lands on every 64th slot of its interval, so it keeps
at most `window` + 63 bars: one DELETE per 64 bars instead of one per bar (a sorted scan with an
offset, on the latency path of every signal)."""

LOAD_WINDOWS: Final = f"""
SELECT {_COLUMNS} FROM (
    SELECT *, row_number() OVER (PARTITION BY symbol, interval ORDER BY open_time DESC) AS rn
    FROM bars
    WHERE interval = ANY($1::text[]) AND ($2::text[] IS NULL OR symbol = ANY($2::text[]))
) recent
WHERE rn <= $3
ORDER BY symbol, interval, open_time
"""

RECENT_BARS: Final = f"""
SELECT {_COLUMNS} FROM (
    SELECT {_COLUMNS} FROM bars
    WHERE symbol = $1 AND interval = $2 AND ($3::timestamptz IS NULL OR open_time <= $3)
    ORDER BY open_time DESC LIMIT $4
) recent
ORDER BY open_time
"""

LATEST_SIGNAL: Final = """
SELECT event::text FROM signals WHERE symbol = $1 ORDER BY bar_time DESC LIMIT 1
"""


def _bar_row(bar: Bar) -> tuple[Any, ...]:
    return (
        bar.symbol,
        bar.interval,
        bar.open_time,
        bar.close_time,
        bar.open,
        bar.high,
        bar.low,
        bar.close,
        bar.volume,
        bar.quote_volume,
        bar.trades,
        bar.complete,
        bar.source.value,
        bar.revision,
    )


def _bar(record: asyncpg.Record) -> Bar:
    return Bar.model_validate(dict(record.items()))


def _prune_slot(bar: Bar) -> bool:
    return bar.open_ms // interval_ms(bar.interval) % PRUNE_EVERY == 0


def _newest(bars: Sequence[Bar]) -> list[Bar]:
    """One bar per key, its highest revision (the first of equals), as upserting them one by one
    would leave it: a statement may not upsert a row twice."""
    newest: dict[tuple[str, str, datetime], Bar] = {}
    for bar in bars:
        key = (bar.symbol, bar.interval, bar.open_time)
        kept = newest.get(key)
        if kept is None or bar.revision > kept.revision:
            newest[key] = bar
    return list(newest.values())


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """`rows` as one list per column: the arrays `unnest` zips back into rows."""
    return [[row[i] for row in rows] for i in range(width)]


def _signal_row(event: SignalEvent) -> tuple[Any, ...]:
    s = event.data
    return (
        event.event_id,
        s.symbol,
        s.interval,
        s.bar_time,
        s.state.value,
        s.confidence,
        event.mode.value,
        event.trace_id,
        event.model_dump_json(),
    )


class Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def store(self, bars: Sequence[Bar], signals: Sequence[SignalEvent], window: int) -> None:
        """Bars and signals in one statement; with the pruning of bars beyond `window` in the same
        transaction when a series is due for it."""
        if not bars and not signals:
            return
        due = sorted({(b.symbol, b.interval) for b in bars if _prune_slot(b)})
        columns = [
            *_columns([_bar_row(b) for b in _newest(bars)], len(_BAR_FIELDS)),
            *_columns([_signal_row(e) for e in signals], len(_SIGNAL_FIELDS)),
        ]
        with metrics.DB_SECONDS.labels("signal", "store").time():
            async with self._pool.acquire() as conn, conn.transaction() if due else contextlib.nullcontext():
                await conn.execute(STORE, *columns)
                if due:
                    await conn.executemany(PRUNE_BARS, [(sym, iv, window) for sym, iv in due])

    async def load_windows(
        self, intervals: Sequence[str], window: int, symbols: Sequence[str] | None = None
    ) -> list[Bar]:
        """The last `window` bars of every stored series of `intervals` (optionally of `symbols`)."""
        with metrics.DB_SECONDS.labels("signal", "load_windows").time():
            rows = await self._pool.fetch(LOAD_WINDOWS, list(intervals), list(symbols) if symbols else None, window)
        return [_bar(r) for r in rows]

    async def recent_bars(self, symbol: str, interval: str, limit: int, until: datetime | None = None) -> list[Bar]:
        """Up to `limit` bars of one series opening at or before `until`, oldest first."""
        with metrics.DB_SECONDS.labels("signal", "recent_bars").time():
            rows = await self._pool.fetch(RECENT_BARS, symbol, interval, until, limit)
        return [_bar(r) for r in rows]

    async def latest_signal(self, symbol: str) -> str | None:
        """The JSON of the newest stored signal event of `symbol`."""
        with metrics.DB_SECONDS.labels("signal", "latest_signal").time():
            value: str | None = await self._pool.fetchval(LATEST_SIGNAL, symbol)
        return value
