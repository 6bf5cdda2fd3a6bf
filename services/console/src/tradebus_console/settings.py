"""The console's own environment variables (beside the shared ones)."""

from __future__ import annotations

from pydantic import Field

from tradebus.settings import Settings, url_for


class ConsoleSettings(Settings):
    """Where the services' APIs answer (`CONSOLE_<SERVICE>_URL`) and where the snapshot lives in Redis."""

    console_aggregator_url: str = Field(default_factory=lambda: url_for("aggregator"))
    console_risk_url: str = Field(default_factory=lambda: url_for("risk"))
    console_telemetry_url: str = Field(default_factory=lambda: url_for("telemetry"))
    console_rollup_url: str = Field(default_factory=lambda: url_for("rollup"))
    console_snapshot_key: str = "tradebus:console:snapshot"
    console_snapshot_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="At most one snapshot write per interval (the latest state wins; a kill loses at most this, "
        "and the APIs fill most of it back in).",
    )
    console_account_interval_s: float = Field(
        default=0.5, gt=0, description="At most one account refresh from risk per interval, after exec events."
    )
    console_upstream_timeout_s: float = Field(default=5.0, gt=0)
    console_push_coalesce_s: float = Field(
        default=0.025, ge=0, description="Deltas arriving within this of a client's first pending one share its write."
    )
