"""The telemetry service's live state and what it does with each batch and each evaluation tick.

Heartbeats, feeds and dead letters live in memory (rebuilt from the bus after a restart);
quality issues and readiness snapshots are stored and published.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import get_args

from tradebus import db, subjects
from tradebus.events import (
    BarEvent,
    HeartbeatEvent,
    Mode,
    QualityIssue,
    QualityIssueEvent,
    Readiness,
    ReadinessEvent,
    ReadinessStatus,
    Severity,
)
from tradebus.logging import get_logger
from tradebus.service import Service
from tradebus.settings import SERVICES
from tradebus.timeframes import Interval, datetime_to_ms
from tradebus_telemetry import metrics
from tradebus_telemetry.deadletters import DeadLetterLog
from tradebus_telemetry.feedpoints import FeedLimits
from tradebus_telemetry.freshness import Feed, FeedBook, Thresholds
from tradebus_telemetry.heartbeats import HeartbeatBook
from tradebus_telemetry.quality import Finding, IssueKind, QualityChecker
from tradebus_telemetry.readiness import Observations, evaluate
from tradebus_telemetry.repository import TelemetryRepository
from tradebus_telemetry.settings import TelemetrySettings

log = get_logger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


def issue_event(
    *,
    symbol: str,
    interval: Interval,
    bar_time: datetime,
    kind: IssueKind,
    severity: Severity,
    detail: str,
    mode: Mode,
    trace_id: str,
    detected_at: datetime,
) -> QualityIssueEvent:
    """An issue with the bar opening at `bar_time`: id `quality:<SYM>:<iv>:<kind>:<bar_ms>`, on the bar's trace."""
    return QualityIssueEvent.build(
        event_id=f"quality:{symbol}:{interval}:{kind}:{datetime_to_ms(bar_time)}",
        source="telemetry",
        trace_id=trace_id,
        mode=mode,
        data=QualityIssue(
            symbol=symbol,
            interval=interval,
            kind=kind,
            severity=severity,
            detail=detail,
            bar_time=bar_time,
            detected_at=detected_at,
        ),
    )


def _finding_event(event: BarEvent, finding: Finding, detected_at: datetime) -> QualityIssueEvent:
    bar = event.data
    return issue_event(
        symbol=bar.symbol,
        interval=bar.interval,
        bar_time=bar.open_time,
        kind=finding.kind,
        severity=finding.severity,
        detail=finding.detail,
        mode=event.mode,
        trace_id=event.trace_id,
        detected_at=detected_at,
    )


