"""The signal service's own metrics (names in docs/ARCHITECTURE.md)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from tradebus.metrics import LATENCY_BUCKETS

SIGNALS = Counter("tradebus_signal_signals_total", "Signals emitted, by symbol and state.", ["symbol", "state"])
COMPUTE_SECONDS = Histogram(
    "tradebus_signal_compute_seconds", "Time to compute one signal from the horizons' state.", buckets=LATENCY_BUCKETS
)
