"""The streaming state machine: 1m bars in (any order, duplicates, late), higher bars out (pure).

Per symbol it holds the 1m bars of the current week (from `horizon` on), the open buckets of
every higher interval and the last published version of every bucket since `horizon`. A bucket
is published the moment its last minute is present, or as soon as a later minute proves it over
(then `complete=false`). A minute that lands in a published bucket recomputes it from the held
minutes and republishes it with `revision + 1`. Minutes older than `horizon` need the stored
history first (`needs_history` / `load`); `prune` forgets everything before the current week.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tradebus.events import Bar
from tradebus.timeframes import HIGHER_INTERVALS, MINUTE_MS, Interval, bucket_start, interval_ms, last_minute_of
from tradebus_aggregator.buckets import Bucket, Minute, bucket_of

DESCENDING: tuple[Interval, ...] = tuple(reversed(HIGHER_INTERVALS))
"""Publish order when one minute closes several buckets (ARCHITECTURE.md, cross-service rules)."""


class HistoryMissing(RuntimeError):
    """A minute older than what the state holds arrived before its week was loaded."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one 1m bar did: whether it is new (to be stored) and the higher bars to publish, in order."""

    stored: bool
    bars: list[Bar] = field(default_factory=list)


def _same_content(a: Bar, b: Bar) -> bool:
    return a.model_dump(exclude={"revision"}) == b.model_dump(exclude={"revision"})


class SymbolAggregator:
    """Streaming aggregation of one symbol; see the module docstring."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.horizon: int | None = None
        """Earliest minute known to be held; None while nothing older can exist anywhere."""
        self.latest: int | None = None
        self.minutes: dict[int, Minute] = {}
        self.published: dict[tuple[Interval, int], Bar] = {}
        self.open: dict[Interval, dict[int, Bucket]] = {iv: {} for iv in HIGHER_INTERVALS}

    def needs_history(self, open_ms: int) -> bool:
        return self.horizon is not None and open_ms < self.horizon

    def load(self, start_ms: int, minutes: Iterable[Minute], published: Iterable[Bar]) -> None:
        """Take in stored history from `start_ms` up to the current horizon (restart or a late minute)."""
        loaded = [m for m in minutes if m.open_ms not in self.minutes]
        for m in loaded:
            self.minutes[m.open_ms] = m
            self.latest = m.open_ms if self.latest is None else max(self.latest, m.open_ms)
        for bar in published:
            self.published[(bar.interval, bar.open_ms)] = bar
        for iv in HIGHER_INTERVALS:
            starts = {bucket_start(m.open_ms, iv) for m in loaded}
            for start in starts - {s for (i, s) in self.published if i == iv}:
                self.open[iv][start] = self._rebuild(iv, start)
        self.horizon = start_ms if self.horizon is None else min(self.horizon, start_ms)

    def apply(self, bar: Bar) -> Outcome:
        """Take in one closed 1m bar of this symbol."""
        m = Minute.of(bar)
        held = self.minutes.get(m.open_ms)
        if held is not None and (held == m or held.revision > m.revision):
            return Outcome(stored=False)
        if self.needs_history(m.open_ms):
            raise HistoryMissing(f"{self.symbol}: minute {m.open_ms} is before {self.horizon}; load its week first")
        self.minutes[m.open_ms] = m
        self.latest = m.open_ms if self.latest is None else max(self.latest, m.open_ms)
        out: list[Bar] = []
        for iv in DESCENDING:
            start = bucket_start(m.open_ms, iv)
            previous = self.published.get((iv, start))
            if previous is not None:
                revised = self._rebuild(iv, start).to_bar(previous.revision + 1)
                if not _same_content(revised, previous):
                    self.published[(iv, start)] = revised
                    out.append(revised)
                continue
            buckets = self.open[iv]
            if held is None and start in buckets:
                buckets[start].add(m)
            else:
                buckets[start] = self._rebuild(iv, start)
            out.extend(self._close_over(iv))
        return Outcome(stored=True, bars=out)

    def prune(self) -> None:
        """Forget minutes and published buckets before the current week (all of them are closed)."""
        if self.latest is None:
            return
        cut = bucket_start(self.latest, "1w")
        if self.horizon is not None and self.horizon >= cut:
            return
        self.minutes = {t: m for t, m in self.minutes.items() if t >= cut}
        self.published = {key: bar for key, bar in self.published.items() if key[1] >= cut}
        self.horizon = cut

    def _close_over(self, iv: Interval) -> list[Bar]:
        """Publish the open buckets of `iv` whose last minute is present or lies behind `latest`."""
        assert self.latest is not None
        buckets = self.open[iv]
        done = [
            s for s in sorted(buckets) if last_minute_of(s, iv) in self.minutes or last_minute_of(s, iv) < self.latest
        ]
        bars = [buckets.pop(s).to_bar() for s in done]
        for bar in bars:
            self.published[(iv, bar.open_ms)] = bar
        return bars

    def _rebuild(self, iv: Interval, start: int) -> Bucket:
        held = (self.minutes.get(t) for t in range(start, start + interval_ms(iv), MINUTE_MS))
        return bucket_of(self.symbol, iv, start, (m for m in held if m is not None))


class Aggregator:
    """One `SymbolAggregator` per symbol, created on first sight."""

    def __init__(self) -> None:
        self.symbols: dict[str, SymbolAggregator] = {}

    def of(self, symbol: str) -> SymbolAggregator:
        state = self.symbols.get(symbol)
        if state is None:
            state = self.symbols[symbol] = SymbolAggregator(symbol)
        return state

    def apply(self, bar: Bar) -> Outcome:
        return self.of(bar.symbol).apply(bar)

    def forget(self, symbol: str) -> None:
        """Drop a symbol's state (to reload it from storage after a failed batch)."""
        self.symbols.pop(symbol, None)
