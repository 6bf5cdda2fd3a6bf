"""The aggregator service: 1m bars in, 5m..1w bars out, every bar stored and served over HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query
from pydantic import ValidationError

from tradebus import subjects
from tradebus.admission import Refusal
from tradebus.events import Bar, BarEvent, encode_bar_event
from tradebus.logging import get_logger
from tradebus.service import Service
from tradebus.symbols import UNKNOWN_SYMBOL, required_symbol
from tradebus.timeframes import (
    HIGHER_INTERVALS,
    INTERVALS,
    Interval,
    bucket_start,
    ms_to_datetime,
    now_ms,
    parse_interval,
)
from tradebus_aggregator import metrics
from tradebus_aggregator.buckets import Minute
from tradebus_aggregator.repository import BarRepository
from tradebus_aggregator.settings import AggregatorSettings
from tradebus_aggregator.stream import Aggregator

log = get_logger(__name__)

NAME = "aggregator"
MAX_LIMIT = 5000
INTERVAL = "interval"
REVISION_CONFLICT = "revision_conflict"
SCREEN_REASONS = (INTERVAL, REVISION_CONFLICT)
"""Why the aggregator's own screen dead-letters a 1m bar (beside the shared consumer's reasons)."""


class Aggregation:
    """Runs the state machine over consumed batches: load history, publish, then persist.

    Publishing comes before persisting: after a crash in between, the 1m bars are not stored, so
    their redelivery (the shared consumer rewinds to its ack floor when it starts) rebuilds and
    republishes the same events (same ids, dropped as duplicates).
    A batch that fails marks its symbols dirty; their state is reloaded from storage before the
    next batch, so the retry starts clean.
    """

    def __init__(self, service: Service) -> None:
        self._service = service
        self.state = Aggregator()
        self._dirty: set[str] = set()
        """Symbols whose state may hold a failed batch's effects; reloaded before the next batch."""

    @property
    def repo(self) -> BarRepository:
        return BarRepository(self._service.pool, NAME)

    async def restore(self, symbols: set[str] | None = None) -> None:
        """Rebuild the state of `symbols` (all stored ones when None) from the stored bars."""
        histories = await self.repo.histories(sorted(symbols) if symbols is not None else None)
        for symbol in symbols or ():  # only once storage answered: a half-known symbol would republish
            self.state.forget(symbol)
        for history in histories:
            self.state.of(history.symbol).load(history.start_ms, history.minutes, history.published)
        log.info("state restored", symbols=len(self.state.symbols))

    async def screen(self, events: Sequence[BarEvent]) -> list[Refusal | None]:
        """Admit 1m bars only, and none that contradicts the minute held (stored) for its time:
        a 1m bar changes only with a higher revision (ingest's corrections); the same bar again
        is a redelivery, an older revision is stale (both left to `handle`, which skips them),
        other prices at the same revision a forgery or a bug, refused here so that nothing of
        it is stored or aggregated."""
        if self._dirty:
            await self.restore(self._dirty)
            self._dirty.clear()
        minutes = [e for e in events if e.data.interval == "1m"]
        await self._load_history(minutes)
        seen: dict[tuple[str, int], Minute] = {}
        out: list[Refusal | None] = []
        for event in events:
            bar = event.data
            if bar.interval != "1m":
                out.append(Refusal(INTERVAL, f"a {bar.interval} bar on bars.1m"))
                continue
            key = (bar.symbol, bar.open_ms)
            minute = Minute.of(bar)
            held = seen.get(key) or self.state.of(bar.symbol).minutes.get(bar.open_ms)
            if held is not None and held.revision == minute.revision and held != minute:
                detail = f"{event.event_id} r{minute.revision} differs from the bar held at that revision"
                out.append(Refusal(REVISION_CONFLICT, detail))
                continue
            if held is None or minute.revision > held.revision:
                seen[key] = minute
            out.append(None)
        return out

    async def handle(self, events: list[BarEvent]) -> None:
        symbols = {e.data.symbol for e in events}
        if self._dirty:
            await self.restore(self._dirty)
            self._dirty.clear()
        try:
            await self._load_history(events)
            outcome = self.state.apply_batch([e.data for e in events])
            emitted_at = ms_to_datetime(now_ms())
            await self._service.publisher.publish_encoded(
                [
                    (
                        subjects.bars(bar.interval, bar.symbol),
                        *encode_bar_event(
                            bar, source=NAME, mode=events[i].mode, trace_id=events[i].trace_id, emitted_at=emitted_at
                        ),
                    )
                    for i, bar in outcome.bars
                ]
            )
            out = [bar for _, bar in outcome.bars]
            await self.repo.save([*outcome.stored, *out])
        except Exception:
            self._dirty |= symbols
            raise
        for symbol in symbols:
            self.state.of(symbol).prune()
        _count(out)

    async def _load_history(self, events: list[BarEvent]) -> None:
        """Load the stored weeks that late minutes in `events` fall into."""
        earliest: dict[str, int] = {}
        for event in events:
            state = self.state.of(event.data.symbol)
            if state.needs_history(event.data.open_ms):
                start = bucket_start(event.data.open_ms, "1w")
                earliest[state.symbol] = min(start, earliest.get(state.symbol, start))
        for symbol, start in earliest.items():
            state = self.state.of(symbol)
            assert state.horizon is not None
            history = await self.repo.history(symbol, start, state.horizon)
            state.load(start, history.minutes, history.published)


