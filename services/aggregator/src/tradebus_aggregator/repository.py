"""The `aggregator.bars` table: batched idempotent writes, state reloads and the HTTP queries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from tradebus import metrics
from tradebus.events import Bar, BarSource, make_bar
from tradebus.timeframes import Interval, bucket_start, datetime_to_ms, ms_to_datetime
from tradebus_aggregator.buckets import Minute

_COLUMNS = (
    "symbol",
    "interval",
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "complete",
    "revision",
    "source",
)

STAGE = """
CREATE TEMP TABLE IF NOT EXISTS incoming_bars (
    symbol text, interval text, open_time timestamptz, open numeric, high numeric, low numeric, close numeric,
    volume numeric, quote_volume numeric, trades bigint, complete boolean, revision integer, source text, seq integer
) ON COMMIT DELETE ROWS
"""

# A bar replaces a stored one of a lower revision only (a 1m bar's revision comes from ingest's
# corrections, a higher bar's from the aggregator's): a redelivered batch changes nothing, and
# a bar re-sent with other prices at the same revision cannot overwrite the stored one (the
# first of equal revisions wins, in a batch too).
_ON_CONFLICT = """
ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
    open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
    volume = excluded.volume, quote_volume = excluded.quote_volume, trades = excluded.trades,
    complete = excluded.complete, revision = excluded.revision, source = excluded.source, updated_at = now()
WHERE excluded.revision > bars.revision
"""
UPSERT = f"""
INSERT INTO bars ({", ".join(_COLUMNS)})
SELECT DISTINCT ON (symbol, interval, open_time) {", ".join(_COLUMNS)}
FROM incoming_bars
ORDER BY symbol, interval, open_time, revision DESC, seq
{_ON_CONFLICT}"""

# The live edge writes a bar or two at a time: one statement (one round trip), where the COPY
# path takes five (savepoint, COPY in, release, commit). Amounts travel as text, as in COPY.
UPSERT_FEW = f"""
INSERT INTO bars ({", ".join(_COLUMNS)})
SELECT DISTINCT ON (symbol, interval, open_time)
    symbol, interval, open_time, open::numeric, high::numeric, low::numeric, close::numeric,
    volume::numeric, quote_volume::numeric, trades, complete, revision, source
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::text[], $10::bigint[], $11::boolean[], $12::integer[], $13::text[])
     WITH ORDINALITY AS t({", ".join(_COLUMNS)}, seq)
ORDER BY symbol, interval, open_time, revision DESC, seq
{_ON_CONFLICT}"""
FEW: Final = 16
"""Up to this many bars are written by `UPSERT_FEW`, more by COPY."""

LATEST_MINUTES = """
SELECT symbol, max(open_time) AS latest FROM bars
WHERE interval = '1m' AND ($1::text[] IS NULL OR symbol = ANY($1::text[]))
GROUP BY symbol
"""

BARS_BETWEEN = f"""
SELECT {", ".join(_COLUMNS)} FROM bars
WHERE symbol = $1 AND open_time >= $2 AND ($3::timestamptz IS NULL OR open_time < $3)
"""

SELECT_BARS = f"""
SELECT {", ".join(_COLUMNS)} FROM bars
WHERE symbol = $1 AND interval = $2
  AND ($3::timestamptz IS NULL OR open_time >= $3) AND ($4::timestamptz IS NULL OR open_time < $4)
ORDER BY open_time DESC
LIMIT $5
"""

COUNT_BARS = "SELECT symbol, interval, bars AS n FROM bar_counts ORDER BY symbol"


@dataclass(frozen=True, slots=True)
class History:
    """A symbol's stored bars from `start_ms` on: its 1m minutes and its published higher bars."""

    symbol: str
    start_ms: int
    minutes: list[Minute]
    published: list[Bar]


def _bar(row: asyncpg.Record) -> Bar:
    return make_bar(
        row["symbol"],
        row["interval"],
        datetime_to_ms(row["open_time"]),
        row["open"],
        row["high"],
        row["low"],
        row["close"],
        row["volume"],
        row["quote_volume"],
        row["trades"],
        BarSource(row["source"]),
        complete=row["complete"],
        revision=row["revision"],
    )


def _minute(row: asyncpg.Record) -> Minute:
    return Minute(
        datetime_to_ms(row["open_time"]),
        row["open"],
        row["high"],
        row["low"],
        row["close"],
        row["volume"],
        row["quote_volume"],
        row["trades"],
        row["revision"],
    )


def _copy_row(bar: Bar) -> str:
    """`bar` as a line of COPY's text format, without the newline (no value holds a tab, newline or
    backslash: symbols are alphanumeric). PostgreSQL reads the decimal text into the same numeric,
    value and scale, as asyncpg's binary COPY, which spends twice the client CPU on numerics.
    `str`, not f-string formatting: `Decimal.__format__` is five times slower."""
    return "\t".join(
        (
            bar.symbol,
            bar.interval,
            str(bar.open_time),
            str(bar.open),
            str(bar.high),
            str(bar.low),
            str(bar.close),
            str(bar.volume),
            str(bar.quote_volume),
            str(bar.trades),
            "t" if bar.complete else "f",
            str(bar.revision),
            bar.source.value,
        )
    )


