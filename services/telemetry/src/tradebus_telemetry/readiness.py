"""Readiness from named failure points: BLOCKED when a critical one fails, DEGRADED on a warning.

Every failure point says how it is detected and, where a safe one exists, how it heals; the
functions here are pure so the rules are tested without a bus or a clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from tradebus.events import FailurePoint, Readiness, ReadinessStatus, Severity
from tradebus_telemetry.deadletters import DeadLetter
from tradebus_telemetry.feedpoints import FeedLimits, feed_points
from tradebus_telemetry.freshness import Feed, Thresholds
from tradebus_telemetry.heartbeats import Seen


@dataclass(frozen=True, slots=True)
class Observations:
    """Everything readiness is judged on, gathered at one instant."""

    now: datetime
    services: Sequence[str]
    heartbeats: Mapping[str, Seen]
    heartbeat_timeout_s: float
    bus: tuple[bool, str]
    database: tuple[bool, str]
    feeds: Sequence[Feed]
    feed_thresholds: Thresholds
    dead_letters: Sequence[DeadLetter]
    dlq_window_s: float
    feed_limits: FeedLimits


def status_of(points: Sequence[FailurePoint]) -> ReadinessStatus:
    failing = {p.severity for p in points if not p.ok}
    if Severity.CRITICAL in failing:
        return ReadinessStatus.BLOCKED
    if Severity.WARNING in failing:
        return ReadinessStatus.DEGRADED
    return ReadinessStatus.READY


def evaluate(obs: Observations) -> Readiness:
    points = [heartbeat_point(s, obs.heartbeats.get(s), obs.now, obs.heartbeat_timeout_s) for s in obs.services]
    points += [
        bus_point(*obs.bus),
        database_point(*obs.database),
        feed_point(obs.feeds, obs.now, obs.feed_thresholds),
        offline_data_point(obs.heartbeats.get("ingest")),
        risk_trading_point(obs.heartbeats.get("risk")),
        risk_breaker_point(obs.heartbeats.get("risk")),
        dlq_point(obs.dead_letters, obs.dlq_window_s),
        redis_point(obs.heartbeats),
        *feed_points(obs.heartbeats, obs.feed_limits),
    ]
    return Readiness(status=status_of(points), failure_points=points, checked_at=obs.now)


def heartbeat_point(service: str, seen: Seen | None, now: datetime, timeout_s: float) -> FailurePoint:
    ok, detail = False, f"no heartbeat from {service} yet"
    if seen is not None:
        age = seen.age_s(now)
        if age > timeout_s:
            detail = f"last heartbeat {age:.0f} s ago (limit {timeout_s:.0f} s) from {seen.instance}"
        elif seen.status == "down":
            detail = f"{seen.instance} reports itself down: failing {_failing(seen.checks) or 'checks'}"
        else:
            ok, detail = True, f"{seen.instance} {seen.status}, heartbeat {age:.0f} s ago"
    return FailurePoint(
        name=f"heartbeat:{service}",
        ok=ok,
        severity=Severity.CRITICAL,
        detail=detail,
        detection=f"telemetry.heartbeat.{service} older than {timeout_s:.0f} s, or the service reports itself down",
        healing=f"the supervisor (compose restart policy or `tradebus up`) restarts {service}; "
        "it resumes from its durable consumers",
    )


def bus_point(ok: bool, detail: str) -> FailurePoint:
    return FailurePoint(
        name="bus",
        ok=ok,
        severity=Severity.CRITICAL,
        detail=detail,
        detection="telemetry's own NATS connection state",
        healing="the NATS client reconnects on its own; JetStream keeps unacknowledged messages meanwhile",
    )


def database_point(ok: bool, detail: str) -> FailurePoint:
    return FailurePoint(
        name="database",
        ok=ok,
        severity=Severity.CRITICAL,
        detail=detail,
        detection="`SELECT 1` on telemetry's own PostgreSQL pool",
        healing="the pool reconnects on the next query; failed batches are redelivered, not lost",
    )


def feed_point(feeds: Sequence[Feed], now: datetime, limits: Thresholds) -> FailurePoint:
    detection = (
        f"no new live 1m bar for {limits.warning_s:.0f} s (warning) or {limits.critical_s:.0f} s (critical) on a symbol"
    )
    healing = (
        "ingest's AUTO source falls back from WebSocket to REST on its own, and gap repair refetches missed minutes"
    )
    if not feeds:
        return FailurePoint(
            name="feed_freshness",
            ok=True,
            severity=Severity.WARNING,
            detail="no live feed yet",
            detection=detection,
            healing=healing,
        )
    ages = sorted(((f.live_age_s(now) or 0.0, f.symbol) for f in feeds), reverse=True)
    worst_age, worst = ages[0]
    severity = limits.severity(worst_age)
    stale = [f"{symbol} {age:.0f} s" for age, symbol in ages if limits.severity(age) is not Severity.INFO]
    detail = (
        f"no new live bar: {', '.join(stale)}"
        if stale
        else f"{len(feeds)} live feed(s), oldest {worst} {worst_age:.0f} s ago"
    )
    return FailurePoint(
        name="feed_freshness",
        ok=severity is Severity.INFO,
        severity=Severity.CRITICAL if severity is Severity.CRITICAL else Severity.WARNING,
        detail=detail,
        detection=detection,
        healing=healing,
    )


def offline_data_point(ingest: Seen | None) -> FailurePoint:
    offline = ingest is not None and ingest.checks.get("feed") is False
    if ingest is None:
        detail = "no heartbeat from ingest yet"
    elif offline:
        detail = "ingest reports feed: false; it runs on offline (replay or synthetic) data"
    else:
        detail = "ingest reports a live feed" if "feed" in ingest.checks else "ingest reports no feed check"
    return FailurePoint(
        name="offline_data_source",
        ok=not offline,
        severity=Severity.WARNING,
        detail=detail,
        detection="`feed` check in ingest's heartbeat is false",
        healing="ingest's AUTO source retries Binance and switches back to the live feed when it answers",
    )


def risk_trading_point(risk: Seen | None) -> FailurePoint:
    return _risk_check_point(
        risk,
        "trading",
        name="risk_trading",
        failing="risk reports trading: false (drawdown freeze, daily loss limit or max open positions)",
        passing="risk is taking signals",
        healing="none automatic: a freeze is a safety stop; review, then `POST /v1/risk/reset` with the API token",
    )


def risk_breaker_point(risk: Seen | None) -> FailurePoint:
    return _risk_check_point(
        risk,
        "breaker",
        name="risk_breaker",
        failing="risk reports breaker: false (a circuit breaker is open or half-open: GET /v1/risk/breakers)",
        passing="every circuit breaker closed",
        healing="after the cool-down one probe entry is let through and its fill closes the breaker; "
        "or `POST /v1/risk/breaker/reset` with the API token after review",
    )


def _risk_check_point(
    risk: Seen | None, check: str, *, name: str, failing: str, passing: str, healing: str
) -> FailurePoint:
    """A warning point from one check of risk's heartbeat (false: failing)."""
    failed = risk is not None and risk.checks.get(check) is False
    detail = "no heartbeat from risk yet" if risk is None else failing if failed else passing
    return FailurePoint(
        name=name,
        ok=not failed,
        severity=Severity.WARNING,
        detail=detail,
        detection=f"`{check}` check in risk's heartbeat is false",
        healing=healing,
    )


