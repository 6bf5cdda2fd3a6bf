"""The stored bar windows: pruned now and then, never below the window a restart rebuilds from."""

from __future__ import annotations

from tradebus import db
from tradebus_ingest.synthetic import bars_between, start_price
from tradebus_signal.repository import PRUNE_EVERY, Repository

WINDOW = 20


async def test_windows_keep_the_newest_bars_and_stay_bounded(database_url: str) -> None:
    first = 1_704_067_200_000
    bars = list(bars_between(7, "ETHUSDT", first, first + 299 * 60_000, start_price("ETHUSDT")))
    assert len(bars) > WINDOW + 2 * PRUNE_EVERY
    pool = await db.create_pool(database_url, schema="signal")
    try:
        await db.migrate(pool, "signal", "tradebus_signal.migrations")
        repo = Repository(pool)
        for done, bar in enumerate(bars, start=1):  # one bar a batch, as at the live edge
            await repo.store([bar], [], WINDOW)
            stored = await pool.fetchval("SELECT count(*) FROM bars")
            assert min(done, WINDOW) <= stored <= WINDOW + PRUNE_EVERY - 1
        window = await repo.load_windows(["1m"], WINDOW)
        assert [b.open_time for b in window] == [b.open_time for b in bars[-WINDOW:]]
    finally:
        await pool.close()
