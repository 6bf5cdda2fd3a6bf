"""Readiness rules and the in-memory books they read, without a bus or a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from helpers import bar, heartbeat

from tradebus.events import FailurePoint, FeedStats, Mode, ReadinessStatus, Severity
from tradebus.settings import SERVICES
from tradebus_telemetry.deadletters import DeadLetterLog
from tradebus_telemetry.feedpoints import FeedLimits
from tradebus_telemetry.freshness import FeedBook, Thresholds
from tradebus_telemetry.heartbeats import HeartbeatBook
from tradebus_telemetry.readiness import Observations, evaluate, feed_point, status_of

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LIMITS = Thresholds(300, 600)


def _point(ok: bool, severity: Severity) -> FailurePoint:
    return FailurePoint(name="x", ok=ok, severity=severity, detail="")


def test_status_rules() -> None:
    ok_c, ok_w = _point(True, Severity.CRITICAL), _point(True, Severity.WARNING)
    bad_c, bad_w = _point(False, Severity.CRITICAL), _point(False, Severity.WARNING)
    assert status_of([ok_c, ok_w]) is ReadinessStatus.READY
    assert status_of([ok_c, bad_w]) is ReadinessStatus.DEGRADED
    assert status_of([bad_c, ok_w]) is ReadinessStatus.BLOCKED
    assert status_of([bad_c, bad_w]) is ReadinessStatus.BLOCKED
    assert status_of([]) is ReadinessStatus.READY


def _observe(
    beats: HeartbeatBook,
    *,
    feeds: FeedBook | None = None,
    letters: DeadLetterLog | None = None,
    bus: bool = True,
    database: bool = True,
) -> dict[str, FailurePoint]:
    letters = letters or DeadLetterLog(3600)
    readiness = evaluate(
        Observations(
            now=NOW,
            services=SERVICES,
            heartbeats=beats.services,
            heartbeat_timeout_s=20,
            bus=(bus, "bus"),
            database=(database, "db"),
            feeds=(feeds or FeedBook()).live(),
            feed_thresholds=LIMITS,
            dead_letters=letters.recent(NOW),
            dlq_window_s=3600,
            feed_limits=FeedLimits(),
        )
    )
    points = {p.name: p for p in readiness.failure_points}
    assert readiness.status is status_of(readiness.failure_points)
    assert all(p.detection and p.healing for p in points.values())
    return points | {"_status": FailurePoint(name=readiness.status.value, ok=True, severity="info", detail="")}


def _beats(**checks: dict[str, bool]) -> HeartbeatBook:
    book = HeartbeatBook()
    for n, service in enumerate(SERVICES):
        book.record(heartbeat(service, n, checks=checks.get(service), at=NOW - timedelta(seconds=2)), NOW)
    return book


def _status(points: dict[str, FailurePoint]) -> str:
    return points["_status"].name


def _failing(points: dict[str, FailurePoint]) -> set[str]:
    return {n for n, p in points.items() if not p.ok}


def test_all_heartbeats_fresh_is_ready() -> None:
    points = _observe(_beats())
    assert _status(points) == "READY"
    assert points["feed_freshness"].detail == "no live feed yet"
    assert len(points) - 1 == 6 + 8  # a heartbeat per service, and bus, database, feed, offline, risk x2, dlq, redis


def test_missing_or_old_heartbeat_blocks() -> None:
    beats = _beats()
    del beats.services["signal"]
    beats.record(heartbeat("risk", 99, at=NOW - timedelta(seconds=30)), NOW)  # older than the one it has: ignored
    points = _observe(beats)
    assert (_status(points), _failing(points)) == ("BLOCKED", {"heartbeat:signal"})
    assert "no heartbeat from signal" in points["heartbeat:signal"].detail
    old = HeartbeatBook()
    for service in SERVICES:
        old.record(heartbeat(service, 0, at=NOW - timedelta(seconds=21)), NOW)
    assert _failing(_observe(old)) == {f"heartbeat:{s}" for s in SERVICES}


def test_service_reporting_down_blocks() -> None:
    beats = _beats()
    beats.record(heartbeat("aggregator", 1, status="down", checks={"database": False}, at=NOW), NOW)
    points = _observe(beats)
    assert _failing(points) == {"heartbeat:aggregator"}
    assert "database" in points["heartbeat:aggregator"].detail


def test_offline_data_and_risk_halt_degrade() -> None:
    points = _observe(_beats(ingest={"feed": False}, risk={"trading": False}))
    assert (_status(points), _failing(points)) == ("DEGRADED", {"offline_data_source", "risk_trading"})
    assert _status(_observe(_beats(ingest={"feed": True}, risk={"trading": True}))) == "READY"


def test_an_open_circuit_breaker_degrades() -> None:
    points = _observe(_beats(risk={"trading": True, "breaker": False}))
    assert (_status(points), _failing(points)) == ("DEGRADED", {"risk_breaker"})
    assert _status(_observe(_beats(risk={"breaker": True}))) == "READY"


def test_own_bus_and_database_block() -> None:
    assert _failing(_observe(_beats(), bus=False, database=False)) == {"bus", "database"}


def test_dead_letter_in_window_degrades() -> None:
    letters = DeadLetterLog(3600)
    letters.record(b"not json at all", NOW - timedelta(hours=2))
    letters.record(b'{"service":"signal","consumer":"bars","subject":"bars.5m.X","reason":"malformed"}', NOW)
    points = _observe(_beats(), letters=letters)
    assert (_status(points), _failing(points)) == ("DEGRADED", {"dlq"})
    assert "1 dead letter" in points["dlq"].detail and "signal/bars" in points["dlq"].detail


def test_feed_freshness_thresholds() -> None:
    feeds = FeedBook()
    feeds.record(bar(0, symbol="BTCUSDT"), Mode.LIVE, "t", NOW - timedelta(seconds=200))
    feeds.record(bar(0, symbol="ETHUSDT"), Mode.REPLAY, "t", NOW - timedelta(seconds=900))
    assert feed_point(feeds.live(), NOW, LIMITS).ok
    warning = feed_point(feeds.live(), NOW + timedelta(seconds=200), LIMITS)
    assert (warning.ok, warning.severity) == (False, Severity.WARNING)
    assert "BTCUSDT 400 s" in warning.detail
    critical = feed_point(feeds.live(), NOW + timedelta(seconds=500), LIMITS)
    assert (critical.ok, critical.severity) == (False, Severity.CRITICAL)
    assert _status(_observe(_beats(), feeds=feeds)) == "READY"


def test_only_new_live_bars_refresh_a_feed() -> None:
    feeds = FeedBook()
    feeds.record(bar(5), Mode.LIVE, "t5", NOW)
    feeds.record(bar(3), Mode.LIVE, "t3", NOW + timedelta(minutes=9))
    feeds.record(bar(9), Mode.REPLAY, "t9", NOW + timedelta(minutes=9))
    (feed,) = feeds.live()
    assert feed.live_age_s(NOW + timedelta(minutes=10)) == 600
    assert (feed.last_mode, feed.live_trace_id) == (Mode.REPLAY, "t5")
    assert feeds.feeds["BTCUSDT"].last_bar_time == bar(9).open_time


def test_heartbeat_backlog_is_as_old_as_it_was_emitted() -> None:
    book = HeartbeatBook()
    book.record(heartbeat("ingest", 1, at=NOW - timedelta(minutes=5)), NOW)
    assert book.services["ingest"].age_s(NOW) == 300


def test_redis_down_degrades_readiness_never_blocks() -> None:
    healthy = {s: {"redis": True} for s in SERVICES}
    assert _observe(_beats(**healthy))["redis"].ok
    points = _observe(_beats(**{**healthy, "risk": {"redis": False}, "signal": {"redis": False}}))
    assert not points["redis"].ok and points["redis"].severity is Severity.WARNING
    assert "risk, signal" in points["redis"].detail
    assert _status(points) == "DEGRADED"


def _stats(*, p95: float | None = 0.002, rate: float = 0.0, window: int = 1000, error: str = "") -> FeedStats:
    return FeedStats(
        calls=window, failures=round(rate * window), window=window, failure_rate=rate,
        avg_latency_s=p95, p95_latency_s=p95, last_error=error,
    )  # fmt: skip


def _beats_with(feeds: dict[str, dict[str, FeedStats]]) -> HeartbeatBook:
    """Every service beating with healthy database and bus feeds, and `feeds[service]` on top."""
    book = HeartbeatBook()
    for n, service in enumerate(SERVICES):
        own = {"database": _stats(), "bus": _stats()} | feeds.get(service, {})
        book.record(heartbeat(service, n, at=NOW - timedelta(seconds=2), feeds=own), NOW)
    return book


def test_healthy_feeds_pass_and_each_reported_feed_has_a_point() -> None:
    points = _observe(_beats_with({"ingest": {"binance_rest": _stats(p95=0.3)}}))
    assert _status(points) == "READY"
    assert {"feed_health:database", "feed_health:bus", "feed_health:binance_rest"} <= points.keys()
    assert "feed_health:binance_ws" not in points  # nobody reported it
    assert "ingest: p95 0.300 s" in points["feed_health:binance_rest"].detail


def test_slow_or_failing_feeds_degrade_and_block_by_the_thresholds() -> None:
    slow = _observe(_beats_with({"rollup": {"database": _stats(p95=2.5)}}))
    assert _failing(slow) == {"feed_health:database"} and _status(slow) == "DEGRADED"
    assert slow["feed_health:database"].detail.startswith("rollup: p95 2.500 s")
    failing = _observe(_beats_with({"signal": {"bus": _stats(rate=0.4, window=50, error="TimeoutError()")}}))
    assert _failing(failing) == {"feed_health:bus"} and _status(failing) == "BLOCKED"
    assert "40.0% of the last 50 calls failed (TimeoutError())" in failing["feed_health:bus"].detail
    stalled = _observe(_beats_with({"risk": {"database": _stats(p95=6.0)}}))
    assert _status(stalled) == "BLOCKED"


def test_the_exchange_feeds_only_degrade_and_a_few_calls_are_not_judged() -> None:
    down = _observe(_beats_with({"ingest": {"binance_rest": _stats(rate=1.0, window=40), "binance_ws": _stats()}}))
    assert _failing(down) == {"feed_health:binance_rest"} and _status(down) == "DEGRADED"
    blip = _observe(_beats_with({"aggregator": {"database": _stats(rate=1.0, window=3)}}))
    assert _status(blip) == "READY"
