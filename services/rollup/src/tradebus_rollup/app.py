"""The rollup service: closed trades in, daily and per-strategy performance out (R-6)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Final

from fastapi import Depends, HTTPException, Query

from tradebus import subjects
from tradebus.auth import bearer_token_guard
from tradebus.events import (
    DailyPerformance,
    DailyPerformanceEvent,
    StrategyPerformance,
    StrategyPerformanceEvent,
    TradeEvent,
)
from tradebus.service import Service
from tradebus_rollup.repository import SERVICE, RollupRepository
from tradebus_rollup.rollup import Recomputed, Rollup
from tradebus_rollup.settings import RollupSettings

MAX_RECOMPUTE_DAYS: Final = 3_660
"""A backfill covers at most ten years per call, so one request cannot write unbounded rows."""


@dataclass(frozen=True, slots=True)
class RollupService:
    """The service shell and the rollup behind it (tests drive the rollup directly)."""

    service: Service
    rollup: Rollup


def build_service(settings: RollupSettings) -> Service:
    return create(settings).service


def create(settings: RollupSettings) -> RollupService:
    service = Service(SERVICE, settings, migrations="tradebus_rollup.migrations")
    rollup = Rollup(settings, service.instance, lambda: RollupRepository(service.pool), lambda: service.publisher)
    service.on_startup(rollup.refresh_gauges)

    service.consumer(
        name="trades",
        stream="EXEC",
        subject="exec.trade.*",
        model=TradeEvent,
        batch_size=settings.rollup_batch_size,
    )(rollup.on_trades)
    service.background(rollup.eod_loop)
    service.background(rollup.gauge_loop)
    service.publishes(subjects.ROLLUP_DAILY, DailyPerformanceEvent, "a day's performance, when its figures change")
    service.publishes(
        subjects.ROLLUP_STRATEGY, StrategyPerformanceEvent, "a strategy's performance, when its figures change"
    )
    _routes(service, rollup, bearer_token_guard(settings.tradebus_api_token))
    return RollupService(service, rollup)


def _check_range(first: date | None, last: date | None) -> None:
    if first is not None and last is not None and first > last:
        raise HTTPException(422, f"from ({first}) is after to ({last})")


def _routes(service: Service, rollup: Rollup, authorised: Callable[..., Awaitable[None]]) -> None:
    @service.router.get("/v1/performance/daily", response_model=list[DailyPerformance], tags=["performance"])
    async def daily(
        first: date | None = Query(None, alias="from", description="First day, inclusive (YYYY-MM-DD)."),
        last: date | None = Query(None, alias="to", description="Last day, inclusive (YYYY-MM-DD)."),
    ) -> list[DailyPerformance]:
        """Daily figures in day order (days in ROLLUP_TIMEZONE)."""
        _check_range(first, last)
        return await rollup.repository.daily(first, last)

    @service.router.get("/v1/performance/strategies", response_model=list[StrategyPerformance], tags=["performance"])
    async def strategies() -> list[StrategyPerformance]:
        """Figures per strategy over all of its trades."""
        return await rollup.repository.strategies()

    @service.router.post("/v1/performance/recompute", dependencies=[Depends(authorised)], tags=["performance"])
    async def recompute(
        first: date = Query(alias="from", description="First day, inclusive (YYYY-MM-DD)."),
        last: date = Query(alias="to", description="Last day, inclusive (YYYY-MM-DD)."),
    ) -> Recomputed:
        """Backfill: recompute every day of the range from the stored trades (idempotent)."""
        _check_range(first, last)
        if (last - first).days >= MAX_RECOMPUTE_DAYS:
            raise HTTPException(422, f"at most {MAX_RECOMPUTE_DAYS} days per request")
        return await rollup.recompute_range(first, last)
