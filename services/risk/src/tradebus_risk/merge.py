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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from tradebus.timeframes import MINUTE_MS

Kind = Literal["signal", "bar"]
_ONE_MINUTE = timedelta(milliseconds=MINUTE_MS)


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


def order_key(item: Staged) -> tuple[datetime, int, str]:
    """Signals at C before the bar opening at C; ties by id for determinism."""
    return item.at, 0 if item.kind == "signal" else 1, item.event_id


def ready(items: list[Staged], marks: StreamMarks) -> tuple[list[Staged], bool]:
    """The items of one symbol that may be applied now, in order, and whether a replay item waits."""
    return take_ready(sorted(items, key=order_key), marks, live_follows=any(i.live for i in items))


def take_ready(ordered: Iterable[Staged], marks: StreamMarks, *, live_follows: bool) -> tuple[list[Staged], bool]:
    """`ready` for items already in merge order; without live items among them it stops at the
    first one that waits (nothing after it may go), so a long held-back queue costs nothing."""
    out: list[Staged] = []
    waiting = False
    for item in ordered:
        if item.live or (not waiting and _replay_ready(item, marks)):
            out.append(item)
        else:
            waiting = True
            if not live_follows:
                break
    return out, waiting


def _replay_ready(item: Staged, marks: StreamMarks) -> bool:
    if item.kind == "signal":
        return marks.bar_seen is not None and marks.bar_seen + _ONE_MINUTE >= item.at
    return marks.signal_seen is not None and marks.base is not None and marks.signal_seen + marks.base > item.at
