"""The ingest service's own Prometheus metrics (names fixed in docs/ARCHITECTURE.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Final

from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, Histogram

from tradebus.events import Bar
from tradebus.timeframes import datetime_to_ms

BARS: Final = PromCounter("tradebus_ingest_bars_total", "1m bars published (acked by JetStream).", ["symbol", "source"])
FEED_LATENCY: Final = Histogram(
    "tradebus_ingest_feed_latency_seconds",
    "Live bars only: from the bar's close time to its publication being acked.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
LAST_BAR: Final = Gauge(
    "tradebus_ingest_last_bar_timestamp_seconds", "Open time of the last 1m bar published (epoch s).", ["symbol"]
)
REJECTED_ROWS: Final = PromCounter(
    "tradebus_ingest_rejected_rows_total", "Replay rows skipped because they are not a valid 1m bar.", ["reason"]
)
REJECTED_MESSAGES: Final = PromCounter(
    "tradebus_ingest_rejected_messages_total",
    "Exchange messages (WebSocket frames, REST klines) that are not a valid 1m kline; none became a bar.",
    ["transport", "reason"],
)
WS_RECONNECTIONS: Final = PromCounter(
    "websocket_reconnections_total", "WebSocket connection attempts after the first, by outcome.", ["source", "status"]
)
WS_CONNECTED: Final = Gauge("websocket_connection_status", "1 while the WebSocket is connected, else 0.", ["source"])
REST_CALLS: Final = PromCounter(
    "tradebus_ingest_rest_calls_total", "Exchange REST calls by HTTP status (`error`: no response).", ["status"]
)


def record_published(bars: Sequence[Bar], *, live: bool, now_ms: int, latency_from_ms: int | None = None) -> None:
    """Count an acked batch; feed latency is only meaningful for bars on the wall clock, and only
    for those that closed at or after `latency_from_ms` when given (not for fetched history)."""
    counts: Counter[tuple[str, str]] = Counter()
    last: dict[str, int] = {}
    for bar in bars:
        counts[bar.symbol, bar.source.value] += 1
        last[bar.symbol] = max(last.get(bar.symbol, 0), bar.open_ms)
        if live and (latency_from_ms is None or datetime_to_ms(bar.close_time) >= latency_from_ms):
            FEED_LATENCY.observe(max(0.0, (now_ms - datetime_to_ms(bar.close_time)) / 1000))
    for (symbol, source), n in counts.items():
        BARS.labels(symbol, source).inc(n)
    for symbol, open_ms in last.items():
        LAST_BAR.labels(symbol).set(open_ms / 1000)
