"""Aggregating Binance's real 1m klines reproduces Binance's own 5m, 15m, 1h and 4h klines exactly.

The captures (OctoBot, see tests/data/SOURCES.md) carry open, high, low, close and base volume
only: their quote-volume and trade-count columns are empty, and their 1m range is ~8 h, so no
1d or 1w bucket is whole. Quote volume, trades, 1d and 1w are checked against a naive reference
on synthetic data in test_batch.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tradebus.events import Bar
from tradebus.timeframes import Interval, bucket_start, last_minute_of

sys.path.insert(0, str(Path(__file__).parent))
from aggregator_testkit import DATA, read_klines

from tradebus_aggregator.batch import aggregate_run
from tradebus_aggregator.buckets import aggregate
from tradebus_aggregator.stream import Aggregator

CAPTURES = sorted(p.name.removesuffix(".data.1m.binance.csv") for p in DATA.glob("*.data.1m.binance.csv"))
COMPARED: tuple[Interval, ...] = ("5m", "15m", "1h", "4h")


def _streamed(bars_1m: list[Bar]) -> dict[tuple[str, int], Bar]:
    """The last version of every bar the streaming state machine published."""
    state = Aggregator()
    published: dict[tuple[str, int], Bar] = {}
    for bar in bars_1m:
        for out in state.apply(bar).bars:
            published[(out.interval, out.open_ms)] = out
    return published


def test_every_capture_is_present() -> None:
    assert len(CAPTURES) == 12


@pytest.mark.parametrize("capture", CAPTURES)
def test_aggregated_bars_equal_binance(capture: str) -> None:
    bars_1m = read_klines(DATA / f"{capture}.data.1m.binance.csv", "1m")[:-1]  # last minute was still open
    first, last = bars_1m[0].open_ms, bars_1m[-1].open_ms
    streamed = _streamed(bars_1m)
    batched = aggregate_run("TESTPAIR", bars_1m)
    compared = 0
    for interval in COMPARED:
        ours = {b.open_ms: b for b in aggregate(bars_1m, interval)}
        assert {b.open_ms: b for b in batched[interval]} == ours
        binance = read_klines(DATA / f"{capture}.data.{interval}.binance.csv", interval)[:-1]
        for theirs in binance:
            if theirs.open_ms < first or last_minute_of(theirs.open_ms, interval) > last:
                continue
            mine = ours[theirs.open_ms]
            assert streamed[(interval, theirs.open_ms)] == mine, f"stream and batch differ at {mine.open_time}"
            if not mine.complete:  # BTC/USDT lacks 10:12; Binance's bar saw that minute
                continue
            fields = ("open", "high", "low", "close", "volume")
            assert [getattr(mine, f) for f in fields] == [getattr(theirs, f) for f in fields], (
                f"{capture} {interval} {theirs.open_time}: ours {mine} vs Binance {theirs}"
            )
            compared += 1
    assert compared > 100


def test_missing_minute_marks_its_buckets_incomplete() -> None:
    bars_1m = read_klines(DATA / "AbstractExchangeHistoryCollector_1586017993.616272.data.1m.binance.csv", "1m")[:-1]
    times = {b.open_ms for b in bars_1m}
    missing = [t for t in range(bars_1m[0].open_ms, bars_1m[-1].open_ms, 60_000) if t not in times]
    assert len(missing) == 1, "the BTC/USDT capture lacks exactly 10:12"
    for interval in COMPARED:
        whole = [b for b in aggregate(bars_1m, interval) if b.open_ms >= bars_1m[0].open_ms]
        incomplete = [b.open_ms for b in whole if not b.complete]
        assert incomplete == [bucket_start(missing[0], interval)]
