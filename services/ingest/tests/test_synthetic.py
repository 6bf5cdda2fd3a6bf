"""The synthetic generator: seeded, reproducible, consistent bars on a path that trends."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.events import BarSource
from tradebus.timeframes import MINUTE_MS, close_time_ms, datetime_to_ms
from tradebus_ingest import synthetic

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def test_same_seed_gives_identical_bars_and_another_seed_does_not() -> None:
    first = list(synthetic.bars_between(42, "BTCUSDT", T0, T0 + 299 * MINUTE_MS, Decimal("30000")))
    again = list(synthetic.bars_between(42, "BTCUSDT", T0, T0 + 299 * MINUTE_MS, Decimal("30000")))
    other = list(synthetic.bars_between(43, "BTCUSDT", T0, T0 + 299 * MINUTE_MS, Decimal("30000")))
    assert first == again
    assert [b.close for b in first] != [b.close for b in other]
    assert len(first) == 300
    assert [b.open_ms for b in first] == list(range(T0, T0 + 300 * MINUTE_MS, MINUTE_MS))


def test_resuming_from_a_stored_close_continues_the_identical_path() -> None:
    whole = list(synthetic.bars_between(7, "ETHUSDT", T0, T0 + 199 * MINUTE_MS, Decimal("2000")))
    head, tail_start = whole[:120], whole[120].open_ms
    resumed = list(synthetic.bars_between(7, "ETHUSDT", tail_start, T0 + 199 * MINUTE_MS, head[-1].close))
    assert resumed == whole[120:]


def test_each_bar_opens_at_the_previous_close() -> None:
    bars = list(synthetic.bars_between(1, "SOLUSDT", T0, T0 + 99 * MINUTE_MS, synthetic.start_price("SOLUSDT")))
    assert bars[0].open == Decimal("100")
    assert all(b.open == a.close for a, b in itertools.pairwise(bars))


def test_start_prices() -> None:
    assert synthetic.start_price("BTCUSDT") == Decimal("30000")
    assert synthetic.start_price("ETHUSDT") == Decimal("2000")
    assert synthetic.start_price("XRPUSDT") == Decimal("100")


def test_the_path_has_multi_hour_trends() -> None:
    """Four-hour moves well beyond what the minute noise alone would give, in both directions."""
    bars = list(synthetic.bars_between(42, "BTCUSDT", T0, T0 + 7 * 1_440 * MINUTE_MS, Decimal("30000")))
    closes = [b.close for b in bars]
    moves = [closes[i + 240] / closes[i] - 1 for i in range(0, len(closes) - 240, 240)]
    assert max(moves) > Decimal("0.015")
    assert min(moves) < Decimal("-0.015")
    assert min(closes) > Decimal("15000") and max(closes) < Decimal("60000")


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    symbol=st.sampled_from(["BTCUSDT", "ETHUSDT", "DOGEUSDT", "X"]),
    minute=st.integers(min_value=0, max_value=60 * 24 * 365 * 40),
    prev_close=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000000"), places=2),
)
def test_every_bar_is_consistent(seed: int, symbol: str, minute: int, prev_close: Decimal) -> None:
    open_ms = minute * MINUTE_MS
    bar = synthetic.next_bar(seed, symbol, open_ms, prev_close)
    assert bar == synthetic.next_bar(seed, symbol, open_ms, prev_close)
    assert bar.ohlc_problem() is None
    assert bar.open == prev_close
    assert bar.low >= synthetic.TICK
    for price in (bar.open, bar.high, bar.low, bar.close):
        assert price == price.quantize(synthetic.TICK)
    assert bar.volume > 0 and bar.volume == bar.volume.quantize(synthetic.STEP)
    assert bar.low * bar.volume <= bar.quote_volume <= bar.high * bar.volume
    assert isinstance(bar.trades, int) and bar.trades >= 1
    assert bar.source is BarSource.SYNTHETIC and bar.interval == "1m"
    assert datetime_to_ms(bar.close_time) == close_time_ms(open_ms, "1m")


def test_histories_begun_at_any_minute_of_a_day_agree() -> None:
    """Two fresh stacks started hours apart (BACKFILL_DAYS before now) publish the same prices."""
    day = datetime_to_ms(datetime(2026, 3, 2, tzinfo=UTC))
    last = day + 20 * 60 * MINUTE_MS

    def history(first_ms: int) -> dict[int, Decimal]:
        previous = synthetic.close_before(42, "BTCUSDT", first_ms)
        return {b.open_ms: b.close for b in synthetic.bars_between(42, "BTCUSDT", first_ms, last, previous)}

    early, late = history(day + 3 * 60 * MINUTE_MS + 17 * MINUTE_MS), history(day + 11 * 60 * MINUTE_MS)
    assert len(late) == 9 * 60 + 1
    assert {ms: early[ms] for ms in late} == late
    assert synthetic.close_before(42, "BTCUSDT", day) == synthetic.start_price("BTCUSDT")
