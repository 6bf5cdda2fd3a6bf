"""The rollup's work: store trades, recompute the affected rollups from the stored trades,
publish what changed, refresh the gauges, and close each day once cluster-wide.

Figures are always recomputed from the stored trades, never adjusted incrementally, so a
redelivered, replayed or out-of-order trade — or a second recomputation — gives the same rows.
Changed rows are published through an outbox (`published_revision`), so an event lost to a
bus outage is sent by the next recomputation rather than forgotten.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final

from tradebus import subjects
from tradebus.bus import Publisher
from tradebus.events import (
    DailyPerformance,
    DailyPerformanceEvent,
    Envelope,
    StrategyPerformance,
    StrategyPerformanceEvent,
    TradeEvent,
    trace_id_for,
)
from tradebus.logging import get_logger
from tradebus_rollup import metrics, performance, schedule
from tradebus_rollup.repository import DAILY, SERVICE, STRATEGY, PerformanceRow, RollupRepository, TableSql
from tradebus_rollup.settings import RollupSettings

log = get_logger(__name__)

PUBLISH_CHUNK: Final = 500
GAUGE_REFRESH_S: Final = 30.0
"""Every instance refreshes its gauges this often, so each one scraped shows the shared state."""
LOCKED_RETRY_S: Final = 60.0
"""How soon an instance that found the end-of-day lock taken checks the job was completed."""


class EodOutcome(StrEnum):
    RAN = "ran"
    DONE = "done"
    LOCKED = "locked"


@dataclass(frozen=True, slots=True)
class Recomputed:
    days: int
    strategies: int
    published: int


def _row(key: date | str, trades: list[performance.ClosedTrade]) -> PerformanceRow:
    figures = performance.figures(trades)
    return PerformanceRow(key, figures, performance.mode_of(trades), performance.fingerprint(figures))


def daily_event(row: PerformanceRow) -> DailyPerformanceEvent:
    """`daily:<day>:<revision>`: identical recomputations carry the same id and dedupe."""
    assert isinstance(row.key, date)
    event_id = f"daily:{row.key.isoformat()}:{row.revision}"
    data = DailyPerformance(day=row.key, **row.figures.model_dump())
    return DailyPerformanceEvent.build(
        event_id=event_id, source=SERVICE, trace_id=trace_id_for(event_id), data=data, mode=row.mode
    )


def strategy_event(row: PerformanceRow) -> StrategyPerformanceEvent:
    """`strategy:<name>:<revision>`, like `daily_event`."""
    assert isinstance(row.key, str)
    event_id = f"strategy:{row.key}:{row.revision}"
    data = StrategyPerformance(strategy=row.key, **row.figures.model_dump())
    return StrategyPerformanceEvent.build(
        event_id=event_id, source=SERVICE, trace_id=trace_id_for(event_id), data=data, mode=row.mode
    )


_OUTBOXES: Final[tuple[tuple[TableSql, str, Callable[[PerformanceRow], Envelope]], ...]] = (
    (DAILY, subjects.ROLLUP_DAILY, daily_event),
    (STRATEGY, subjects.ROLLUP_STRATEGY, strategy_event),
)


class Rollup:
    def __init__(
        self,
        settings: RollupSettings,
        instance: str,
        repository: Callable[[], RollupRepository],
        publisher: Callable[[], Publisher],
    ) -> None:
        self._zone = settings.zone
        self._eod_time: time = settings.rollup_eod_time
        self._instance = instance
        self._repository = repository
        self._publisher = publisher
        for outcome in EodOutcome:  # at 0 from the start: increase() counts the first run
            metrics.EOD_RUNS.labels(outcome.value)

    @property
    def repository(self) -> RollupRepository:
        return self._repository()

    def day_of(self, moment: datetime) -> date:
        return performance.local_day(moment, self._zone)

    async def on_trades(self, events: list[TradeEvent]) -> None:
        """Store a batch of closed trades, then recompute the days they closed on. A day that
        cannot be computed (its window beyond the calendar) fails the batch before anything is
        stored: a trade is never both stored and dead-lettered."""
        days = {self.day_of(e.data.exit_time) for e in events}
        for day in days:
            self._window(day, day)
        await self.repository.store_trades(events)
        await self.recompute(days)

    async def recompute_range(self, first: date, last: date) -> Recomputed:
        """Recompute every day of [first, last] (a day without trades gets a zero row)."""
        return await self.recompute(first + timedelta(days=i) for i in range((last - first).days + 1))

    async def recompute(self, days: Iterable[date]) -> Recomputed:
        """Recompute `days` and the strategies that traded on them, then publish and gauge."""
        wanted = sorted(set(days))
        if not wanted:
            return Recomputed(0, 0, 0)
        async with self.repository.recomputation() as work:
            stored = await work.trades_between(*self._window(wanted[0], wanted[-1]))
            by_day = performance.by_day(stored, self._zone)
            await work.upsert(DAILY, [_row(day, by_day.get(day, [])) for day in wanted])
            strategies = sorted({t.strategy for day in wanted for t in by_day.get(day, [])})
            by_strategy = performance.by_strategy(await work.trades_of(strategies))
            await work.upsert(STRATEGY, [_row(name, by_strategy[name]) for name in strategies])
        published = await self.publish_pending()
        await self.refresh_gauges()
        return Recomputed(len(wanted), len(strategies), published)

    def _window(self, first: date, last: date) -> tuple[datetime, datetime]:
        """[start of `first`, start of the day after `last`) in the rollup's zone, as UTC."""
        start = datetime.combine(first, time(), tzinfo=self._zone)
        end = datetime.combine(last + timedelta(days=1), time(), tzinfo=self._zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    async def publish_pending(self) -> int:
        """Publish every row revision not yet published (deduplicated by its event id)."""
        published = 0
        for table, subject, event_of in _OUTBOXES:
            while rows := await self.repository.unpublished(table, PUBLISH_CHUNK):
                await self._publisher().publish_many((subject, event_of(row)) for row in rows)
                await self.repository.mark_published(table, rows)
                published += len(rows)
                if len(rows) < PUBLISH_CHUNK:
                    break
        return published

    async def refresh_gauges(self) -> None:
        totals = await self.repository.totals()
        metrics.TRADES_TOTAL.set(totals.trades)
        metrics.NET_PNL_TOTAL.set(float(totals.net_pnl))
        metrics.WIN_RATE.set(totals.wins / totals.trades if totals.trades else 0.0)
        metrics.DAILY_PNL.set(float(totals.latest_day_pnl or 0))
        metrics.PNL_GIVEBACK_RATIO.set(float(performance.giveback_ratio(totals.peak, totals.net_pnl)))

    async def gauge_loop(self) -> None:
        """Keep the gauges current even on an instance that is not receiving trades."""
        while True:
            await asyncio.sleep(GAUGE_REFRESH_S)
            await self.refresh_gauges()

    async def run_eod(self, day: date) -> EodOutcome:
        """Close `day` unless another instance holds the job's lock or already closed it."""
        async with self.repository.eod_lock() as held:
            if not held:
                outcome = EodOutcome.LOCKED
            elif await self.repository.eod_done(day):
                outcome = EodOutcome.DONE
            else:
                result = await self.recompute_range(day, day)
                await self.repository.record_eod(day, self._instance)
                log.info("end of day closed", day=day.isoformat(), strategies=result.strategies)
                outcome = EodOutcome.RAN
        metrics.EOD_RUNS.labels(outcome.value).inc()
        return outcome

    async def eod_loop(self) -> None:
        """Close the due day now (catching up a missed run), then at every scheduled time."""
        while True:
            now = datetime.now(tz=UTC)
            outcome = await self.run_eod(schedule.due_day(now, self._eod_time, self._zone))
            if outcome is EodOutcome.LOCKED:
                wake = now + timedelta(seconds=LOCKED_RETRY_S)
            else:
                wake = schedule.next_run(now, self._eod_time, self._zone)
            await _sleep_until(wake)


async def _sleep_until(wake: datetime) -> None:
    """Sleep in short steps so that a wall-clock jump or a suspended host does not delay the job."""
    while (remaining := (wake - datetime.now(tz=UTC)).total_seconds()) > 0:  # noqa: ASYNC110 - a clock, not an event
        await asyncio.sleep(min(remaining, 30.0))
