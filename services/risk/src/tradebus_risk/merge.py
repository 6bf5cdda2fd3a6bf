"""The event-time merge: every symbol's 1m bars and signals applied in ONE global order.

The account (equity, cash, open positions, day, daily P&L) is shared by all symbols, so the
order in which their events touch it must not depend on how the streams were delivered. Every
item has a key `(event time, kind, symbol)`, then its id: a signal at decision point C sorts
before any bar opening at C (that bar's open fills it), and at one instant symbols go in name
order. Items are applied in key order, and an item goes only once no item with a smaller key
can still arrive, on ANY stream of any member symbol (the watermark):

- a symbol's bars arrive in order, so its next bar opens at >= `bar_seen` + 1m;
- its signals are dense and arrive in order, so its next signal decides at >= `signal_seen` + base.

Each stream's FRONTIER is that least key (unknown, so holding everything, before the stream was
seen). The watermark is the least frontier over the member streams (both streams of every
configured symbol and of every symbol seen); everything keyed below it goes, in key order. The
result is the same whatever the chunking, batching or interleaving of the deliveries.

A stream that stays SILENT while it holds a waiting item back (its frontier is at or below the
first waiting key) for `hold` seconds is EXCUSED: left out of the watermark until it delivers
again, so a dead feed stalls the others for at most `hold`. What it delivers behind items
already applied is LATE: the caller applies it at once and must not open a position on it (see
`desk`). Only an excused stream can produce late items, so without a silence longer than the
hold a run is deterministic.

`MergeQueue` keeps one symbol's waiting items as two lists, one per stream, each in key order:
arrivals append (each stream arrives in order) and what may go is found by bisection; `take`
merges what may go of every symbol (a heap over the per-symbol lists), so neither costs more
with a long queue (a replay can hold tens of thousands of bars).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Generic, Literal, Protocol, TypeVar

from tradebus.timeframes import MINUTE_MS

Kind = Literal["signal", "bar"]
KINDS: Final[tuple[Kind, Kind]] = ("signal", "bar")
_RANK: Final[dict[str, int]] = {"signal": 0, "bar": 1}
_ONE_MINUTE = timedelta(milliseconds=MINUTE_MS)

Key = tuple[datetime, int, str]
"""(event time, kind rank: signal 0 before bar 1, symbol): an item's place in the global order."""
Stream = tuple[str, Kind]
"""(symbol, kind): one of a symbol's two input streams."""


class Item(Protocol):
    """What the merge needs of a received message: `at` is a signal's C or a bar's open time."""

    @property
    def event_id(self) -> str: ...
    @property
    def kind(self) -> Kind: ...
    @property
    def symbol(self) -> str: ...
    @property
    def at(self) -> datetime: ...


T = TypeVar("T", bound=Item)


@dataclass(frozen=True, slots=True)
class Staged:
    """A received message as the merge sees it (tests and tools; the desk has its own `Held`)."""

    event_id: str
    kind: Kind
    symbol: str
    at: datetime


@dataclass(frozen=True, slots=True)
class StreamMarks:
    """How far each stream of one symbol has been received."""

    bar_seen: datetime | None = None
    signal_seen: datetime | None = None
    base: timedelta | None = None


NO_MARKS: Final = StreamMarks()


def item_key(item: Item) -> Key:
    return item.at, _RANK[item.kind], item.symbol


def order_key(item: Item) -> tuple[datetime, int, str, str]:
    """The global order; equal keys (two ids for one bar or signal) by id, for determinism."""
    return item.at, _RANK[item.kind], item.symbol, item.event_id


def frontier(symbol: str, kind: Kind, marks: StreamMarks) -> Key | None:
    """The least key the stream's next item can have; None while nothing was seen (anything may come)."""
    if kind == "bar":
        return None if marks.bar_seen is None else (marks.bar_seen + _ONE_MINUTE, 1, symbol)
    if marks.signal_seen is None or marks.base is None:
        return None
    return marks.signal_seen + marks.base, 0, symbol


class MergeQueue(Generic[T]):
    """One symbol's items waiting for the watermark; see the module docstring."""

    __slots__ = ("bars", "signals")

    def __init__(self) -> None:
        self.bars: list[T] = []
        self.signals: list[T] = []

    def __len__(self) -> int:
        return len(self.bars) + len(self.signals)

    def add(self, item: T) -> None:
        queue = self.bars if item.kind == "bar" else self.signals
        if not queue or queue[-1].at < item.at or order_key(queue[-1]) <= order_key(item):
            queue.append(item)  # the usual case: each stream arrives in order
        else:
            bisect.insort(queue, item, key=order_key)

    def head(self) -> Key | None:
        """The least key waiting here."""
        keys = [item_key(q[0]) for q in (self.signals, self.bars) if q]
        return min(keys) if keys else None

    def pop_below(self, bound: Key | None) -> tuple[list[T], list[T]]:
        """Remove and return the items keyed below `bound` (None: no bound), per stream in order."""
        n_bars, n_signals = _count_below(self.bars, bound), _count_below(self.signals, bound)
        bars, signals = self.bars[:n_bars], self.signals[:n_signals]
        if n_bars:
            del self.bars[:n_bars]
        if n_signals:
            del self.signals[:n_signals]
        return bars, signals


