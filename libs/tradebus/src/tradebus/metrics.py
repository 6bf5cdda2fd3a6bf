"""Prometheus metrics shared by every service (one process, one registry)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

BUS_IN = Counter("tradebus_bus_messages_in_total", "Messages consumed from the bus.", ["service", "subject"])
BUS_OUT = Counter("tradebus_bus_messages_out_total", "Messages published to the bus.", ["service", "subject"])
HANDLER_SECONDS = Histogram(
    "tradebus_handler_duration_seconds",
    "Time to handle one consumed batch.",
    ["service", "consumer"],
    buckets=LATENCY_BUCKETS,
)
HANDLER_ERRORS = Counter(
    "tradebus_handler_errors_total", "Batches or messages whose handling failed.", ["service", "consumer", "kind"]
)
DLQ_MESSAGES = Counter("tradebus_dlq_messages_total", "Messages sent to the dead-letter queue.", ["service", "reason"])
DB_SECONDS = Histogram(
    "tradebus_db_query_duration_seconds", "Database round trips.", ["service", "query"], buckets=LATENCY_BUCKETS
)
CONSUMER_LAG = Gauge(
    "tradebus_consumer_lag_messages", "Messages pending for a durable consumer.", ["service", "consumer"]
)
CONSUMER_REWINDS = Counter(
    "tradebus_consumer_rewinds_total",
    "Durables rewound to their ack floor: deliveries never acked (a restart) or a gap in them (a reconnect).",
    ["service", "consumer"],
)
RATE_LIMITED = Counter(
    "tradebus_http_rate_limited_total", "HTTP API requests refused (429) by the rate limits.", ["service"]
)
SERVICE_UP = Gauge("tradebus_service_ready", "1 while the service's readiness checks pass.", ["service"])
READINESS_CHECK = Gauge(
    "tradebus_readiness_check_ok",
    "1 while the named readiness check passes (bus, database, consumers, lease, the service's own).",
    ["service", "check"],
)


def render_latest() -> tuple[bytes, str]:
    """The Prometheus exposition body and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
