"""The ingest repository on a real PostgreSQL: a replay's checkpoints advance without its rows,
each bar counted once however often its batch is advanced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from tradebus import db
from tradebus.events import Bar, BarSource, make_bar
from tradebus.timeframes import MINUTE_MS
from tradebus_ingest.repository import IngestRepository

FIRST_MS = 1_704_067_200_000


def replayed(symbol: str, minutes: range, source: BarSource = BarSource.REPLAY) -> list[Bar]:
    price = Decimal("100")
    return [
        make_bar(
            symbol,
            "1m",
            FIRST_MS + m * MINUTE_MS,
            price,
            price + m,
            price,
            price + m,
            Decimal(m),
            Decimal(0),
            m,
            source,
        )
        for m in minutes
    ]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(database_url, schema="ingest")
    try:
        await db.migrate(pool, "ingest", "tradebus_ingest.migrations")
        yield pool
    finally:
        await pool.close()


async def test_advance_moves_checkpoints_and_counts_each_bar_once(pool: asyncpg.Pool) -> None:
    repo = IngestRepository(pool)
    a, b = replayed("RPLA", range(5)), replayed("RPLB", range(3))
    await repo.advance([*a, *b])
    await repo.advance(a[2:])  # published again after a crash: nothing new
    await repo.advance(replayed("RPLA", range(3, 8)))  # overlaps: 3 new bars
    mixed = [*replayed("RPLA", range(8, 10)), *replayed("RPLA", range(8, 10), BarSource.SYNTHETIC)]
    await repo.advance(mixed)  # each series counts its own bars
    checkpoints = {c.symbol: c for c in await repo.checkpoints(BarSource.REPLAY.value)}
    assert checkpoints["RPLA"].bars_stored == 10 and checkpoints["RPLB"].bars_stored == 3
    assert checkpoints["RPLA"].open_time == replayed("RPLA", range(9, 10))[0].open_time
    assert checkpoints["RPLA"].last_close == Decimal("109")
    await repo.advance(a[:2])  # an older batch never moves a checkpoint back
    assert (await repo.checkpoints(BarSource.REPLAY.value))[0].open_time == checkpoints["RPLA"].open_time
    assert await pool.fetchval("SELECT count(*) FROM bars") == 0
    assert [c.bars_stored for c in await repo.checkpoints(BarSource.SYNTHETIC.value)] == [2]
