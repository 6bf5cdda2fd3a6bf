"""The streaming state machine: publish timing and order, revisions, duplicates, edges, and a property.

The property: for any 1m series (with gaps), shuffled and with duplicates, the last published
version of every closed bucket equals the batch `aggregate`, which equals a naive reference.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.events import Bar
from tradebus.timeframes import HIGHER_INTERVALS, MINUTE_MS, bucket_start, datetime_to_ms, iso_utc, last_minute_of

sys.path.insert(0, str(Path(__file__).parent))
from aggregator_testkit import minute, naive_reference, series

from tradebus_aggregator.buckets import Minute, aggregate
from tradebus_aggregator.stream import DESCENDING, SymbolAggregator


def ms(text: str) -> int:
    return datetime_to_ms(datetime.fromisoformat(text).replace(tzinfo=UTC))


HOUR = ms("2024-03-05T10:00:00")


class Store:
    """Stands in for the table: what was stored, and loads history the way the service does."""

    def __init__(self) -> None:
        self.state = SymbolAggregator("BTCUSDT")
        self.minutes: dict[int, Bar] = {}
        self.published: dict[tuple[str, int], Bar] = {}
        self.emitted: list[Bar] = []

    def feed(self, bars: list[Bar], prune_every: int = 7) -> list[Bar]:
        out: list[Bar] = []
        for i, bar in enumerate(bars):
            if self.state.needs_history(bar.open_ms):
                assert self.state.horizon is not None
                start = bucket_start(bar.open_ms, "1w")
                self.state.load(
                    start,
                    [Minute.of(b) for t, b in self.minutes.items() if start <= t < self.state.horizon],
                    [b for (_, t), b in self.published.items() if start <= t < self.state.horizon],
                )
            outcome = self.state.apply(bar)
            if outcome.stored:
                self.minutes[bar.open_ms] = bar
            for b in outcome.bars:
                self.published[(b.interval, b.open_ms)] = b
            out.extend(outcome.bars)
            if i % prune_every == 0:
                self.state.prune()
        self.emitted.extend(out)
        return out


def names(bars: list[Bar]) -> list[str]:
    return [f"{b.interval}@{iso_utc(b.open_time)[11:16]}" + (f":r{b.revision}" if b.revision else "") for b in bars]


def test_bar_is_published_with_its_last_minute() -> None:
    store = Store()
    assert store.feed([minute(HOUR + i * MINUTE_MS) for i in range(4)]) == []
    (bar,) = store.feed([minute(HOUR + 4 * MINUTE_MS, "101", volume="2")])
    assert (bar.interval, bar.open_ms, bar.complete, bar.revision) == ("5m", HOUR, True, 0)
    assert (bar.close, bar.volume, bar.trades) == (101, 6, 5)


def test_one_minute_closing_many_buckets_publishes_descending() -> None:
    day = ms("2024-03-04T00:00:00")  # a Monday: the minute before closes 1w, 1d, 4h, 1h, 15m and 5m
    store = Store()
    out = store.feed([minute(day - MINUTE_MS * k) for k in range(10_080, 0, -1)])
    closing = [b for b in out if b.close_time.timestamp() * 1000 == day - 1]
    assert [b.interval for b in closing] == list(DESCENDING) == ["1w", "1d", "4h", "1h", "15m", "5m"]
    assert all(b.complete for b in closing)
    assert iso_utc(closing[0].open_time) == "2024-02-26T00:00:00.000Z"


def test_gap_then_late_minute_revises_with_same_id() -> None:
    store = Store()
    out = store.feed([minute(HOUR + i * MINUTE_MS) for i in (0, 1, 3, 4)])
    assert names(out) == ["5m@10:00"] and not out[0].complete
    (revised,) = store.feed([minute(HOUR + 2 * MINUTE_MS, "99", volume="3")])
    assert (revised.revision, revised.complete, revised.low, revised.volume) == (1, True, 99, 7)
    assert store.feed([minute(HOUR + 2 * MINUTE_MS, "99", volume="3")]) == []  # identical duplicate


def test_later_minute_proves_a_bucket_over() -> None:
    store = Store()
    store.feed([minute(HOUR), minute(HOUR + MINUTE_MS)])
    out = store.feed([minute(HOUR + 7 * MINUTE_MS)])
    assert names(out) == ["5m@10:00"] and not out[0].complete


def test_out_of_order_minute_inside_open_bucket_joins_it() -> None:
    store = Store()
    assert store.feed([minute(HOUR + 3 * MINUTE_MS), minute(HOUR), minute(HOUR + 2 * MINUTE_MS)]) == []
    assert store.feed([minute(HOUR + MINUTE_MS, open_="100", high="120", low="90")]) == []
    (bar,) = store.feed([minute(HOUR + 4 * MINUTE_MS, "105")])
    assert (bar.open, bar.high, bar.low, bar.close, bar.revision, bar.complete) == (100, 120, 90, 105, 0, True)


def test_zero_volume_minutes_are_ignored_for_open_high_low() -> None:
    store = Store()
    bars = [
        minute(HOUR, "50", volume="0"),
        minute(HOUR + MINUTE_MS, "101", open_="100", high="102", low="99"),
        minute(HOUR + 2 * MINUTE_MS, "101", high="200", low="1", volume="0"),
        minute(HOUR + 3 * MINUTE_MS, "101", volume="0"),
        minute(HOUR + 4 * MINUTE_MS, "101", volume="0"),
    ]
    (bar,) = store.feed(bars)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (100, 102, 99, 101, 1)
    (flat,) = store.feed([minute(HOUR + i * MINUTE_MS, "101", volume="0") for i in range(5, 10)])
    assert (flat.open, flat.high, flat.low, flat.close, flat.volume) == (101, 101, 101, 101, 0)


def test_stale_revision_of_a_minute_is_ignored_and_a_correction_applies() -> None:
    store = Store()
    store.feed([minute(HOUR + i * MINUTE_MS) for i in range(5)])
    (fixed,) = store.feed([minute(HOUR + 2 * MINUTE_MS, "80", revision=1)])
    assert (fixed.low, fixed.revision) == (80, 1)
    assert store.feed([minute(HOUR + 2 * MINUTE_MS, "70", revision=0)]) == []


def test_late_minute_from_a_pruned_week_is_recomputed_from_history() -> None:
    monday = ms("2024-03-04T00:00:00")
    store = Store()
    store.feed([minute(monday - 10 * MINUTE_MS + i * MINUTE_MS) for i in (0, 1, 3, 4, 5, 6, 7, 8, 9)])
    store.feed([minute(monday + i * MINUTE_MS) for i in range(3)], prune_every=1)
    assert store.state.horizon == monday
    out = store.feed([minute(monday - 8 * MINUTE_MS, "90")])
    assert names(out) == ["1w@00:00:r1", "1d@00:00:r1", "4h@20:00:r1", "1h@23:00:r1", "15m@23:45:r1", "5m@23:50:r1"]
    assert out[-1].complete and out[-1].low == 90 and not out[0].complete


# --------------------------------------------------------------------------- timeframe edges
def test_leap_day_and_month_end_buckets() -> None:
    leap = ms("2024-02-29T00:00:00")
    bars = [minute(leap + i * MINUTE_MS) for i in range(1440)] + [minute(leap + 1440 * MINUTE_MS)]
    days = aggregate(bars, "1d")
    assert [iso_utc(b.open_time) for b in days] == ["2024-02-29T00:00:00.000Z", "2024-03-01T00:00:00.000Z"]
    assert iso_utc(days[0].close_time) == "2024-02-29T23:59:59.999Z" and days[0].complete
    four_h = aggregate(bars, "4h")
    assert iso_utc(four_h[-2].open_time) == "2024-02-29T20:00:00.000Z" and four_h[-2].complete
    jan_end = ms("2024-01-31T23:59:00")
    hours = aggregate([minute(jan_end), minute(jan_end + MINUTE_MS)], "1h")
    assert [iso_utc(b.open_time) for b in hours] == ["2024-01-31T23:00:00.000Z", "2024-02-01T00:00:00.000Z"]


def test_week_starts_monday_midnight_utc() -> None:
    sunday_last = ms("2024-03-03T23:59:00")
    weeks = aggregate([minute(sunday_last), minute(sunday_last + MINUTE_MS)], "1w")
    assert [iso_utc(b.open_time) for b in weeks] == ["2024-02-26T00:00:00.000Z", "2024-03-04T00:00:00.000Z"]
    assert iso_utc(weeks[0].close_time) == "2024-03-03T23:59:59.999Z"


def test_day_boundary_publishes_the_day_with_its_last_minute() -> None:
    midnight = ms("2024-03-06T00:00:00")
    store = Store()
    store.feed([minute(midnight - 3 * MINUTE_MS), minute(midnight - 2 * MINUTE_MS)])
    out = store.feed([minute(midnight - MINUTE_MS)])
    assert [b.interval for b in out] == ["1d", "4h", "1h", "15m", "5m"]  # the week is still open
    assert names(store.feed([minute(midnight)])) == []


# --------------------------------------------------------------------------- the property
@settings(max_examples=60, deadline=None)
@given(series(), st.randoms(use_true_random=False), st.integers(0, 20))
def test_stream_equals_batch_equals_reference(bars: list[Bar], rnd: random.Random, dups: int) -> None:
    feed = bars + [rnd.choice(bars) for _ in range(dups)]
    rnd.shuffle(feed)
    store = Store()
    store.feed(feed, prune_every=rnd.randint(1, 50))
    final = {(b.interval, b.open_ms): b for b in store.emitted}
    latest = max(b.open_ms for b in bars)
    for interval in HIGHER_INTERVALS:
        batch = aggregate(bars, interval)
        reference = naive_reference(bars, interval)
        assert {(b.symbol, b.open_ms): b for b in batch} == reference
        closed = {b.open_ms: b for b in batch if last_minute_of(b.open_ms, interval) <= latest}
        streamed = {t: b.model_copy(update={"revision": 0}) for (iv, t), b in final.items() if iv == interval}
        assert streamed == closed, interval
