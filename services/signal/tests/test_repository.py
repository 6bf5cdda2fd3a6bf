"""The stored bar windows: pruned now and then, never below the window a restart rebuilds from."""

from __future__ import annotations

from signal_testkit import sequence

from tradebus import db
from tradebus.events import BarEvent, Mode
from tradebus_ingest.synthetic import bars_between, start_price
from tradebus_signal.engine import SignalEngine
from tradebus_signal.params import ModelParams
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


async def test_a_chunk_is_stored_once_as_published_with_the_newest_revision(database_url: str) -> None:
    bars = sequence("SOLUSDT", ("5m",))
    events = [BarEvent.of(b, source="aggregator", mode=Mode.LIVE, trace_id=f"t{b.open_ms}") for b in bars]
    out = SignalEngine(("5m",), ModelParams(), WINDOW).apply(events)
    last = bars[-1]
    revised = last.model_copy(update={"close": last.close + 1, "high": max(last.high, last.close + 1), "revision": 1})
    chunk = [*out.bars, revised, bars[-1]]  # a correction and a late copy in the same chunk
    pool = await db.create_pool(database_url, schema="signal")
    try:
        await db.migrate(pool, "signal", "tradebus_signal.migrations")
        repo = Repository(pool)
        for _ in range(2):  # a redelivered chunk changes nothing
            await repo.store(chunk, out.signals, len(bars))
        assert await pool.fetchval("SELECT count(*) FROM signals") == len(out.signals) == len(bars)
        assert await pool.fetchval("SELECT count(*) FROM bars") == len(bars)
        assert await repo.recent_bars("SOLUSDT", "5m", 1) == [revised]
        assert await repo.latest_signal("SOLUSDT") == out.signals[-1].model_dump_json()
    finally:
        await pool.close()
