"""The vectorised batch path: the same events as the streaming path, and the same bars as a naive
reference, for any feed — including a week and more, where 1d and 1w buckets complete (the real
captures span ~8 h of 1m, so 1d/1w exactness, like quote volume and trades, which the captures
lack, is checked here on synthetic data)."""

from __future__ import annotations

import random
import sys
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.events import Bar
from tradebus.timeframes import HIGHER_INTERVALS, MINUTE_MS, last_minute_of

sys.path.insert(0, str(Path(__file__).parent))
from aggregator_testkit import SERIES_BASE, Table, minute, naive_reference, series

from tradebus_aggregator.batch import aggregate_run
from tradebus_aggregator.stream import Aggregator

ONE_BY_ONE = 10**9
"""A run threshold no batch reaches: every minute takes the streaming path."""


def disorder(bars: list[Bar], rnd: random.Random, late: int, dups: int) -> list[Bar]:
    """Ascending bars with `late` of them delivered later than their place and `dups` repeated."""
    feed = list(bars)
    for _ in range(min(late, len(feed) - 1)):
        bar = feed.pop(rnd.randrange(len(feed)))
        feed.insert(rnd.randrange(len(feed) + 1), bar)
    for _ in range(dups):
        feed.insert(rnd.randrange(len(feed) + 1), rnd.choice(bars))
    return feed


def batches(feed: list[Bar], rnd: random.Random) -> list[list[Bar]]:
    out, pos = [], 0
    while pos < len(feed):
        size = rnd.choice((1, 7, 50, 300, 1000))
        out.append(feed[pos : pos + size])
        pos += size
    return out


def run(feed: list[list[Bar]], threshold: int) -> Table:
    table = Table(threshold)
    for chunk in feed:
        table.feed(chunk)
    return table


def check_final(table: Table, bars: list[Bar]) -> None:
    """The last version of every closed bucket equals the naive reference."""
    latest = {}
    for bar in bars:
        latest[bar.symbol] = max(latest.get(bar.symbol, 0), bar.open_ms)
    for interval in HIGHER_INTERVALS:
        reference = naive_reference(bars, interval)
        closed = {k: b for k, b in reference.items() if last_minute_of(k[1], interval) <= latest[k[0]]}
        mine = {
            (s, t): b.model_copy(update={"revision": 0}) for (s, iv, t), b in table.published.items() if iv == interval
        }
        assert mine == closed, interval


@settings(max_examples=80, deadline=None)
@given(series(), series(), st.randoms(use_true_random=False), st.integers(0, 6), st.integers(0, 10), st.integers(2, 40))
def test_batch_path_publishes_what_streaming_publishes(
    btc: list[Bar], eth: list[Bar], rnd: random.Random, late: int, dups: int, threshold: int
) -> None:
    eth = [b.model_copy(update={"symbol": "ETHUSDT"}) for b in eth]
    bars = sorted(btc + eth, key=lambda b: b.open_ms)  # two symbols interleaved, as ingest sends them
    feed = batches(disorder(bars, rnd, late, dups), rnd)
    streamed = run(feed, ONE_BY_ONE)
    batched = run(feed, threshold)
    assert batched.emitted == streamed.emitted  # same bars, revisions, flags, order, closing minute
    check_final(batched, bars)


def synthetic_weeks(rnd: random.Random, minutes: int) -> list[Bar]:
    """Two and a bit weeks of 1m bars with a random walk, quote volumes, trades and idle minutes."""
    price, bars = 20_000, []
    for i in range(minutes):
        step = rnd.randint(-30, 30)
        idle = rnd.random() < 0.05
        o, c = price, price + (0 if idle else step)
        price = c
        open_, close = Decimal(f"{o}.{(i - 1) % 100:02d}"), Decimal(f"{c}.{i % 100:02d}")
        bars.append(
            minute(
                SERIES_BASE + i * MINUTE_MS,
                close,
                open_=open_,
                high=max(open_, close) + (0 if idle else rnd.randint(1, 9)),
                low=min(open_, close) - (0 if idle else rnd.randint(1, 9)),
                volume="0" if idle else f"{rnd.randint(1, 10**7)}.{rnd.randint(0, 10**8):08d}",
                trades=0 if idle else rnd.randint(1, 500),
            )
        )
    return bars


def test_days_and_weeks_are_exact_on_every_field() -> None:
    bars = synthetic_weeks(random.Random(7), 3 * 10_080)
    bars = [b for b in bars if b.open_ms % (97 * MINUTE_MS)]  # a few missing minutes
    batch = aggregate_run("BTCUSDT", bars)
    streamed = Aggregator()
    published = {}
    for bar in bars:
        for out in streamed.apply(bar).bars:
            published[(out.interval, out.open_ms)] = out
    for interval in ("1d", "1w"):
        reference = naive_reference(bars, interval)
        assert {("BTCUSDT", b.open_ms): b for b in batch[interval]} == reference
        closed = [b for b in batch[interval] if last_minute_of(b.open_ms, interval) <= bars[-1].open_ms]
        assert len(closed) == (21 if interval == "1d" else 3)
        for bar in closed:
            assert published[(interval, bar.open_ms)] == bar
