"""The readiness gate (R-4.10): no new position while telemetry's readiness is BLOCKED.

Telemetry publishes its readiness on `telemetry.readiness` (every few seconds when it changes,
else every `TELEMETRY_PUBLISH_EVERY_S`); risk keeps the newest report in memory. An accepted
LIVE entry is then screened:
- BLOCKED: rejected `readiness_blocked`, the failing critical points in the detail;
- DEGRADED: `RISK_READINESS_DEGRADED=trade` (default) accepts it and flags the audit detail with
  the failing points; `block` rejects it `readiness_degraded`;
- READY, no report yet, or a report older than `RISK_READINESS_MAX_AGE_S` (telemetry gone:
  nothing is known, and a stale BLOCKED must not freeze trading forever): accepted, the stale
  case flagged in the detail.
Exits, stops and targets are never gated.

Readiness is wall-clock state: what is wrong NOW says nothing about a bar of last month. So the
gate applies to live signals only, which are judged on the wall clock already (`stale_data`);
a replay is decided on event time alone and gives the same decisions whatever telemetry says
meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal

from tradebus.events import Readiness, ReadinessStatus, Severity
from tradebus.timeframes import iso_utc
from tradebus_risk.rules import Reason, Verdict

EntryGate = Callable[[Verdict], Verdict]
"""Screens an accepted live entry: the same verdict, a flagged one, or a rejection."""
DegradedPolicy = Literal["trade", "block"]


class ReadinessGate:
    """The newest readiness report, and the rule above."""

    def __init__(
        self, degraded: DegradedPolicy, max_age_s: float, clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC)
    ) -> None:
        self.degraded = degraded
        self.max_age_s = max_age_s
        self._clock = clock
        self.readiness: Readiness | None = None

    def observe(self, readiness: Readiness) -> None:
        """Keep `readiness` if it is the newest report seen (redeliveries come out of order)."""
        if self.readiness is None or readiness.checked_at >= self.readiness.checked_at:
            self.readiness = readiness

    def current(self) -> tuple[ReadinessStatus | None, str]:
        """The status the gate goes by (None: unknown) and why."""
        readiness = self.readiness
        if readiness is None:
            return None, "no readiness report received"
        age = (self._clock() - readiness.checked_at).total_seconds()
        if age > self.max_age_s:
            return None, f"last readiness report ({readiness.status.value}) is {age:.0f} s old"
        return readiness.status, _failing(readiness)

    def blocks_entries(self) -> str | None:
        """Why new live entries are refused now, or None."""
        status, why = self.current()
        if status is ReadinessStatus.BLOCKED or (status is ReadinessStatus.DEGRADED and self.degraded == "block"):
            return f"readiness {status.value}: {why}"
        return None

    def __call__(self, verdict: Verdict) -> Verdict:
        status, why = self.current()
        checked = f" at {iso_utc(self.readiness.checked_at)}" if self.readiness is not None else ""
        if status is ReadinessStatus.BLOCKED:
            return Verdict("rejected", Reason.READINESS_BLOCKED, f"readiness BLOCKED{checked}: {why}")
        if status is ReadinessStatus.DEGRADED:
            if self.degraded == "block":
                return Verdict("rejected", Reason.READINESS_DEGRADED, f"readiness DEGRADED{checked}: {why}")
            return replace(verdict, detail=f"{verdict.detail}; traded while readiness DEGRADED{checked}: {why}")
        if status is None and self.readiness is not None:
            return replace(verdict, detail=f"{verdict.detail}; readiness unknown: {why}")
        return verdict


def _failing(readiness: Readiness) -> str:
    """The failing points, critical first: `name (detail)`."""
    failing = sorted(
        (p for p in readiness.failure_points if not p.ok), key=lambda p: (p.severity is not Severity.CRITICAL, p.name)
    )
    return "; ".join(f"{p.name} ({p.detail})" for p in failing) or "no failing point"
