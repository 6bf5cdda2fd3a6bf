"""The signal schema: recent bars per series and every emitted signal (idempotent writes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg

from tradebus import metrics
from tradebus.events import Bar, SignalEvent
from tradebus.timeframes import interval_ms

_BAR_COLUMNS: Final = (
    "symbol",
    "interval",
    "open_time",
    "close_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "complete",
    "source",
    "revision",
)
_COLUMNS: Final = ", ".join(_BAR_COLUMNS)

UPSERT_BAR: Final = f"""
INSERT INTO bars ({_COLUMNS}) VALUES ({", ".join(f"${i}" for i in range(1, len(_BAR_COLUMNS) + 1))})
ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
    close_time = EXCLUDED.close_time, open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
    close = EXCLUDED.close, volume = EXCLUDED.volume, quote_volume = EXCLUDED.quote_volume,
    trades = EXCLUDED.trades, complete = EXCLUDED.complete, source = EXCLUDED.source,
    revision = EXCLUDED.revision
WHERE bars.revision < EXCLUDED.revision
"""

PRUNE_BARS: Final = """
DELETE FROM bars WHERE symbol = $1 AND interval = $2 AND open_time < (
    SELECT open_time FROM bars WHERE symbol = $1 AND interval = $2
    ORDER BY open_time DESC OFFSET $3 - 1 LIMIT 1)
"""

PRUNE_EVERY: Final = 64
"""A series is pruned when one of its bars lands on every 64th slot of its interval, so it keeps
at most `window` + 63 bars: one DELETE per 64 bars instead of one per bar (a sorted scan with an
offset, on the latency path of every signal)."""

INSERT_SIGNAL: Final = """
INSERT INTO signals (event_id, symbol, interval, bar_time, state, confidence, mode, trace_id, event)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
ON CONFLICT (event_id) DO NOTHING
"""

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
        """Bars, signals and the pruning of bars beyond `window`, in one transaction."""
        if not bars and not signals:
            return
        series = sorted({(b.symbol, b.interval) for b in bars if _prune_slot(b)})
        with metrics.DB_SECONDS.labels("signal", "store").time():
            async with self._pool.acquire() as conn, conn.transaction():
                if bars:
                    await conn.executemany(UPSERT_BAR, [_bar_row(b) for b in bars])
                    if series:
                        await conn.executemany(PRUNE_BARS, [(sym, iv, window) for sym, iv in series])
                if signals:
                    await conn.executemany(INSERT_SIGNAL, [_signal_row(e) for e in signals])

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