def _count(bars: list[Bar]) -> None:
    for bar in bars:
        metrics.BARS_PUBLISHED.labels(bar.interval).inc()
        if bar.revision:
            metrics.BARS_REVISED.labels(bar.interval).inc()
        if not bar.complete:
            metrics.INCOMPLETE_BARS.labels(bar.interval).inc()


def _interval(value: str) -> Interval:
    try:
        return parse_interval(value)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


def _utc(value: datetime | None) -> datetime | None:
    """ISO-8601 without an offset is read as UTC (tradebus works in UTC only)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def build_service(settings: AggregatorSettings) -> Service:
    """The aggregator: consumes `bars.1m.*`, publishes `bars.{5m..1w}.*`, serves `/v1/bars`."""
    service = Service(NAME, settings, migrations="tradebus_aggregator.migrations")
    aggregation = Aggregation(service)

    @service.on_startup
    async def load_state() -> None:
        await aggregation.restore()

    @service.consumer(
        name="bars-1m",
        stream="BARS",
        subject="bars.1m.*",
        model=BarEvent,
        batch_size=settings.aggregator_batch_size,
        screen=aggregation.screen,
        screen_reasons=SCREEN_REASONS,
    )
    async def on_bars(events: list[BarEvent]) -> None:
        await aggregation.handle(events)

    for interval in HIGHER_INTERVALS:
        service.publishes(f"bars.{interval}.*", BarEvent, f"{interval} bars aggregated from 1m bars")

    @service.router.get(
        "/v1/bars",
        tags=["bars"],
        responses={409: {"description": "A stored bar in the range is invalid."}, **UNKNOWN_SYMBOL},
    )
    async def get_bars(
        symbol: str = Depends(required_symbol(settings.symbols)),
        interval: str = "1m",
        start: Annotated[datetime | None, Query(description="ISO-8601, inclusive")] = None,
        end: Annotated[datetime | None, Query(description="ISO-8601, exclusive")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 500,
    ) -> list[dict[str, Any]]:
        """The newest `limit` bars of `symbol` on `interval` in [start, end), oldest first."""
        try:
            bars = await aggregation.repo.bars(symbol, _interval(interval), _utc(start), _utc(end), limit)
        except ValidationError as exc:
            log.error("invalid stored bar", symbol=symbol, interval=interval, error=repr(exc))
            raise HTTPException(409, f"a stored {interval} bar of {symbol} in the range is invalid: {exc}") from exc
        return [bar.model_dump(mode="json") for bar in bars]

    @service.router.get("/v1/meta/instruments", tags=["bars"])
    async def get_instruments(
        min_bars_1m: Annotated[int, Query(ge=0, description="Only symbols with at least this many 1m bars")] = 0,
    ) -> dict[str, Any]:
        """Stored symbols with their bar count per interval."""
        counts = await aggregation.repo.counts()
        instruments = [
            {"symbol": symbol, "bars": {iv: by_interval.get(iv, 0) for iv in INTERVALS}}
            for symbol, by_interval in sorted(counts.items())
            if by_interval.get("1m", 0) >= min_bars_1m
        ]
        return {"intervals": list(INTERVALS), "instruments": instruments}

    return service
