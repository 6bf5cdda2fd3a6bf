"""One (symbol, horizon) bar series: a window of recent bars and its indicators."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from itertools import islice

from tradebus.events import Bar
from tradebus.timeframes import Interval
from tradebus_signal.features import Features, IndicatorBank
from tradebus_signal.params import ModelParams


class Applied(Enum):
    APPENDED = "appended"
    """A new latest bar: the indicators took one O(1) step."""
    REVISED = "revised"
    """A correction or a late bar inside the window: the indicators were rebuilt from it."""
    IGNORED = "ignored"
    """A duplicate, an older revision, or a bar older than the window."""


@dataclass(frozen=True, slots=True)
class HorizonView:
    """What the model sees of one horizon at a decision point."""

    interval: Interval
    bars: int
    incomplete: int
    """Bars with missing minutes among the last `warmup` bars."""
    features: Features


class Series:
    """Keeps the last `window` bars; a revision replaces its bar and replays the window."""

    def __init__(self, interval: Interval, params: ModelParams, window: int) -> None:
        self.interval = interval
        self._params = params
        self._bars: deque[Bar] = deque(maxlen=window)
        self._bank = IndicatorBank(params)
        self._warm = min(params.warmup, window)
        """Bars the incomplete count covers: the last `warmup` (at most the whole window)."""
        self._incomplete = 0
        """Incomplete bars among the last `_warm`, kept as a running count: counting them per
        view was 8-17% of the service's time."""

    @property
    def bars(self) -> deque[Bar]:
        return self._bars

    @property
    def last(self) -> Bar | None:
        return self._bars[-1] if self._bars else None

    def load(self, bars: Iterable[Bar]) -> None:
        """Replace the window with `bars` (any order) and rebuild the indicators."""
        self._bars.clear()
        self._bars.extend(sorted(bars, key=lambda b: b.open_time))
        self._rebuild()

    def apply(self, bar: Bar) -> Applied:
        last = self.last
        if last is None or bar.open_time > last.open_time:
            if len(self._bars) >= self._warm and not self._bars[-self._warm].complete:
                self._incomplete -= 1
            if not bar.complete:
                self._incomplete += 1
            self._bars.append(bar)
            self._bank.update(float(bar.high), float(bar.low), float(bar.close))
            return Applied.APPENDED
        times = [b.open_time for b in self._bars]
        i = bisect.bisect_left(times, bar.open_time)
        if times[i] == bar.open_time:
            if bar.revision <= self._bars[i].revision:
                return Applied.IGNORED
            self._bars[i] = bar
        elif i == 0 and len(self._bars) == self._bars.maxlen:
            return Applied.IGNORED
        else:
            if len(self._bars) == self._bars.maxlen:
                self._bars.popleft()
                i -= 1
            self._bars.insert(i, bar)
        self._rebuild()
        return Applied.REVISED

    def recent(self, count: int) -> list[Bar]:
        """The last `count` bars, oldest first: walked from the newest end, O(count) and not
        O(window) (a deque is slow to index into its middle)."""
        newest_first = list(islice(reversed(self._bars), max(0, count)))
        newest_first.reverse()
        return newest_first

    def view(self) -> HorizonView:
        return HorizonView(
            interval=self.interval,
            bars=len(self._bars),
            incomplete=self._incomplete,
            features=self._bank.snapshot(),
        )

    def _rebuild(self) -> None:
        self._incomplete = sum(1 for b in self.recent(self._warm) if not b.complete)
        self._bank = IndicatorBank(self._params)
        for b in self._bars:
            self._bank.update(float(b.high), float(b.low), float(b.close))
