"""Helpers shared by the aggregator tests: bar builders, a kline CSV reader, a naive reference."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from tradebus.events import Bar, BarSource, make_bar
from tradebus.testing import read_kline_csv
from tradebus.timeframes import MINUTE_MS, Interval, bucket_start, interval_ms

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
    """Binance's 12-column kline CSV as exchange bars."""
    return read_kline_csv(path, symbol, interval, BarSource.BINANCE_REST)


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
            max(b.high for b in traded) if traded else last,
            min(b.low for b in traded) if traded else last,
            last,
            sum((b.volume for b in present), Decimal(0)),
            sum((b.quote_volume for b in present), Decimal(0)),
            sum(b.trades for b in present),
            BarSource.AGGREGATED,
            complete=len(present) == length // MINUTE_MS,
        )
    return out
