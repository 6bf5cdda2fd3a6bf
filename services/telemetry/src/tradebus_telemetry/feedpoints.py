"""Feed health (R-5.2) judged: one failure point per feed from the stats every service sends in
its heartbeat (`tradebus.feedhealth`).

A feed fails its point when, at any service, its p95 latency or its failure rate over the last
calls reaches the warning threshold (2 s / 10 % by default); critical from 5 s / 30 %. The rate is
judged once a service has made `min_calls` calls in its window, so one refused connection while a
server starts does not block trading. The database and the bus are critical (nothing can be
stored or published); the exchange's feeds only degrade: what blocks trading on their account is
the data going stale (`feed_freshness`), and offline mode never calls them well.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from tradebus.events import FailurePoint, FeedStats, Severity
from tradebus.feedhealth import FEEDS
from tradebus_telemetry.heartbeats import Seen

CAN_BLOCK: Final = frozenset({"database", "bus"})
HEALING: Final[Mapping[str, str]] = {
    "database": "the pools reconnect on the next query; failed batches are redelivered, not lost",
    "bus": "the NATS clients reconnect on their own; JetStream keeps what was not acked",
    "binance_rest": "ingest backs off and retries (and honours Retry-After); gap repair refetches what it missed",
    "binance_ws": "ingest reconnects with backoff and repairs the gap by REST",
}


@dataclass(frozen=True, slots=True)
class FeedLimits:
    latency_warning_s: float = 2.0
    latency_critical_s: float = 5.0
    failure_warning: float = 0.10
    failure_critical: float = 0.30
    min_calls: int = 10

    def severity(self, stats: FeedStats) -> Severity:
        """INFO when healthy, else how bad: the worse of its p95 latency and its failure rate."""
        latency = stats.p95_latency_s or 0.0
        rate = stats.failure_rate if stats.window >= self.min_calls else 0.0
        if latency >= self.latency_critical_s or rate >= self.failure_critical:
            return Severity.CRITICAL
        if latency >= self.latency_warning_s or rate >= self.failure_warning:
            return Severity.WARNING
        return Severity.INFO


def describe(service: str, stats: FeedStats) -> str:
    latency = "no timed call" if stats.p95_latency_s is None else f"p95 {stats.p95_latency_s:.3f} s"
    text = f"{service}: {latency}, {stats.failure_rate:.1%} of the last {stats.window} calls failed"
    return text + (f" ({stats.last_error})" if stats.failure_rate and stats.last_error else "")


def feed_points(heartbeats: Mapping[str, Seen], limits: FeedLimits) -> list[FailurePoint]:
    """A point for each feed of FEEDS that some service reported, in FEEDS's order."""
    points = []
    for feed in FEEDS:
        reports = {name: seen.feeds[feed] for name, seen in sorted(heartbeats.items()) if feed in seen.feeds}
        if reports:
            points.append(_point(feed, reports, limits))
    return points


def _point(feed: str, reports: Mapping[str, FeedStats], limits: FeedLimits) -> FailurePoint:
    judged = {service: limits.severity(stats) for service, stats in reports.items()}
    failing = [describe(s, reports[s]) for s, severity in judged.items() if severity is not Severity.INFO]
    critical = Severity.CRITICAL in judged.values() and feed in CAN_BLOCK
    if failing:
        detail = "; ".join(failing)
    else:
        worst = max(reports, key=lambda s: reports[s].p95_latency_s or 0.0)
        detail = f"{len(reports)} service(s) ok; slowest {describe(worst, reports[worst])}"
    return FailurePoint(
        name=f"feed_health:{feed}",
        ok=not failing,
        severity=Severity.CRITICAL if critical else Severity.WARNING,
        detail=detail,
        detection=(
            f"p95 latency >= {limits.latency_warning_s:g} s (warning) / {limits.latency_critical_s:g} s (critical), "
            f"or failure rate >= {limits.failure_warning:.0%} / {limits.failure_critical:.0%} over the last calls "
            f"(from {limits.min_calls}), at any service"
            + ("" if feed in CAN_BLOCK else "; the exchange's feeds only degrade")
        ),
        healing=HEALING[feed],
    )
