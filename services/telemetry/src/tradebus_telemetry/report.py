"""The `GET /v1/data-quality` report: recent issues, feed health per symbol, counts of the last hour."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from tradebus.events import Mode, Severity, UtcDatetime
from tradebus_telemetry.freshness import Feed, Thresholds


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class IssueRecord(_Model):
    event_id: str
    symbol: str
    interval: str
    kind: str
    severity: Severity
    detail: str
    bar_time: UtcDatetime | None
    detected_at: UtcDatetime
    mode: Mode
    trace_id: str


class FeedHealth(_Model):
    symbol: str
    mode: Mode
    """Mode of the newest bar: a `replay` feed is history, not a live feed."""
    last_bar_time: UtcDatetime
    last_arrival: UtcDatetime
    age_s: float
    """Seconds since the newest bar (of either mode) arrived."""
    live_bar_time: UtcDatetime | None
    live_age_s: float | None
    """Seconds since a new live bar arrived; null when the symbol never had one."""
    status: Literal["ok", "warning", "critical", "no_live_feed"]


class IssueCounts(_Model):
    critical: int
    warning: int


class DataQualityReport(_Model):
    checked_at: UtcDatetime
    last_hour: IssueCounts
    feeds: list[FeedHealth]
    issues: list[IssueRecord]


def feed_health(feed: Feed, now: datetime, limits: Thresholds) -> FeedHealth:
    live_age = feed.live_age_s(now)
    status: Literal["ok", "warning", "critical", "no_live_feed"] = "no_live_feed"
    if live_age is not None:
        severity = limits.severity(live_age)
        status = "ok" if severity is Severity.INFO else severity.value  # type: ignore[assignment]
    return FeedHealth(
        symbol=feed.symbol,
        mode=feed.last_mode,
        last_bar_time=feed.last_bar_time,
        last_arrival=feed.last_arrival,
        age_s=round(max(0.0, (now - feed.last_arrival).total_seconds()), 3),
        live_bar_time=feed.live_bar_time,
        live_age_s=None if live_age is None else round(live_age, 3),
        status=status,
    )


def build_report(
    *,
    now: datetime,
    feeds: Iterable[Feed],
    limits: Thresholds,
    issues: Iterable[Mapping[str, Any]],
    counts: Mapping[str, int],
) -> DataQualityReport:
    return DataQualityReport(
        checked_at=now,
        last_hour=IssueCounts(critical=counts.get("critical", 0), warning=counts.get("warning", 0)),
        feeds=[feed_health(f, now, limits) for f in sorted(feeds, key=lambda f: f.symbol)],
        issues=[IssueRecord.model_validate(dict(row)) for row in issues],
    )
