"""The live signal engine: bar events in stream order in, dense signal events out (no I/O).

One `Series` per (symbol, horizon). The aggregator publishes bars closing together in
descending interval order, so when the base horizon's bar closing at C is applied every higher
horizon already holds its bar closing at C, and the signal for C sees all of them.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from tradebus.events import Bar, BarEvent, Signal, SignalEvent, signal_event_id
from tradebus.timeframes import Interval
from tradebus_signal.encoded import EncodedSignalEvent
from tradebus_signal.model import ScoredHorizon, decide, decide_scored, scored
from tradebus_signal.params import ModelParams
from tradebus_signal.series import Applied, HorizonView, Series

SERVICE = "signal"


@dataclass(slots=True)
class EngineOutput:
    signals: list[SignalEvent] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    """Bars that changed a series (new, revised or late), to be stored."""

    def extend(self, other: EngineOutput) -> None:
        self.signals.extend(other.signals)
        self.bars.extend(other.bars)


class SignalEngine:
    def __init__(
        self,
        horizons: Sequence[Interval],
        params: ModelParams,
        window: int,
        *,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self.horizons = tuple(horizons)
        self.base = self.horizons[0]
        self.params = params
        self.window = window
        self._observe = observe
        self._series: dict[tuple[str, Interval], Series] = {}
        self._scored: dict[tuple[str, Interval], ScoredHorizon] = {}
        """Each series' scored view, dropped when the series changes."""

    def accepts(self, interval: str) -> bool:
        return interval in self.horizons

    def replace(self, symbols: Iterable[str], bars: Iterable[Bar]) -> None:
        """Forget the series of `symbols` and rebuild them from `bars` (start-up, after a failure)."""
        dropped = set(symbols)
        self._series = {key: s for key, s in self._series.items() if key[0] not in dropped}
        self._scored = {key: s for key, s in self._scored.items() if key[0] not in dropped}
        grouped: dict[tuple[str, Interval], list[Bar]] = defaultdict(list)
        for bar in bars:
            if self.accepts(bar.interval):
                grouped[(bar.symbol, bar.interval)].append(bar)
        for (symbol, interval), series_bars in grouped.items():
            self._get(symbol, interval).load(series_bars)

    def apply(self, events: Iterable[BarEvent]) -> EngineOutput:
        out = EngineOutput()
        for part in self.slices(events, (sys.maxsize,)):
            out.extend(part)
        return out

    def slices(self, events: Iterable[BarEvent], sizes: Sequence[int]) -> Iterator[EngineOutput]:
        """`apply`, lazily: an output after the first `sizes[0]` signals, then after `sizes[1]`
        more, …, the last size repeating (the last output has the rest); each is computed only
        when asked for, so a caller can send one before computing the next."""
        limits = itertools.chain(sizes, itertools.repeat(sizes[-1]))
        signals = next(limits)
        out = EngineOutput()
        for event in events:
            bar = event.data
            if not self.accepts(bar.interval):
                continue
            applied = self._get(bar.symbol, bar.interval).apply(bar)
            if applied is Applied.IGNORED:
                continue
            self._scored.pop((bar.symbol, bar.interval), None)
            out.bars.append(bar)
            if bar.interval == self.base and applied is Applied.APPENDED:
                out.signals.append(self._signal_event(event))
                if len(out.signals) == signals:
                    yield out
                    out = EngineOutput()
                    signals = next(limits)
        if out.bars:
            yield out

    def _signal_event(self, event: BarEvent) -> SignalEvent:
        bar = event.data
        started = time.perf_counter()
        base = self._get(bar.symbol, self.base)
        horizons = [self._scored_horizon(bar.symbol, h) for h in self.horizons]
        signal = decide_scored(bar, horizons, base.recent(self.params.swing_lookback), self.params)
        if self._observe is not None:
            self._observe(time.perf_counter() - started)
        return EncodedSignalEvent.encoded(
            event_id=signal_event_id(bar.symbol, self.base, bar.open_ms),
            source=SERVICE,
            trace_id=event.trace_id,
            mode=event.mode,
            data=signal,
            horizons=[h.encoded for h in horizons],
        )

    def _scored_horizon(self, symbol: str, interval: Interval) -> ScoredHorizon:
        key = (symbol, interval)
        cached = self._scored.get(key)
        if cached is None:
            series = self._series.get(key)
            view = series.view() if series else HorizonView(interval, 0, 0, {})
            cached = self._scored[key] = scored(view, self.params)
        return cached

    def _get(self, symbol: str, interval: Interval) -> Series:
        key = (symbol, interval)
        if key not in self._series:
            self._series[key] = Series(interval, self.params, self.window)
        return self._series[key]


def signal_from_bars(
    trigger_bars: Sequence[Bar],
    other_bars: Mapping[Interval, Sequence[Bar]],
    horizons: Sequence[Interval],
    params: ModelParams,
    *,
    explain: bool = True,
) -> Signal:
    """The signal for the last of `trigger_bars` (base horizon `horizons[0]`), computed afresh
    from stored bars: the on-demand path of `POST /v1/signal`."""
    views: list[HorizonView] = []
    base: Series | None = None
    for interval in horizons:
        bars = trigger_bars if interval == horizons[0] else other_bars.get(interval, ())
        series = Series(interval, params, max(len(bars), 1))
        series.load(bars)
        views.append(series.view())
        base = base or series
    assert base is not None and base.last is not None
    return decide(base.last, views, base.recent(params.swing_lookback), params, explain=explain)
