"""Telemetry's own Prometheus metrics (names fixed by ARCHITECTURE.md; dashboards rely on them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

READINESS = Gauge("tradebus_telemetry_readiness", "1 for the current readiness status, 0 for the others.", ["status"])
FAILURE_POINT_OK = Gauge("tradebus_telemetry_failure_point_ok", "1 while the failure point is ok.", ["name"])
QUALITY_ISSUES = Counter(
    "tradebus_telemetry_quality_issues_total", "Data-quality issues detected.", ["symbol", "kind", "severity"]
)
FEED_AGE = Gauge(
    "tradebus_telemetry_feed_age_seconds", "Seconds since a new live 1m bar arrived for the symbol.", ["symbol"]
)
