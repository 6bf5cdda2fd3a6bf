"""Telemetry's SQL: quality issues and readiness snapshots, written idempotently and in batches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg
import orjson

from tradebus import db, metrics
from tradebus.events import QualityIssueEvent, Readiness

INSERT_ISSUE: Final = """
INSERT INTO quality_issues (event_id, symbol, interval, kind, severity, detail, bar_time, detected_at, mode, trace_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (event_id) DO NOTHING
"""

RECENT_ISSUES: Final = """
SELECT event_id, symbol, interval, kind, severity, detail, bar_time, detected_at, mode, trace_id
FROM quality_issues ORDER BY detected_at DESC, event_id LIMIT $1
"""

COUNT_SINCE: Final = """
SELECT severity, count(*) AS n FROM quality_issues WHERE detected_at >= $1 GROUP BY severity
"""

INSERT_SNAPSHOT: Final = """
INSERT INTO readiness_snapshots (checked_at, status, failing, failure_points)
VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT (checked_at) DO NOTHING
"""


class TelemetryRepository:
    """Reads and writes the `telemetry` schema through the service's pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add_issues(self, events: Sequence[QualityIssueEvent]) -> None:
        rows = [
            (
                e.event_id,
                e.data.symbol,
                e.data.interval,
                e.data.kind,
                e.data.severity.value,
                e.data.detail,
                e.data.bar_time,
                e.data.detected_at,
                e.mode.value,
                e.trace_id,
            )
            for e in events
        ]
        with metrics.DB_SECONDS.labels("telemetry", "add_issues").time():
            await self._pool.executemany(INSERT_ISSUE, rows)

    async def recent_issues(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` issues, newest first."""
        with metrics.DB_SECONDS.labels("telemetry", "recent_issues").time():
            rows = await self._pool.fetch(RECENT_ISSUES, limit)
        return [db.record_to_dict(r) for r in rows]

    async def counts_since(self, since: datetime) -> dict[str, int]:
        """Issues per severity detected at or after `since`."""
        with metrics.DB_SECONDS.labels("telemetry", "counts_since").time():
            rows = await self._pool.fetch(COUNT_SINCE, since)
        return {r["severity"]: int(r["n"]) for r in rows}

    async def add_snapshot(self, readiness: Readiness) -> None:
        failing = [p.name for p in readiness.failure_points if not p.ok]
        body = orjson.dumps([p.model_dump(mode="json") for p in readiness.failure_points]).decode()
        with metrics.DB_SECONDS.labels("telemetry", "add_snapshot").time():
            await self._pool.execute(INSERT_SNAPSHOT, readiness.checked_at, readiness.status.value, failing, body)
