"""Exact aggregation of 1m bars into one higher bar, by Binance's rules (pure, no I/O).

Binance emits a 1m bar for a minute without trades (volume 0, O=H=L=C at the previous close)
but its higher bars ignore such minutes for open, high and low: the open is the first *traded*
minute's open and high/low span traded minutes only; a bucket without any trade is a flat bar
at the carried price (its last minute's close) with volume 0. Close is always the last minute's
close and volumes and trade counts are summed, all in Decimal so sums are exact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from tradebus.events import Bar, BarSource, make_bar
from tradebus.timeframes import Interval, bucket_start, minutes_in

_ZERO = Decimal(0)


class Minute(NamedTuple):
    """A 1m bar reduced to what aggregation needs (kept in memory for the open week; a tuple
    because the batch path makes one per minute)."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    revision: int = 0

    @classmethod
    def of(cls, bar: Bar, open_ms: int | None = None) -> Minute:
        """`bar` reduced; pass its `open_ms` when already known (it is a datetime conversion)."""
        at = bar.open_ms if open_ms is None else open_ms
        return cls(at, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.quote_volume, bar.trades, bar.revision)


@dataclass(slots=True)
class Bucket:
    """The running aggregate of one higher bar; minutes may be added in any order, once each."""

    symbol: str
    interval: Interval
    open_ms: int
    minutes: int = 0
    first_traded_ms: int | None = None
    open: Decimal = _ZERO
    high: Decimal = _ZERO
    low: Decimal = _ZERO
    last_ms: int = -1
    close: Decimal = _ZERO
    volume: Decimal = _ZERO
    quote_volume: Decimal = _ZERO
    trades: int = 0

    def add(self, m: Minute) -> None:
        """Fold in a minute not yet in the bucket."""
        traded = m.open_ms if m.volume > 0 else None
        self._fold(1, traded, m.open, m.high, m.low, m.open_ms, m.close, m.volume, m.quote_volume, m.trades)

    def absorb(self, other: Bucket) -> None:
        """Fold in the aggregate of other minutes of the same bucket (none of them in this one)."""
        self._fold(
            other.minutes,
            other.first_traded_ms,
            other.open,
            other.high,
            other.low,
            other.last_ms,
            other.close,
            other.volume,
            other.quote_volume,
            other.trades,
        )

    def _fold(
        self,
        minutes: int,
        first_traded_ms: int | None,
        open_: Decimal,
        high: Decimal,
        low: Decimal,
        last_ms: int,
        close: Decimal,
        volume: Decimal,
        quote_volume: Decimal,
        trades: int,
    ) -> None:
        self.minutes += minutes
        if first_traded_ms is not None:
            if self.first_traded_ms is None:
                self.high, self.low = high, low
            else:
                self.high, self.low = max(self.high, high), min(self.low, low)
            if self.first_traded_ms is None or first_traded_ms < self.first_traded_ms:
                self.first_traded_ms, self.open = first_traded_ms, open_
        if last_ms > self.last_ms:
            self.last_ms, self.close = last_ms, close
        self.volume += volume
        self.quote_volume += quote_volume
        self.trades += trades

    @property
    def complete(self) -> bool:
        return self.minutes == minutes_in(self.interval)

    def to_bar(self, revision: int = 0) -> Bar:
        """The bar; its range reaches its close even when the minute that moved the price there is
        missing (a gap before a minute without trades, which stays at the last price): a bar's
        low <= close <= high always holds. With every minute present this changes nothing."""
        if self.minutes == 0:
            raise ValueError(f"empty {self.interval} bucket at {self.open_ms} has no bar")
        close = self.close
        if self.first_traded_ms is None:
            open_ = high = low = close
        else:
            open_, high, low = self.open, max(self.high, close), min(self.low, close)
        return make_bar(
            self.symbol,
            self.interval,
            self.open_ms,
            open_,
            high,
            low,
            close,
            self.volume,
            self.quote_volume,
            self.trades,
            BarSource.AGGREGATED,
            complete=self.complete,
            revision=revision,
        )


def bucket_of(symbol: str, interval: Interval, open_ms: int, minutes: Iterable[Minute]) -> Bucket:
    """The bucket starting at `open_ms` built from `minutes` (distinct, all inside it)."""
    bucket = Bucket(symbol, interval, open_ms)
    for m in minutes:
        bucket.add(m)
    return bucket


def latest_versions(bars_1m: Iterable[Bar]) -> dict[tuple[str, int], Bar]:
    """One 1m bar per (symbol, minute): the highest revision, the first one on a tie (a bar
    re-sent at the same revision never replaces the one seen first)."""
    chosen: dict[tuple[str, int], Bar] = {}
    for bar in bars_1m:
        if bar.interval != "1m":
            raise ValueError(f"expected 1m bars, got {bar.interval} for {bar.symbol}")
        key = (bar.symbol, bar.open_ms)
        held = chosen.get(key)
        if held is None or bar.revision > held.revision:
            chosen[key] = bar
    return chosen


def aggregate(bars_1m: Iterable[Bar], interval: Interval) -> list[Bar]:
    """Every `interval` bar the given 1m bars make (any order, duplicates allowed), by symbol then time."""
    groups: dict[tuple[str, int], list[Minute]] = defaultdict(list)
    for (symbol, open_ms), bar in latest_versions(bars_1m).items():
        groups[(symbol, bucket_start(open_ms, interval))].append(Minute.of(bar))
    return [bucket_of(symbol, interval, start, groups[(symbol, start)]).to_bar() for symbol, start in sorted(groups)]