def _count_below(items: list[T], bound: Key | None) -> int:
    if bound is None:
        return len(items)
    if not items or item_key(items[0]) >= bound:
        return 0  # the usual case for most symbols of a take: nothing of them may go yet
    if item_key(items[-1]) < bound:
        return len(items)
    return bisect.bisect_left(items, bound, key=item_key)


@dataclass(slots=True)
class Watermark:
    """Which streams the global order waits for, and which were excused for their silence.

    Lives as long as the process (wall-clock bookkeeping, not state): `advanced` is told every
    time a stream's frontier moves; `update` finds the streams holding the first waiting item
    and excuses those silent for `hold_s`. Times are the caller's monotonic seconds."""

    configured: frozenset[str] = frozenset()
    hold_s: float = 60.0
    seen: set[str] = field(default_factory=set)
    holding_since: dict[Stream, float] = field(default_factory=dict)
    excused: dict[Stream, float] = field(default_factory=dict)
    """Excused streams and when they were excused."""
    _frontiers: dict[str, tuple[StreamMarks, Key | None, Key | None]] = field(default_factory=dict)

    def advanced(self, stream: Stream) -> None:
        """The stream delivered a newer item: it is no longer silent (and rejoins the order)."""
        self.seen.add(stream[0])
        self.holding_since.pop(stream, None)
        self.excused.pop(stream, None)

    def members(self, queued: Iterable[str]) -> set[str]:
        return {*self.configured, *self.seen, *queued}

    def bound(self, marks: Mapping[str, StreamMarks], members: Iterable[str]) -> tuple[bool, Key | None]:
        """(whether anything may go, the least frontier of the waited-for streams: None = no bound)."""
        least: Key | None = None
        excused = self.excused
        for symbol in members:
            for kind, edge in zip(KINDS, self._edges(symbol, marks), strict=True):
                if excused and (symbol, kind) in excused:
                    continue
                if edge is None:
                    return False, None
                if least is None or edge < least:
                    least = edge
        return True, least

    def update(
        self, head: Key | None, marks: Mapping[str, StreamMarks], members: Iterable[str], now: float
    ) -> list[Stream]:
        """Note which streams hold `head` (the first waiting key) back since when; excuse those
        silent for the hold. Returns the streams excused now (then more may go)."""
        if head is None:
            self.holding_since.clear()
            return []
        excused: list[Stream] = []
        holding: dict[Stream, float] = {}
        for symbol in members:
            for kind, edge in zip(KINDS, self._edges(symbol, marks), strict=True):
                if edge is not None and edge > head:
                    continue
                stream = (symbol, kind)
                if stream in self.excused:
                    continue
                since = self.holding_since.get(stream, now)
                if now - since >= self.hold_s:
                    self.excused[stream] = now
                    excused.append(stream)
                else:
                    holding[stream] = since
        self.holding_since = holding
        return excused

    def _edges(self, symbol: str, marks: Mapping[str, StreamMarks]) -> tuple[Key | None, Key | None]:
        """The symbol's (signal, bar) frontiers, cached while its marks are the same object (the
        desk replaces a symbol's marks when they move): a take looks at every member."""
        symbol_marks = marks.get(symbol, NO_MARKS)
        cached = self._frontiers.get(symbol)
        if cached is None or cached[0] is not symbol_marks:
            cached = (
                symbol_marks,
                frontier(symbol, "signal", symbol_marks),
                frontier(symbol, "bar", symbol_marks),
            )
            self._frontiers[symbol] = cached
        return cached[1], cached[2]

    def due(self, now: float) -> bool:
        """Whether a holding stream's hold has run out (the caller should `update` then)."""
        return any(now - since >= self.hold_s for since in self.holding_since.values())

    def holders(self, now: float) -> dict[Stream, float]:
        """The streams holding waiting items back, and for how many seconds."""
        return {stream: now - since for stream, since in self.holding_since.items()}


def take(queues: Mapping[str, MergeQueue[T]], marks: Mapping[str, StreamMarks], watermark: Watermark) -> list[T]:
    """Remove and return, in the global order, every waiting item the watermark lets go."""
    go, bound = watermark.bound(marks, watermark.members(queues))
    if not go:
        return []
    parts: list[list[T]] = []
    for queue in queues.values():
        if not queue:
            continue
        bars, signals = queue.pop_below(bound)
        if bars:
            parts.append(bars)
        if signals:
            parts.append(signals)
    if len(parts) <= 1:
        return parts[0] if parts else []
    return list(heapq.merge(*parts, key=order_key))


def head(queues: Mapping[str, MergeQueue[T]]) -> Key | None:
    """The least key waiting in any queue."""
    keys = [k for q in queues.values() if (k := q.head()) is not None]
    return min(keys) if keys else None
