"""The event-time merge of the 1m-bar and signal streams (replay mode).

Per symbol, staged bars and signals are taken in one total order: a signal at decision point C
sorts before the bar opening at C (whose open fills it) and after every bar opening before C.
Each stream arrives in order, so an item may go when the other stream has provably nothing
left that sorts before it:

- a signal at C, once a bar opening at C - 1m or later was received (the next bar opens >= C);
- a bar opening at t, once a signal at C' with C' + base interval > t was received (signals are
  dense: the next one is at C' + base > t).

The first item that must wait holds every later replay item back, so a replay trades the same
whichever of the two streams is delivered first. Live items never wait.

`MergeQueue` keeps one symbol's waiting items as two lists, one per stream, each in merge order:
arrivals append (each stream arrives in order) and what may go is found by bisection, so
neither costs more with a long queue (a replay can hold tens of thousands of bars).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Literal, Protocol, TypeVar

from tradebus.timeframes import MINUTE_MS

Kind = Literal["signal", "bar"]
_ONE_MINUTE = timedelta(milliseconds=MINUTE_MS)


class Item(Protocol):
    """What the merge needs of a staged message: `at` is a signal's C or a bar's open time."""

    @property
    def event_id(self) -> str: ...
    @property
    def kind(self) -> Kind: ...
    @property
    def at(self) -> datetime: ...
    @property
    def live(self) -> bool: ...


T = TypeVar("T", bound=Item)


@dataclass(frozen=True, slots=True)
class Staged:
    """A staged message as the merge sees it: `at` is a signal's C or a bar's open time."""

    event_id: str
    kind: Kind
    at: datetime
    live: bool


@dataclass(frozen=True, slots=True)
class StreamMarks:
    """How far each stream of one symbol has been received."""

    bar_seen: datetime | None = None
    signal_seen: datetime | None = None
    base: timedelta | None = None


def order_key(item: Item) -> tuple[datetime, int, str]:
    """Signals at C before the bar opening at C; ties by id for determinism."""
    return item.at, 0 if item.kind == "signal" else 1, item.event_id


def ready(items: list[T], marks: StreamMarks) -> tuple[list[T], bool]:
    """The items of one symbol that may be applied now, in order, and whether a replay item waits."""
    return take_ready(sorted(items, key=order_key), marks, live_follows=any(i.live for i in items))


def take_ready(ordered: Iterable[T], marks: StreamMarks, *, live_follows: bool) -> tuple[list[T], bool]:
    """`ready` for items already in merge order; without live items among them it stops at the
    first one that waits (nothing after it may go), so a long held-back queue costs nothing."""
    out: list[T] = []
    waiting = False
    for item in ordered:
        if item.live or (not waiting and _replay_ready(item, marks)):
            out.append(item)
        else:
            waiting = True
            if not live_follows:
                break
    return out, waiting


def _replay_ready(item: Item, marks: StreamMarks) -> bool:
    if item.kind == "signal":
        return marks.bar_seen is not None and marks.bar_seen + _ONE_MINUTE >= item.at
    return marks.signal_seen is not None and marks.base is not None and marks.signal_seen + marks.base > item.at


def _at(item: Item) -> datetime:
    return item.at


def ready_counts(bars: Sequence[Item], signals: Sequence[Item], marks: StreamMarks) -> tuple[int, int]:
    """How many of one symbol's replay bars and signals (each list in merge order) may go now:
    each stream's ready prefix, cut where the first item that must wait sorts in the other."""
    bars_ready = 0
    if marks.signal_seen is not None and marks.base is not None:
        bars_ready = bisect.bisect_left(bars, marks.signal_seen + marks.base, key=_at)
    signals_ready = 0
    if marks.bar_seen is not None:
        signals_ready = bisect.bisect_right(signals, marks.bar_seen + _ONE_MINUTE, key=_at)
    n_bars, n_signals = bars_ready, signals_ready
    if bars_ready < len(bars):  # that bar waits: so do the signals sorting after it (C > its open)
        n_signals = min(n_signals, bisect.bisect_right(signals, bars[bars_ready].at, key=_at))
    if signals_ready < len(signals):  # that signal waits: so do the bars opening at or after its C
        n_bars = min(n_bars, bisect.bisect_left(bars, signals[signals_ready].at, key=_at))
    return n_bars, n_signals


class MergeQueue(Generic[T]):
    """One symbol's items waiting for the merge; see the module docstring."""

    __slots__ = ("bars", "live", "signals")

    def __init__(self) -> None:
        self.bars: list[T] = []
        self.signals: list[T] = []
        self.live = 0
        """How many live items wait among them (then the general, slower path decides)."""

    def __len__(self) -> int:
        return len(self.bars) + len(self.signals)

    def add(self, item: T) -> None:
        queue = self.bars if item.kind == "bar" else self.signals
        if not queue or queue[-1].at < item.at or order_key(queue[-1]) <= order_key(item):
            queue.append(item)  # the usual case: each stream arrives in order
        else:
            bisect.insort(queue, item, key=order_key)
        self.live += item.live

    def take(self, marks: StreamMarks) -> list[T]:
        """Remove and return, in merge order, every item that may go now."""
        if self.live:
            return self._take_with_live(marks)
        n_bars, n_signals = ready_counts(self.bars, self.signals, marks)
        if not (n_bars or n_signals):
            return []
        bars, signals = self.bars[:n_bars], self.signals[:n_signals]
        del self.bars[:n_bars], self.signals[:n_signals]
        if not signals or not bars:
            return bars or signals
        out: list[T] = []
        b = s = 0
        while b < n_bars and s < n_signals:  # a signal at C sorts before the bar opening at C
            if signals[s].at <= bars[b].at:
                out.append(signals[s])
                s += 1
            else:
                out.append(bars[b])
                b += 1
        out += bars[b:] or signals[s:]
        return out

    def _take_with_live(self, marks: StreamMarks) -> list[T]:
        merged = sorted([*self.bars, *self.signals], key=order_key)
        go, _ = take_ready(merged, marks, live_follows=True)
        if go:
            going = {id(item) for item in go}
            self.bars = [i for i in self.bars if id(i) not in going]
            self.signals = [i for i in self.signals if id(i) not in going]
            self.live -= sum(1 for item in go if item.live)
        return go
