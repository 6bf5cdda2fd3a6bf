"""When the end-of-day job runs and which day it closes (pure; wall-clock time in a zone)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_DAY = timedelta(days=1)


def next_run(now: datetime, at: time, zone: ZoneInfo) -> datetime:
    """The first scheduled run strictly after `now` (UTC): `at` o'clock in `zone`."""
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + _DAY, at, tzinfo=zone)
    return candidate.astimezone(UTC)


def due_day(now: datetime, at: time, zone: ZoneInfo) -> date:
    """The day closed by the latest scheduled run at or before `now`: the day before that run.

    Running it again after a restart or a missed run is safe (the job is recorded per day).
    """
    local = now.astimezone(zone)
    run_date = local.date() if local.time() >= at else local.date() - _DAY
    return run_date - _DAY
