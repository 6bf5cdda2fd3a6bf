"""The two write paths of `BarRepository.save` store the same table: a few bars in one upsert
statement (the live edge), many through COPY with a staged upsert for rows that exist."""

from __future__ import annotations

import random
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg

from tradebus import db
from tradebus.events import Bar
from tradebus_aggregator.repository import FEW, BarRepository

sys.path.insert(0, str(Path(__file__).parent))
from aggregator_testkit import minute

T0 = 1_700_000_040_000 // 60_000 * 60_000

SNAPSHOT = """
SELECT symbol, interval, open_time, open::text, high::text, low::text, close::text, volume::text,
       quote_volume::text, trades, complete, revision, source
FROM bars ORDER BY symbol, interval, open_time
"""


def _stream(seed: int) -> list[Bar]:
    """Minutes with redeliveries, rewrites (same revision, other close) and stale revisions."""
    rnd = random.Random(seed)
    out: list[Bar] = []
    for i in range(3 * FEW):
        bar = minute(T0 + i * 60_000, Decimal(100 + i) / 7, volume="0.00000001", revision=1)
        out.append(bar)
        if rnd.random() < 0.3:
            out.append(bar)  # a redelivery
        if rnd.random() < 0.2:
            out.append(minute(T0 + i * 60_000, "42.5", revision=1))  # a rewrite at the same revision loses
        if rnd.random() < 0.2:
            out.append(minute(T0 + i * 60_000, "7", revision=0))  # a stale revision loses
    return out


async def _stored(database_url: str, schema: str, chunks: list[list[Bar]]) -> list[asyncpg.Record]:
    pool = await db.create_pool(database_url, schema=schema)
    try:
        await db.migrate(pool, schema, "tradebus_aggregator.migrations")
        repo = BarRepository(pool)
        for chunk in chunks:
            await repo.save(chunk)
        return await pool.fetch(SNAPSHOT)
    finally:
        await pool.close()


async def test_few_at_a_time_stores_what_one_copy_stores(database_url: str) -> None:
    bars = _stream(seed=5)
    few = [bars[i : i + 3] for i in range(0, len(bars), 3)]
    assert len(bars) > FEW and all(len(chunk) <= FEW for chunk in few)
    once = await _stored(database_url, "aggregator", [bars, bars])  # the second time: all rows exist
    again = await _stored(database_url, "aggregator_few", few)
    assert once == again
    assert not {"42.5", "7"} & {r["close"] for r in once}
    assert {r["volume"] for r in once} == {"0.00000001"}
