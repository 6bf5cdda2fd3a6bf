"""The `ingest` schema: the published 1m bars and each feed's checkpoint."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

import asyncpg

from tradebus import metrics as shared_metrics
from tradebus.events import Bar

INSERT_BARS: Final = """
INSERT INTO bars (source, symbol, open_time, open, high, low, close, volume, quote_volume, trades)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::numeric[], $5::numeric[], $6::numeric[],
                     $7::numeric[], $8::numeric[], $9::numeric[], $10::bigint[])
ON CONFLICT DO NOTHING
RETURNING source, symbol
"""

ADVANCE_CHECKPOINT: Final = """
INSERT INTO checkpoints AS c (source, symbol, open_time, last_close, bars_stored)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (source, symbol) DO UPDATE SET
    open_time   = GREATEST(c.open_time, EXCLUDED.open_time),
    last_close  = CASE WHEN EXCLUDED.open_time >= c.open_time THEN EXCLUDED.last_close ELSE c.last_close END,
    bars_stored = c.bars_stored + EXCLUDED.bars_stored,
    updated_at  = now()
"""

SELECT_CHECKPOINTS: Final = """
SELECT source, symbol, open_time, last_close, bars_stored, updated_at FROM checkpoints
WHERE $1::text IS NULL OR source = $1
ORDER BY source, symbol
"""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The last bar of `symbol` from `source` that JetStream acked and the database holds."""

    source: str
    symbol: str
    open_time: datetime
    last_close: Decimal
    bars_stored: int
    updated_at: datetime


class IngestRepository:
    """Batched, idempotent writes: a re-stored batch changes nothing and never moves a checkpoint back."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def store(self, bars: Sequence[Bar]) -> None:
        """Insert an acked batch and advance each symbol's checkpoint, in one transaction."""
        if not bars:
            return
        last: dict[tuple[str, str], Bar] = {}
        for bar in bars:
            key = (bar.source.value, bar.symbol)
            if key not in last or bar.open_time > last[key].open_time:
                last[key] = bar
        columns = (
            [b.source.value for b in bars],
            [b.symbol for b in bars],
            [b.open_time for b in bars],
            [b.open for b in bars],
            [b.high for b in bars],
            [b.low for b in bars],
            [b.close for b in bars],
            [b.volume for b in bars],
            [b.quote_volume for b in bars],
            [b.trades for b in bars],
        )
        with shared_metrics.DB_SECONDS.labels("ingest", "store_bars").time():
            async with self._pool.acquire() as conn, conn.transaction():
                inserted = Counter((r["source"], r["symbol"]) for r in await conn.fetch(INSERT_BARS, *columns))
                await conn.executemany(
                    ADVANCE_CHECKPOINT,
                    [(src, sym, bar.open_time, bar.close, inserted[src, sym]) for (src, sym), bar in last.items()],
                )

    async def checkpoints(self, source: str | None = None) -> list[Checkpoint]:
        """Every checkpoint, or those of one source."""
        with shared_metrics.DB_SECONDS.labels("ingest", "checkpoints").time():
            rows = await self._pool.fetch(SELECT_CHECKPOINTS, source)
        return [Checkpoint(**dict(row.items())) for row in rows]
