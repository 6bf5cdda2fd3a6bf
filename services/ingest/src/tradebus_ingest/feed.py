"""The data sources the service runs: the synthetic feed (history, then live minutes) and replay.

Both follow the same rule for not losing anything: a batch is published, JetStream acks it,
and only then are its bars stored and the checkpoint advanced (one transaction). A crash in
between re-publishes the batch on restart, which JetStream drops by `Nats-Msg-Id`.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from itertools import islice
from typing import Final

from tradebus.bus import Publisher
from tradebus.events import Bar, BarSource, Mode
from tradebus.logging import get_logger
from tradebus.timeframes import MINUTE_MS, datetime_to_ms, iso_utc, ms_to_datetime
from tradebus_ingest import synthetic
from tradebus_ingest.clock import Clock, last_closed_minute
from tradebus_ingest.publishing import publish_bars
from tradebus_ingest.replay import ReplayReport, replay_files
from tradebus_ingest.repository import IngestRepository

log = get_logger(__name__)

BATCH_SIZE: Final = 1000
_DAY_MS: Final = 86_400_000


class FeedState(StrEnum):
    STARTING = "starting"
    CATCHING_UP = "catching_up"
    LIVE = "live"
    IDLE = "idle"
    """History published and INGEST_LIVE off, or a replay finished."""


@dataclass(slots=True)
class FeedStatus:
    """What the feed is doing, for readiness and `GET /v1/feed`."""

    requested: str
    source: BarSource
    symbols: tuple[str, ...]
    offline_reason: str | None
    """Why the bars are not live exchange data; None while they are."""
    state: FeedState = FeedState.STARTING
    published: Counter[str] = field(default_factory=Counter)
    """Bars published per symbol by this process."""
    replay: ReplayReport | None = None
    exchange_health: Callable[[], tuple[bool, str]] | None = None
    """While on exchange data: whether its transports deliver, and how."""

    def record(self, bars: Sequence[Bar]) -> None:
        self.published.update(bar.symbol for bar in bars)

    def health(self) -> tuple[bool, str]:
        """The `feed` readiness check: false on offline data (with the reason) or a failing exchange feed."""
        state = self.state.value.replace("_", " ")
        if self.offline_reason is not None or self.exchange_health is None:
            return False, f"{self.offline_reason or 'no data source yet'}; {state}"
        ok, detail = self.exchange_health()
        return ok, f"{detail}; {state}"


@dataclass(slots=True)
class _Cursor:
    last_open_ms: int
    last_close: Decimal


class SyntheticFeed:
    """Seeded bars for every symbol: missing history as `replay`, then each closed minute as `live`."""

    def __init__(
        self,
        *,
        symbols: Sequence[str],
        seed: int,
        backfill_days: float,
        live: bool,
        clock: Clock,
        publisher: Publisher,
        repository: IngestRepository,
        status: FeedStatus,
    ) -> None:
        self._symbols = tuple(symbols)
        self._seed = seed
        self._backfill_ms = round(backfill_days * _DAY_MS)
        self._live = live
        self._clock = clock
        self._publisher = publisher
        self._repository = repository
        self._status = status

    async def run(self) -> None:
        cursors = await self._cursors()
        self._status.state = FeedState.CATCHING_UP
        while await self._publish_until(cursors, last_closed_minute(self._clock.now_ms()), Mode.REPLAY):
            pass  # history took long enough for more minutes to close: publish those as history too
        log.info("history published", up_to={s: iso_utc(ms_to_datetime(c.last_open_ms)) for s, c in cursors.items()})
        if not self._live:
            self._status.state = FeedState.IDLE
            return
        self._status.state = FeedState.LIVE
        while True:
            now = self._clock.now_ms()
            await self._clock.sleep_until(now - now % MINUTE_MS + MINUTE_MS)
            await self._publish_until(cursors, last_closed_minute(self._clock.now_ms()), Mode.LIVE)

    async def _cursors(self) -> dict[str, _Cursor]:
        """Where each symbol resumes: its checkpoint, else BACKFILL_DAYS before now."""
        stored = {c.symbol: c for c in await self._repository.checkpoints(BarSource.SYNTHETIC.value)}
        now = self._clock.now_ms()
        start = now - self._backfill_ms
        start -= start % MINUTE_MS
        cursors: dict[str, _Cursor] = {}
        for symbol in self._symbols:
            checkpoint = stored.get(symbol)
            if checkpoint is not None:
                cursors[symbol] = _Cursor(datetime_to_ms(checkpoint.open_time), checkpoint.last_close)
            else:
                cursors[symbol] = _Cursor(start - MINUTE_MS, synthetic.close_before(self._seed, symbol, start))
        return cursors

    async def _publish_until(self, cursors: dict[str, _Cursor], last_open_ms: int, mode: Mode) -> int:
        """Publish every symbol's bars up to `last_open_ms` in time order; returns how many."""
        streams = (
            synthetic.bars_between(self._seed, s, c.last_open_ms + MINUTE_MS, last_open_ms, c.last_close)
            for s, c in cursors.items()
        )
        merged: Iterator[Bar] = heapq.merge(*streams, key=lambda b: (b.open_ms, b.symbol))
        total = 0
        while batch := list(islice(merged, BATCH_SIZE)):
            await publish_bars(self._publisher, batch, mode=mode)
            await self._repository.store(batch)
            for bar in batch:
                cursors[bar.symbol] = _Cursor(bar.open_ms, bar.close)
            self._status.record(batch)
            total += len(batch)
        return total


class ReplayFeed:
    """INGEST_REPLAY_FILES once through, resuming after each symbol's replay checkpoint."""

    def __init__(
        self,
        *,
        files: Sequence[str],
        speed: float | None,
        publisher: Publisher,
        repository: IngestRepository,
        status: FeedStatus,
    ) -> None:
        self._files = tuple(files)
        self._speed = speed
        self._publisher = publisher
        self._repository = repository
        self._status = status

    async def run(self) -> None:
        checkpoints = await self._repository.checkpoints(BarSource.REPLAY.value)
        after = {c.symbol: datetime_to_ms(c.open_time) for c in checkpoints}
        self._status.state = FeedState.CATCHING_UP

        async def checkpointed(batch: list[Bar]) -> None:
            await self._repository.advance(batch)
            self._status.record(batch)

        def progress(report: ReplayReport) -> None:
            self._status.replay = report

        self._status.replay = await replay_files(
            self._files, self._publisher, speed=self._speed, after=after, on_batch=checkpointed, on_progress=progress
        )
        self._status.state = FeedState.IDLE
