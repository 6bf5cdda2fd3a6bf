"""The telemetry service's own environment variables (thresholds are settings so tests can shrink them)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field

from tradebus.settings import Settings


class TelemetrySettings(Settings):
    """`TELEMETRY_*` thresholds for heartbeats, feed freshness, bar quality and readiness."""

    telemetry_heartbeat_timeout_s: float = Field(
        default=20.0, gt=0, description="A service without a heartbeat for longer is a critical failure point."
    )
    telemetry_feed_warning_s: float = Field(default=300.0, gt=0, description="No new live 1m bar: warning.")
    telemetry_feed_critical_s: float = Field(default=600.0, gt=0, description="No new live 1m bar: critical.")
    telemetry_price_jump_ratio: Decimal = Field(
        default=Decimal("0.10"),
        gt=0,
        allow_inf_nan=False,
        description="A close moving more than this fraction from the previous close is a jump.",
    )
    telemetry_dlq_window_s: float = Field(default=3600.0, gt=0, description="Dead letters this recent degrade.")
    telemetry_evaluate_interval_s: float = Field(default=5.0, gt=0, description="Readiness evaluation period.")
    telemetry_feed_latency_warning_s: float = Field(default=2.0, gt=0, description="Feed p95 latency: warning.")
    telemetry_feed_latency_critical_s: float = Field(default=5.0, gt=0, description="Feed p95 latency: critical.")
    telemetry_feed_failure_warning: float = Field(
        default=0.10, gt=0, le=1, description="Feed failure rate over its last calls: warning."
    )
    telemetry_feed_failure_critical: float = Field(
        default=0.30, gt=0, le=1, description="Feed failure rate over its last calls: critical."
    )
    telemetry_feed_min_calls: int = Field(
        default=10, ge=1, description="Calls in a feed's window before its failure rate is judged."
    )
    telemetry_jetstream_interval_s: float = Field(
        default=15.0, gt=0, description="How often the streams' and durables' state is read from the server."
    )
    telemetry_publish_every_s: float = Field(
        default=60.0, gt=0, description="Readiness is published on change and at least this often."
    )
    telemetry_bars_linger_s: float = Field(
        default=0.5,
        ge=0,
        description="Bars are checked in chunks gathered this long (0: each as it comes): one wake-up per "
        "chunk keeps telemetry off the CPU the pipeline's latency path needs.",
    )
    telemetry_bars_from: Literal["all", "new"] = Field(
        default="all",
        description="Where a newly created bars consumer starts in the BARS stream (an existing one resumes).",
    )
