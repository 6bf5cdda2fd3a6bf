"""The pure global event-time merge (`tradebus_risk.merge`): properties over arbitrary deliveries,
and the hold of a silent stream."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus_risk.merge import (
    MergeQueue,
    Staged,
    StreamMarks,
    Watermark,
    frontier,
    head,
    item_key,
    order_key,
    take,
)

T0 = datetime(2024, 1, 2, tzinfo=UTC)
BASE = timedelta(minutes=5)


def _streams(symbols: Sequence[str], minutes: int, gaps: frozenset[tuple[str, int]]) -> list[list[Staged]]:
    """Per symbol two streams, each in order: 1m bars (minus `gaps`) and a dense 5m signal per 5m."""
    out: list[list[Staged]] = []
    for symbol in symbols:
        bars = [
            Staged(f"bar:{symbol}:{m}", "bar", symbol, T0 + timedelta(minutes=m))
            for m in range(minutes)
            if (symbol, m) not in gaps
        ]
        signals = [
            Staged(f"signal:{symbol}:{c}", "signal", symbol, T0 + timedelta(minutes=c))
            for c in range(5, minutes + 1, 5)
        ]
        out += [bars, signals]
    return out


class Receiver:
    """What the desk does with arrivals, minus the book: marks, the watermark, the queues."""

    def __init__(self, configured: Sequence[str]) -> None:
        self.marks: dict[str, StreamMarks] = {}
        self.queues: dict[str, MergeQueue[Staged]] = {}
        self.watermark = Watermark(frozenset(configured), hold_s=60.0)
        self.applied: list[Staged] = []

    def receive(self, chunk: Sequence[Staged], now: float = 0.0) -> None:
        for item in chunk:
            marks = self.marks.get(item.symbol, StreamMarks())
            if item.kind == "bar" and (marks.bar_seen is None or item.at > marks.bar_seen):
                self.marks[item.symbol] = StreamMarks(item.at, marks.signal_seen, marks.base)
            elif item.kind == "signal" and (marks.signal_seen is None or item.at > marks.signal_seen):
                self.marks[item.symbol] = StreamMarks(marks.bar_seen, item.at, BASE)
            self.watermark.advanced((item.symbol, item.kind))
            self.queues.setdefault(item.symbol, MergeQueue()).add(item)
        self.settle(now)

    def settle(self, now: float) -> None:
        while True:
            self.applied += take(self.queues, self.marks, self.watermark)
            members = self.watermark.members(self.queues)
            if not self.watermark.update(head(self.queues), self.marks, members, now):
                return


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[str], list[Staged], list[list[Staged]]]:
    """Symbols, every item, and one arbitrary delivery of them: each stream in its own order,
    interleaved and cut into chunks at random."""
    symbols = sorted(draw(st.sets(st.sampled_from(["AUSDT", "BUSDT", "CUSDT"]), min_size=1, max_size=3)))
    minutes = draw(st.integers(min_value=1, max_value=40))
    gaps = frozenset(draw(st.sets(st.tuples(st.sampled_from(symbols), st.integers(0, minutes - 1)), max_size=6)))
    streams = [list(s) for s in _streams(symbols, minutes, gaps)]
    everything = [item for stream in streams for item in stream]
    arrival: list[Staged] = []
    while any(streams):
        live = [s for s in streams if s]
        arrival.append(live[draw(st.integers(0, len(live) - 1))].pop(0))
    chunks: list[list[Staged]] = []
    while arrival:
        size = draw(st.integers(1, max(1, len(arrival))))
        chunks.append(arrival[:size])
        del arrival[:size]
    return symbols, everything, chunks


def _final_bound(symbols: Sequence[str], everything: Sequence[Staged]) -> tuple[datetime, int, str]:
    """Once everything arrived: the least frontier over all streams (what may go at the end)."""
    marks: dict[str, StreamMarks] = {}
    for symbol in symbols:
        bars = [i.at for i in everything if i.symbol == symbol and i.kind == "bar"]
        signals = [i.at for i in everything if i.symbol == symbol and i.kind == "signal"]
        marks[symbol] = StreamMarks(max(bars, default=None), max(signals, default=None), BASE)
    edges = [frontier(s, k, marks[s]) for s in symbols for k in ("bar", "signal")]
    known = [e for e in edges if e is not None]
    assert len(known) == len(edges), "every stream delivered something"
    return min(known)


@settings(max_examples=300, deadline=None)
@given(deliveries(), deliveries())
def test_any_delivery_of_the_same_streams_applies_the_same_global_order(
    first: tuple[list[str], list[Staged], list[list[Staged]]],
    other: tuple[list[str], list[Staged], list[list[Staged]]],
) -> None:
    symbols, everything, chunks = first
    receiver = Receiver(symbols)
    for chunk in chunks:
        receiver.receive(chunk)
    in_order = sorted(everything, key=order_key)
    # exactly the global order, up to what the final marks prove complete
    if all(any(i.symbol == s and i.kind == k for i in everything) for s in symbols for k in ("bar", "signal")):
        bound = _final_bound(symbols, everything)
        assert receiver.applied == [i for i in in_order if item_key(i) < bound]
    else:
        assert receiver.applied == []  # a stream that never spoke holds everything (no clock passes here)
    # and the same for one delivery of everything at once (the other example's chunking, same items)
    at_once = Receiver(symbols)
    at_once.receive(everything)
    assert at_once.applied == receiver.applied
    # and for the second drawn delivery: the same property on other streams
    symbols2, everything2, chunks2 = other
    again = Receiver(symbols2)
    for chunk in chunks2:
        again.receive(chunk)
    assert again.applied == sorted(again.applied, key=order_key)
    assert again.applied == sorted(everything2, key=order_key)[: len(again.applied)]


@settings(max_examples=200, deadline=None)
@given(deliveries(), st.randoms(use_true_random=False))
def test_reshuffling_the_chunks_of_one_delivery_changes_nothing(
    delivery: tuple[list[str], list[Staged], list[list[Staged]]], rng: object
) -> None:
    """Two deliveries of the same per-symbol streams, interleaved differently, apply the same list."""
    symbols, everything, chunks = delivery
    one = Receiver(symbols)
    for chunk in chunks:
        one.receive(chunk)
    streams = [[i for i in everything if (i.symbol, i.kind) == key] for key in {(i.symbol, i.kind) for i in everything}]
    streams.sort(key=lambda s: (s[0].symbol, s[0].kind), reverse=True)  # another interleaving: stream by stream
    two = Receiver(symbols)
    for stream in streams:
        two.receive(stream)
    assert one.applied == two.applied


def test_a_configured_symbol_never_seen_holds_the_others() -> None:
    receiver = Receiver(["AUSDT", "BUSDT"])
    a_bars, a_signals = _streams(["AUSDT"], 20, frozenset())
    receiver.receive([*a_bars, *a_signals])
    assert receiver.applied == []  # BUSDT may still deliver anything


def test_at_one_instant_signals_go_before_bars_and_symbols_by_name() -> None:
    at = T0 + timedelta(minutes=5)
    items = [
        Staged("b", "bar", "AUSDT", at),
        Staged("s2", "signal", "BUSDT", at),
        Staged("s1", "signal", "AUSDT", at),
        Staged("b0", "bar", "BUSDT", at - timedelta(minutes=1)),
    ]
    assert [i.event_id for i in sorted(items, key=order_key)] == ["b0", "s1", "s2", "b"]


def test_a_silent_stream_holds_the_order_for_the_hold_then_is_excused_until_it_speaks() -> None:
    receiver = Receiver(["AUSDT", "BUSDT"])
    a_bars, a_signals = _streams(["AUSDT"], 30, frozenset())
    b_bars, b_signals = _streams(["BUSDT"], 10, frozenset())
    receiver.receive([*b_bars, *b_signals, *a_bars[:10], *a_signals[:2]], now=0.0)
    receiver.receive([*a_bars[10:], *a_signals[2:]], now=1.0)  # B is silent from here: A waits
    settled = len(receiver.applied)
    assert receiver.applied[-1].event_id == "bar:AUSDT:10"  # the last one keyed below B's next bar (10, B)
    assert receiver.watermark.holders(30.0) == {("BUSDT", "bar"): 29.0}  # its signals are ahead (C=15)
    receiver.settle(60.9)
    assert len(receiver.applied) == settled and not receiver.watermark.excused
    assert receiver.watermark.due(61.0)
    receiver.settle(61.0)  # 60 s after B's bars began holding A back
    assert list(receiver.watermark.excused) == [("BUSDT", "bar")]
    assert [i.event_id for i in receiver.applied[settled:]] == [
        *(f"bar:AUSDT:{m}" for m in range(11, 15)),
        "signal:AUSDT:15",  # up to B's next signal (C=15, after A's at the same instant)
    ]
    assert receiver.watermark.holders(61.0) == {("BUSDT", "signal"): 0.0}  # now that one holds A back
    receiver.settle(121.0)
    assert receiver.applied[-1].event_id == "signal:AUSDT:30"  # both excused: A goes to its own end
    last = receiver.applied[-1]
    late_b = Staged("bar:BUSDT:10", "bar", "BUSDT", T0 + timedelta(minutes=10))
    receiver.receive([late_b], now=122.0)  # B's next bar is behind A's: late, but applied
    assert ("BUSDT", "bar") not in receiver.watermark.excused  # it spoke: it rejoins the order
    assert receiver.applied[-1] == late_b and item_key(late_b) < item_key(last)
