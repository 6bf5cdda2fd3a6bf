"""Real Binance klines from the repository's test data, as floats or as tradebus bars."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

from tradebus.events import Bar, BarSource, make_bar
from tradebus.testing import read_kline_csv
from tradebus.timeframes import Interval, bucket_start, interval_ms, last_minute_of, minutes_in

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"


def csv_files(interval: str) -> list[Path]:
    return sorted(DATA.glob(f"*.data.{interval}.binance.csv"))


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return [row for row in csv.reader(f) if row]


def read_bars(path: Path, symbol: str, interval: Interval) -> list[Bar]:
    """The file's bars, as the aggregator would publish them."""
    return read_kline_csv(path, symbol, interval, BarSource.AGGREGATED)


def aggregate(minutes: list[Bar], intervals: tuple[Interval, ...]) -> list[Bar]:
    """Higher bars from 1m bars in the aggregator's publish order: by close time, and for bars
    closing together, descending interval. A bucket missing minutes is `complete=False`."""
    by_close: list[tuple[int, Bar]] = []
    for interval in intervals:
        buckets: dict[int, list[Bar]] = {}
        for m in minutes:
            buckets.setdefault(bucket_start(m.open_ms, interval), []).append(m)
        for start, ms in sorted(buckets.items()):
            if ms[-1].open_ms != last_minute_of(start, interval):
                continue  # still open at the end of the data
            bar = make_bar(
                ms[0].symbol,
                interval,
                start,
                ms[0].open,
                max(m.high for m in ms),
                min(m.low for m in ms),
                ms[-1].close,
                sum((m.volume for m in ms), Decimal(0)),
                sum((m.quote_volume for m in ms), Decimal(0)),
                sum(m.trades for m in ms),
                BarSource.AGGREGATED,
                complete=len(ms) == minutes_in(interval),
            )
            by_close.append((start + interval_ms(interval), bar))
    return [bar for _, bar in sorted(by_close, key=lambda t: (t[0], -interval_ms(t[1].interval)))]


def sequence(symbol: str = "ETHUSDT", intervals: tuple[Interval, ...] = ("5m", "15m", "1h")) -> list[Bar]:
    """Aggregated bars of a real 1m capture (about 8 hours of ETH/USDT)."""
    path = next(p for p in csv_files("1m") if "ETH_USDT" in p.name)
    return aggregate(read_bars(path, symbol, "1m"), intervals)
