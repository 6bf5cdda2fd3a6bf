"""The streaming state machine: 1m bars in (any order, duplicates, late), higher bars out (pure).

Per symbol it holds the 1m bars of the current week (from `horizon` on), the open buckets of
every higher interval and the last published version of every bucket since `horizon`. A bucket
is published the moment its last minute is present, or as soon as a later minute proves it over
(then `complete=false`). A minute that lands in a published bucket recomputes it from the held
minutes and republishes it with `revision + 1`. Minutes older than `horizon` need the stored
history first (`needs_history` / `load`); `prune` forgets everything before the current week.

`Aggregator.apply_batch` takes a consumed batch: per symbol, a run of at least `RUN_THRESHOLD`
new minutes in ascending order (a backfill, a replay, a catch-up after downtime) goes through
the vectorised `batch` path in one pass, everything else minute by minute; both give the same
bars with the same revisions and flags, in the same order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from tradebus.events import Bar
from tradebus.timeframes import HIGHER_INTERVALS, MINUTE_MS, Interval, bucket_start, interval_ms, last_minute_of
from tradebus_aggregator import batch
from tradebus_aggregator.buckets import Bucket, Minute, bucket_of

DESCENDING: tuple[Interval, ...] = tuple(reversed(HIGHER_INTERVALS))
"""Publish order when one minute closes several buckets (ARCHITECTURE.md, cross-service rules)."""

RUN_THRESHOLD: Final = 32
"""New ascending minutes of one symbol in one batch from which the vectorised path takes over
(below it the per-minute path is as fast: the vectorised pass has a fixed cost per interval)."""


class HistoryMissing(RuntimeError):
    """A minute older than what the state holds arrived before its week was loaded."""


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What a batch did: its new 1m bars (to be stored) and the higher bars to publish, each with
    the batch index of the 1m bar that closed it, in publish order."""

    stored: list[Bar]
    bars: list[tuple[int, Bar]]


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
        if held is not None and held.revision >= m.revision:
            return Outcome(stored=False)  # a redelivery, a stale revision, or a contradiction screened out before
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

    def appends(self, open_ms: int) -> bool:
        """Whether a minute at `open_ms` is new and after every held one (no history needed)."""
        return (self.latest is None or open_ms > self.latest) and not self.needs_history(open_ms)

    def append_run(self, bars: Sequence[Bar], times: Sequence[int]) -> list[tuple[int, Bar]]:
        """Take in new minutes, ascending and each one `appends`, in one vectorised pass.

        `times` are the bars' open times (ms). Returns (run index of the minute that closed it,
        bar) exactly as `apply` minute by minute would publish them: buckets close at their last
        minute or at the first minute after them, intervals descending, older buckets first.
        """
        with batch.gc_paused():
            return self._append_run(bars, times)

    def _append_run(self, bars: Sequence[Bar], times: Sequence[int]) -> list[tuple[int, Bar]]:
        run_ms = np.fromiter(times, np.int64, len(times))
        closed: list[tuple[int, int, int, Bucket]] = []
        levels = batch.levels(bars, times)
        for rank, iv in enumerate(DESCENDING):
            level = levels[iv]
            held = self.open[iv]
            first_start = int(level.starts[0])
            pending = held.pop(first_start, None)
            closed.extend((0, rank, start, bucket) for start, bucket in held.items())  # over before the run
            held.clear()
            for i, at in enumerate(batch.close_at(run_ms, level, iv).tolist()):
                bucket = level.bucket(self.symbol, iv, i)
                if i == 0 and pending is not None:
                    pending.absorb(bucket)
                    bucket = pending
                if at < len(bars):
                    closed.append((at, rank, bucket.open_ms, bucket))
                else:
                    held[bucket.open_ms] = bucket
        closed.sort(key=lambda c: c[:3])
        out = [(at, bucket.to_bar()) for at, _, _, bucket in closed]
        for _, bar in out:
            self.published[(bar.interval, bar.open_ms)] = bar
        for b, t in zip(bars, times, strict=True):
            self.minutes[t] = Minute.of(b, t)
        self.latest = times[-1]
        return out

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

    def apply_batch(self, bars: Sequence[Bar], run_threshold: int = RUN_THRESHOLD) -> BatchOutcome:
        """Take in a batch of 1m bars; the same outcome as `apply` on each in turn (see the module)."""
        stored: list[int] = []
        out: list[tuple[int, Bar]] = []
        times = [b.open_ms for b in bars]  # a datetime conversion each: once per bar
        by_symbol: dict[str, list[int]] = defaultdict(list)
        for i, bar in enumerate(bars):
            by_symbol[bar.symbol].append(i)

        def one_by_one(state: SymbolAggregator, indices: list[int]) -> None:
            for i in indices:
                outcome = state.apply(bars[i])
                if outcome.stored:
                    stored.append(i)
                out.extend((i, b) for b in outcome.bars)

        def flush(state: SymbolAggregator, run: list[int]) -> None:
            if len(run) < run_threshold:
                one_by_one(state, run)
                return
            stored.extend(run)
            out.extend((run[at], b) for at, b in state.append_run([bars[i] for i in run], [times[i] for i in run]))

        for symbol, indices in by_symbol.items():
            state = self.of(symbol)
            run: list[int] = []
            for i in indices:
                t = times[i]
                if state.appends(t) and (not run or t > times[run[-1]]):
                    run.append(i)
                    continue
                flush(state, run)
                run = []
                one_by_one(state, [i])
            flush(state, run)
        out.sort(key=lambda p: p[0])
        return BatchOutcome([bars[i] for i in sorted(stored)], out)

    def forget(self, symbol: str) -> None:
        """Drop a symbol's state (to reload it from storage after a failed batch)."""
        self.symbols.pop(symbol, None)
