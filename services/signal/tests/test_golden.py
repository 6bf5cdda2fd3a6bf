"""Golden regression: the engine's signals over a fixed seeded input must not change.

Performance work on the engine keeps every output byte identical; this pins them. Should the
model change on purpose, recompute `GOLDEN` with `python services/signal/tests/test_golden.py`
and say why in the commit.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from decimal import Decimal

from signal_testkit import aggregate

from tradebus.events import Bar, BarEvent, Mode, SignalEvent
from tradebus.timeframes import MINUTE_MS, Interval
from tradebus_ingest.synthetic import bars_between, start_price
from tradebus_signal.engine import SignalEngine
from tradebus_signal.params import ModelParams

HORIZONS: tuple[Interval, ...] = ("5m", "15m", "1h", "4h")
SYMBOLS = ("BTCUSDT", "ETHUSDT")
DAYS = 5
START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z
WINDOW = 60
"""Small enough that bars leave the window, so eviction and the warm-up counts are exercised."""
_EMITTED_AT = re.compile(r'"emitted_at":"[^"]*",')
GOLDEN = "90200d89b397955c4fb4159b821e1a93b68094c5e6ae0014714814a0e06db730"


def _minutes(symbol: str) -> list[Bar]:
    """Five seeded days of 1m bars, with a few minutes dropped so some buckets are incomplete."""
    last = START_MS + (DAYS * 1_440 - 1) * MINUTE_MS
    bars = bars_between(7, symbol, START_MS, last, start_price(symbol))
    return [b for i, b in enumerate(bars) if i % 997 != 13 and not 3_000 <= i < 3_040]


def _revised(bar: Bar) -> Bar:
    """A correction of `bar` (higher revision, one tick higher close and high)."""
    step = Decimal(1).scaleb(int(bar.close.as_tuple().exponent))
    return bar.model_copy(update={"close": bar.close + step, "high": max(bar.high, bar.close + step), "revision": 1})


def _events() -> Iterator[BarEvent]:
    """Both symbols' aggregated bars interleaved, with corrections and late duplicates mixed in."""
    streams = [aggregate(_minutes(s), HORIZONS) for s in SYMBOLS]
    seen: list[Bar] = []
    for i in range(max(len(s) for s in streams)):
        for stream in streams:
            if i >= len(stream):
                continue
            bar = stream[i]
            seen.append(bar)
            yield BarEvent.of(bar, source="aggregator", mode=Mode.REPLAY, trace_id=f"t-{i}")
            if i % 101 == 50 and len(seen) > 40:
                for old in (seen[-9], seen[-40]):
                    yield BarEvent.of(_revised(old), source="aggregator", mode=Mode.REPLAY, trace_id=f"r-{i}")
            if i % 211 == 7:
                yield BarEvent.of(seen[-3], source="aggregator", mode=Mode.REPLAY, trace_id=f"d-{i}")


def run_engine(events: list[BarEvent], chunk: int = 500) -> list[SignalEvent]:
    engine = SignalEngine(HORIZONS, ModelParams(), WINDOW)
    signals: list[SignalEvent] = []
    for start in range(0, len(events), chunk):
        signals.extend(engine.apply(events[start : start + chunk]).signals)
    return signals


def digest(signals: list[SignalEvent]) -> str:
    """Of the JSON as published and stored, without the wall-clock `emitted_at`."""
    h = hashlib.sha256()
    for event in signals:
        h.update(_EMITTED_AT.sub("", event.model_dump_json()).encode())
        h.update(b"\n")
    return h.hexdigest()


def test_signals_over_the_golden_input_are_unchanged() -> None:
    events = list(_events())
    signals = run_engine(events)
    assert len(signals) == len(SYMBOLS) * (DAYS * 288 - 8)  # 8 buckets have no minute at all
    assert digest(signals) == GOLDEN


def test_slices_are_the_same_signals_and_bars_a_few_signals_at_a_time() -> None:
    events = list(_events())
    whole = SignalEngine(HORIZONS, ModelParams(), WINDOW).apply(events)
    parts = list(SignalEngine(HORIZONS, ModelParams(), WINDOW).slices(events, (1, 2, 5)))
    assert [len(p.signals) for p in parts[:4]] == [1, 2, 5, 5]
    assert all(len(p.signals) == 5 for p in parts[2:-1]) and len(parts[-1].signals) <= 5
    assert digest([s for p in parts for s in p.signals]) == GOLDEN
    assert [b for p in parts for b in p.bars] == whole.bars


if __name__ == "__main__":
    print(digest(run_engine(list(_events()))))


def test_an_updated_copy_of_an_encoded_event_is_encoded_afresh() -> None:
    event = run_engine(list(_events())[:40])[0]
    published = event.model_dump_json()
    copy = event.model_copy(update={"trace_id": "other"})
    assert event.model_dump_json() == published
    assert copy.model_dump_json() == published.replace(f'"trace_id":"{event.trace_id}"', '"trace_id":"other"')
