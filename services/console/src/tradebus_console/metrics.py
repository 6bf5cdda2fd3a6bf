"""The console's own Prometheus metrics (beside the shared ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from tradebus.metrics import LATENCY_BUCKETS

EVENTS = Counter("tradebus_console_events_total", "Bus events the console applied.", ["kind"])
REFUSED = Counter("tradebus_console_events_refused_total", "Bus messages the console could not decode.")
PUSHED = Counter("tradebus_console_pushed_total", "Deltas queued to connected browsers (one per client).")
CLIENTS = Gauge("tradebus_console_clients", "Browsers connected to the live stream.")
DROPPED_CLIENTS = Counter("tradebus_console_dropped_clients_total", "Streams ended because the browser fell behind.")
APPLY_SECONDS = Histogram(
    "tradebus_console_apply_seconds", "Decode, apply and fan out one bus event.", buckets=LATENCY_BUCKETS
)