def _columns(bars: Sequence[Bar]) -> tuple[list[object], ...]:
    """`bars` as one array per column of `UPSERT_FEW`, amounts as decimal text."""
    return (
        [b.symbol for b in bars],
        [b.interval for b in bars],
        [b.open_time for b in bars],
        [str(b.open) for b in bars],
        [str(b.high) for b in bars],
        [str(b.low) for b in bars],
        [str(b.close) for b in bars],
        [str(b.volume) for b in bars],
        [str(b.quote_volume) for b in bars],
        [b.trades for b in bars],
        [b.complete for b in bars],
        [b.revision for b in bars],
        [b.source.value for b in bars],
    )


async def _copy(
    conn: asyncpg.pool.PoolConnectionProxy, table: str, columns: Sequence[str], lines: Iterable[str]
) -> None:
    """COPY `lines` into `table`, handed over as one chunk (a file-like source is read in a worker
    thread, which cost more than the COPY itself)."""
    await conn.copy_to_table(table, source=_once("".join(lines).encode()), columns=columns, format="text")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class BarRepository:
    """SQL on the aggregator's schema; every write is one COPY plus one upsert per batch."""

    def __init__(self, pool: asyncpg.Pool, service: str = "aggregator") -> None:
        self._pool = pool
        self._service = service

    async def save(self, bars: Sequence[Bar]) -> None:
        """Store `bars` (1m and higher) idempotently; a higher revision replaces, the first of equals stays.

        One COPY straight into the table when every row is new (the common case, and a backfill's);
        when any row exists already, the COPY fails as a whole and the rows go through a staged
        upsert instead, in the same transaction.
        """
        if not bars:
            return
        if len(bars) <= FEW:
            with metrics.DB_SECONDS.labels(self._service, "save_bars").time():
                await self._pool.execute(UPSERT_FEW, *_columns(bars))
            return
        rows = [_copy_row(b) for b in bars]
        with metrics.DB_SECONDS.labels(self._service, "save_bars").time():
            async with self._pool.acquire() as conn, conn.transaction():
                try:
                    async with conn.transaction():  # new rows only (a backfill, the live edge): straight in
                        await _copy(conn, "bars", _COLUMNS, (f"{row}\n" for row in rows))
                    return
                except asyncpg.UniqueViolationError:
                    pass  # a redelivery, a correction or a revision: staged and upserted below
                await conn.execute(STAGE)
                staged = (f"{row}\t{seq}\n" for seq, row in enumerate(rows))
                await _copy(conn, "incoming_bars", (*_COLUMNS, "seq"), staged)
                await conn.execute(UPSERT)

    async def histories(self, symbols: Sequence[str] | None = None) -> list[History]:
        """For each stored symbol (or those given): its bars since the week of its latest minute."""
        with metrics.DB_SECONDS.labels(self._service, "load_state").time():
            async with self._pool.acquire() as conn:
                latest = await conn.fetch(LATEST_MINUTES, list(symbols) if symbols is not None else None)
                out = []
                for row in latest:
                    start = bucket_start(datetime_to_ms(row["latest"]), "1w")
                    out.append(await self._history(conn, row["symbol"], start, None))
                return out

    async def history(self, symbol: str, start_ms: int, end_ms: int) -> History:
        """A symbol's stored bars with open time in [start_ms, end_ms) (for a late minute)."""
        with metrics.DB_SECONDS.labels(self._service, "load_history").time():
            async with self._pool.acquire() as conn:
                return await self._history(conn, symbol, start_ms, end_ms)

    async def _history(
        self, conn: asyncpg.pool.PoolConnectionProxy, symbol: str, start_ms: int, end_ms: int | None
    ) -> History:
        end = ms_to_datetime(end_ms) if end_ms is not None else None
        rows = await conn.fetch(BARS_BETWEEN, symbol, ms_to_datetime(start_ms), end)
        minutes = [_minute(r) for r in rows if r["interval"] == "1m"]
        published = [_bar(r) for r in rows if r["interval"] != "1m"]
        return History(symbol, start_ms, minutes, published)

    async def bars(
        self, symbol: str, interval: Interval, start: datetime | None, end: datetime | None, limit: int
    ) -> list[Bar]:
        """The newest `limit` bars in [start, end), oldest first."""
        with metrics.DB_SECONDS.labels(self._service, "select_bars").time():
            rows = await self._pool.fetch(SELECT_BARS, symbol, interval, start, end, limit)
        return [_bar(r) for r in reversed(rows)]

    async def counts(self) -> dict[str, dict[str, int]]:
        """Bar counts per symbol and interval (kept by a trigger, see V002)."""
        with metrics.DB_SECONDS.labels(self._service, "count_bars").time():
            rows = await self._pool.fetch(COUNT_BARS)
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["symbol"], {})[r["interval"]] = r["n"]
        return out
