"""Helpers shared by the aggregator tests: bar builders, a kline CSV reader, a naive reference,
and the service's batch loop over an in-memory table."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from hypothesis import strategies as st

from tradebus.events import Bar, BarSource, make_bar
from tradebus.testing import read_kline_csv
from tradebus.timeframes import MINUTE_MS, Interval, bucket_start, datetime_to_ms, interval_ms
from tradebus_aggregator.buckets import Minute
from tradebus_aggregator.stream import Aggregator

SERIES_BASE = datetime_to_ms(datetime(2024, 3, 3, 21, tzinfo=UTC))
"""Three hours before a Monday: buckets of every interval end inside a generated series."""

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"


def minute(
    open_ms: int,
    close: str | Decimal = "100",
    *,
    symbol: str = "BTCUSDT",
    open_: str | Decimal | None = None,
    high: str | Decimal | None = None,
    low: str | Decimal | None = None,
    volume: str | Decimal = "1",
    trades: int = 1,
    revision: int = 0,
) -> Bar:
    """A 1m bar; open/high/low default to the close (a flat minute)."""
    c = Decimal(close)
    o = Decimal(open_) if open_ is not None else c
    h = Decimal(high) if high is not None else max(o, c)
    lo = Decimal(low) if low is not None else min(o, c)
    v = Decimal(volume)
    return make_bar(symbol, "1m", open_ms, o, h, lo, c, v, v * c, trades, BarSource.SYNTHETIC, revision=revision)


def read_klines(path: Path, interval: Interval, symbol: str = "TESTPAIR") -> list[Bar]:
    """Binance's 12-column kline CSV as exchange bars, without the klines whose open time is not
    a bucket start: in the July 2018 captures, 4h klines after an exchange maintenance opened at
    02:00, 06:00… (all outside the compared range); no tradebus bar may be so."""
    with path.open() as fh:
        aligned = [row for row in fh if row.strip() and _aligned(int(row.split(",")[0]), interval)]
    with tempfile.TemporaryDirectory() as tmp:
        kept = Path(tmp) / path.name
        kept.write_text("".join(aligned))
        return read_kline_csv(kept, symbol, interval, BarSource.BINANCE_REST)


def _aligned(open_ms: int, interval: Interval) -> bool:
    return bucket_start(open_ms, interval) == open_ms


def naive_reference(bars_1m: Iterable[Bar], interval: Interval) -> dict[tuple[str, int], Bar]:
    """The rule spelled out the slow way: walk every minute of every bucket that has one."""
    by_minute = {(b.symbol, b.open_ms): b for b in sorted(bars_1m, key=lambda b: b.revision)}
    length = interval_ms(interval)
    starts = sorted({(s, bucket_start(t, interval)) for s, t in by_minute})
    out: dict[tuple[str, int], Bar] = {}
    for symbol, start in starts:
        present = [by_minute[(symbol, t)] for t in range(start, start + length, MINUTE_MS) if (symbol, t) in by_minute]
        traded = [b for b in present if b.volume > 0]
        last = present[-1].close
        out[(symbol, start)] = make_bar(
            symbol,
            interval,
            start,
            traded[0].open if traded else last,
            max(*(b.high for b in traded), last) if traded else last,
            min(*(b.low for b in traded), last) if traded else last,
            last,
            sum((b.volume for b in present), Decimal(0)),
            sum((b.quote_volume for b in present), Decimal(0)),
            sum(b.trades for b in present),
            BarSource.AGGREGATED,
            complete=len(present) == length // MINUTE_MS,
        )
    return out


class Table:
    """Runs the state machine the way the service does, batch by batch, over an in-memory table:
    load the weeks that late minutes need, `apply_batch`, store, prune."""

    def __init__(self, run_threshold: int) -> None:
        self.state = Aggregator()
        self.run_threshold = run_threshold
        self.minutes: dict[tuple[str, int], Bar] = {}
        self.published: dict[tuple[str, str, int], Bar] = {}
        self.emitted: list[tuple[int, Bar]] = []
        self.fed = 0

    def feed(self, bars: list[Bar]) -> None:
        for bar in bars:
            state = self.state.of(bar.symbol)
            if state.needs_history(bar.open_ms):
                assert state.horizon is not None
                start, end = bucket_start(bar.open_ms, "1w"), state.horizon
                state.load(
                    start,
                    [Minute.of(b) for (s, t), b in self.minutes.items() if s == bar.symbol and start <= t < end],
                    [b for (s, _, t), b in self.published.items() if s == bar.symbol and start <= t < end],
                )
        outcome = self.state.apply_batch(bars, self.run_threshold)
        for bar in outcome.stored:
            self.minutes[(bar.symbol, bar.open_ms)] = bar
        for i, bar in outcome.bars:
            self.published[(bar.symbol, bar.interval, bar.open_ms)] = bar
            self.emitted.append((self.fed + i, bar))
        for symbol in {b.symbol for b in bars}:
            self.state.of(symbol).prune()
        self.fed += len(bars)


runs = st.lists(st.tuples(st.integers(0, 1600), st.integers(1, 70)), min_size=1, max_size=6)
prices = st.integers(1, 10_000)


@st.composite
def series(draw: st.DrawFn) -> list[Bar]:
    """1m bars in runs with gaps, some of them zero-volume, ascending."""
    offsets = sorted({start + i for start, length in draw(runs) for i in range(length)})
    bars: list[Bar] = []
    for off in offsets:
        zero = draw(st.booleans()) and draw(st.booleans())
        o, c = draw(prices), draw(prices)
        spread = draw(st.integers(0, 50))
        if zero:  # a minute without trades stays at the last price, as Binance's do
            last = bars[-1].close if bars else Decimal(f"{c}.{off % 97}")
            bars.append(minute(SERIES_BASE + off * MINUTE_MS, last, volume="0", trades=0))
            continue
        bars.append(
            minute(
                SERIES_BASE + off * MINUTE_MS,
                f"{c}.{off % 97}",
                open_=f"{o}.5",
                high=f"{max(o, c) + spread + 1}",
                low=f"{max(min(o, c) - spread, 0)}",
                volume=f"{draw(st.integers(1, 10**6))}.{off % 13}",
                trades=draw(st.integers(1, 99)),
            )
        )
    return bars
