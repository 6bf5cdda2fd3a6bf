"""The aggregator's own Prometheus metrics (names fixed by ARCHITECTURE.md)."""

from __future__ import annotations

from prometheus_client import Counter

from tradebus.timeframes import HIGHER_INTERVALS

BARS_PUBLISHED = Counter(
    "tradebus_aggregator_bars_published_total", "Higher bars published, revisions included.", ["interval"]
)
BARS_REVISED = Counter(
    "tradebus_aggregator_bars_revised_total", "Higher bars republished after a late minute changed them.", ["interval"]
)
INCOMPLETE_BARS = Counter(
    "tradebus_aggregator_incomplete_bars_total", "Higher bars published with minutes missing.", ["interval"]
)

for _interval in HIGHER_INTERVALS:  # at 0 from the start: increase() counts the first bar
    for _counter in (BARS_PUBLISHED, BARS_REVISED, INCOMPLETE_BARS):
        _counter.labels(_interval)