class Monitor:
    """Heartbeats, feeds, bar quality and dead letters, judged into readiness."""

    def __init__(self, service: Service, settings: TelemetrySettings, clock: Clock = utc_now) -> None:
        self.service = service
        self.settings = settings
        self.clock = clock
        self.heartbeats = HeartbeatBook()
        self.feeds = FeedBook()
        self.checker = QualityChecker(settings.telemetry_price_jump_ratio)
        self.dead_letters = DeadLetterLog(settings.telemetry_dlq_window_s)
        self.thresholds = Thresholds(settings.telemetry_feed_warning_s, settings.telemetry_feed_critical_s)
        self.feed_limits = FeedLimits(
            latency_warning_s=settings.telemetry_feed_latency_warning_s,
            latency_critical_s=settings.telemetry_feed_latency_critical_s,
            failure_warning=settings.telemetry_feed_failure_warning,
            failure_critical=settings.telemetry_feed_failure_critical,
            min_calls=settings.telemetry_feed_min_calls,
        )
        self._last_published: Readiness | None = None
        for symbol in settings.symbols:  # at 0 from the start: increase() counts the first issue
            for kind in get_args(IssueKind):
                for severity in Severity:
                    metrics.QUALITY_ISSUES.labels(symbol, kind, severity.value)

    @property
    def repository(self) -> TelemetryRepository:
        return TelemetryRepository(self.service.pool)

    # ----------------------------------------------------------------- consumed events
    def on_heartbeats(self, events: list[HeartbeatEvent]) -> None:
        now = self.clock()
        for event in events:
            self.heartbeats.record(event, now)

    async def on_bars(self, events: list[BarEvent]) -> None:
        """Check every bar; store and publish its issues; only then remember the bars."""
        now = self.clock()
        checked = self.checker.check([(e.data, e.mode) for e in events])
        issues = [
            _finding_event(event, finding, now)
            for event, findings in zip(events, checked.findings, strict=True)
            for finding in findings
        ]
        await self._raise_issues(issues)
        self.checker.commit(checked)
        for event in events:
            self.feeds.record(event.data, event.mode, event.trace_id, now)

    def on_dead_letter(self, payload: bytes) -> None:
        self.dead_letters.record(payload, self.clock())

    async def _raise_issues(self, issues: list[QualityIssueEvent]) -> None:
        if not issues:
            return
        await self.repository.add_issues(issues)
        await self.service.publisher.publish_many((subjects.quality(i.data.symbol), i) for i in issues)
        for issue in issues:
            metrics.QUALITY_ISSUES.labels(issue.data.symbol, issue.data.kind, issue.data.severity.value).inc()

    # ----------------------------------------------------------------- readiness
    async def readiness(self) -> Readiness:
        """Readiness now, from what telemetry has seen and its own connections."""
        now = self.clock()
        return evaluate(
            Observations(
                now=now,
                services=SERVICES,
                heartbeats=self.heartbeats.services,
                heartbeat_timeout_s=self.settings.telemetry_heartbeat_timeout_s,
                bus=self._bus(),
                database=await self._database(),
                feeds=self.feeds.live(),
                feed_thresholds=self.thresholds,
                dead_letters=self.dead_letters.recent(now),
                dlq_window_s=self.settings.telemetry_dlq_window_s,
                feed_limits=self.feed_limits,
            )
        )

    async def tick(self) -> Readiness:
        """One evaluation: metrics, stale-feed issues, and a published snapshot when due."""
        readiness = await self.readiness()
        self._set_metrics(readiness)
        await self._report_stale_feeds(readiness.checked_at)
        if self._due(readiness):
            event = ReadinessEvent.build(
                event_id=f"readiness:{datetime_to_ms(readiness.checked_at)}",
                source="telemetry",
                trace_id=uuid.uuid4().hex,
                data=readiness,
            )
            await self.repository.add_snapshot(readiness)
            await self.service.publisher.publish(subjects.READINESS, event)
            if self._last_published is None or self._last_published.status != readiness.status:
                log.info("readiness changed", status=readiness.status.value, failing=sorted(_failing(readiness)))
            self._last_published = readiness
        return readiness

    def _due(self, readiness: Readiness) -> bool:
        last = self._last_published
        if last is None or last.status != readiness.status or _failing(last) != _failing(readiness):
            return True
        return readiness.checked_at - last.checked_at >= timedelta(seconds=self.settings.telemetry_publish_every_s)

    async def _report_stale_feeds(self, now: datetime) -> None:
        """One `stale` issue per silence of a live feed, raised when it crosses the warning limit."""
        stale = []
        for feed in self.feeds.live():
            severity = self.thresholds.severity(feed.live_age_s(now) or 0.0)
            if severity is not Severity.INFO and feed.stale_reported_for != feed.live_bar_time:
                stale.append((feed, self._stale_issue(feed, severity, now)))
        await self._raise_issues([issue for _, issue in stale])
        for feed, _ in stale:
            feed.stale_reported_for = feed.live_bar_time

    def _stale_issue(self, feed: Feed, severity: Severity, now: datetime) -> QualityIssueEvent:
        assert feed.live_bar_time is not None, "only live feeds go stale"
        return issue_event(
            symbol=feed.symbol,
            interval="1m",
            bar_time=feed.live_bar_time,
            kind="stale",
            severity=severity,
            detail=f"no new live 1m bar for {feed.live_age_s(now) or 0.0:.0f} s",
            mode=Mode.LIVE,
            trace_id=feed.live_trace_id,
            detected_at=now,
        )

    def _set_metrics(self, readiness: Readiness) -> None:
        for status in ReadinessStatus:
            metrics.READINESS.labels(status.value).set(1 if status is readiness.status else 0)
        for point in readiness.failure_points:
            metrics.FAILURE_POINT_OK.labels(point.name).set(1 if point.ok else 0)
        for feed in self.feeds.live():
            metrics.FEED_AGE.labels(feed.symbol).set(feed.live_age_s(readiness.checked_at) or 0.0)

    def _bus(self) -> tuple[bool, str]:
        try:
            connected = bool(self.service.broker.connection.is_connected)
        except Exception:  # noqa: BLE001 - no connection object yet
            connected = False
        return connected, f"NATS {'connected' if connected else 'not connected'}"

    async def _database(self) -> tuple[bool, str]:
        try:
            await db.ping(self.service.pool)
        except Exception as exc:  # noqa: BLE001 - any failure means the database is not usable
            return False, f"database unreachable: {exc!r}"
        return True, "database answers"


def _failing(readiness: Readiness) -> set[str]:
    return {p.name for p in readiness.failure_points if not p.ok}