def dlq_point(letters: Sequence[DeadLetter], window_s: float) -> FailurePoint:
    if letters:
        last = letters[-1].note
        detail = (
            f"{len(letters)} dead letter(s) in the last {window_s:.0f} s; "
            f"latest from {last.service}/{last.consumer} on {last.subject}: {last.reason}"
        )
    else:
        detail = f"no dead letters in the last {window_s:.0f} s"
    return FailurePoint(
        name="dlq",
        ok=not letters,
        severity=Severity.WARNING,
        detail=detail,
        detection=f"a message on dlq.> within the last {window_s:.0f} s",
        healing="none automatic: inspect with `tradebus tail 'dlq.>'`, fix the producer, re-publish the payload",
    )


def redis_point(heartbeats: Mapping[str, Seen]) -> FailurePoint:
    """Never critical: Redis holds only what can be rebuilt (rate-limit windows, the console's state)."""
    cut_off = sorted(name for name, seen in heartbeats.items() if seen.checks.get("redis") is False)
    detail = (
        f"redis unreachable from {', '.join(cut_off)}: their rate limits hold per instance only"
        if cut_off
        else "every service reaching redis says so"
    )
    return FailurePoint(
        name="redis",
        ok=not cut_off,
        severity=Severity.WARNING,
        detail=detail,
        detection="`redis` check in a service's heartbeat is false",
        healing="each service retries Redis every few seconds and shares its limits again once it answers",
    )


def _failing(checks: Mapping[str, bool]) -> str:
    return ", ".join(sorted(name for name, ok in checks.items() if not ok))
