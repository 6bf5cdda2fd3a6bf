"""One gap-free 1m series per symbol, fed by both Binance transports.

Every publication goes through one lock, so a minute is published once whichever transport
brings it first: the highest published minute per symbol (`_last`) drops a repeat, and the
stored series (not memory) says which minutes are missing. A repair fetches every missing
minute between the history start and the last closed minute by REST, in pages, oldest first,
and publishes each page before the next is fetched — so a backfill interrupted anywhere resumes
where the stored series ends. A WebSocket minute that arrives after a gap waits for the gap's
repair, so the bus gets the minutes in order; only when REST cannot answer does it go out
ahead, and the hole is filled (late) once REST answers.

Bars are `mode=live`: exchange data on the wall clock, however old (risk judges staleness).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from tradebus.bus import Publisher
from tradebus.events import Bar, Mode
from tradebus.logging import get_logger
from tradebus.timeframes import MINUTE_MS, datetime_to_ms
from tradebus_ingest.binance.rest import PAGE_LIMIT, BinanceRest, RestRejected, RestUnavailable
from tradebus_ingest.binance.schemas import Rejects, parse_rest_row
from tradebus_ingest.clock import Clock, last_closed_minute
from tradebus_ingest.klines import Rejected
from tradebus_ingest.publishing import publish_bars
from tradebus_ingest.repository import BINANCE_SERIES, IngestRepository

log = get_logger(__name__)

LIVE_EDGE_MS: Final = 2 * MINUTE_MS
"""Bars that closed this recently count towards feed latency; older ones are history."""


@dataclass(slots=True)
class RepairProgress:
    """Minutes a repair examined, found missing, looked up so far, and published."""

    examined: int = 0
    """Minutes in the window the repair looked at (all symbols; it ends at the last minute
    closed for longer than the close grace, so it can be one short of a whole window)."""
    total: int = 0
    done: int = 0
    published: int = 0


ProgressFn = Callable[[RepairProgress], None]


class BinanceSeries:
    """The publisher of Binance minutes: in order, once each, stored after JetStream acked them."""

    def __init__(
        self,
        *,
        symbols: Sequence[str],
        publisher: Publisher,
        repository: IngestRepository,
        rest: BinanceRest,
        clock: Clock,
        history_ms: int,
        close_grace_ms: int,
        on_published: Callable[[Sequence[Bar]], None] | None = None,
    ) -> None:
        self._symbols = tuple(symbols)
        self._publisher = publisher
        self._repository = repository
        self._rest = rest
        self._clock = clock
        self._history_ms = history_ms
        self._close_grace_ms = close_grace_ms
        self._on_published = on_published
        self._lock = asyncio.Lock()
        self._last: dict[str, int] = {}
        self._refused: set[str] = set()
        self._rejects = Rejects("binance-rest")
        self.rest_error: str | None = None
        """Why the last repair failed; None once one succeeded."""
        self.repair_wanted = asyncio.Event()
        """Set when minutes are known to be missing and a repair should run (the feed waits on it)."""

    async def load(self) -> None:
        """Resume after the stored checkpoints."""
        for checkpoint in await self._repository.checkpoints(BINANCE_SERIES):
            if checkpoint.symbol in self._symbols:
                self._last[checkpoint.symbol] = datetime_to_ms(checkpoint.open_time)

    async def live(self, bars: Sequence[Bar]) -> None:
        """Publish closed minutes from a live transport, repairing any gap before them first."""
        async with self._lock:
            fresh = self._unpublished(bars)
            first: dict[str, int] = {}
            for bar in fresh:
                first.setdefault(bar.symbol, bar.open_ms)
            gaps = {s: t - MINUTE_MS for s, t in first.items() if s not in self._last or t > self._last[s] + MINUTE_MS}
            if gaps:
                try:
                    await self._repair(sorted(gaps), None, until=gaps)
                except RestUnavailable:
                    self.repair_wanted.set()  # publish the live minutes now; their gap is filled later
                fresh = self._unpublished(fresh)
            await self._publish(fresh)

    async def repair(
        self, symbols: Collection[str] | None = None, on_progress: ProgressFn | None = None
    ) -> RepairProgress:
        """Fetch and publish every missing minute up to the last closed one; raises RestUnavailable."""
        async with self._lock:
            return await self._repair(sorted(symbols or self._symbols), on_progress)

    def _unpublished(self, bars: Sequence[Bar]) -> list[Bar]:
        latest: dict[tuple[str, int], Bar] = {}
        for bar in bars:
            if bar.open_ms > self._last.get(bar.symbol, -1):
                latest[bar.symbol, bar.open_ms] = bar
        return sorted(latest.values(), key=lambda b: (b.open_ms, b.symbol))

    async def _repair(
        self, symbols: Sequence[str], on_progress: ProgressFn | None, *, until: Mapping[str, int] | None = None
    ) -> RepairProgress:
        """Repair up to the last closed minute, or for a symbol in `until` up to that minute (a live
        minute's gap: the minute itself comes from the live transport)."""
        now = self._clock.now_ms()
        end = last_closed_minute(now - self._close_grace_ms)
        history_start = now - self._history_ms
        history_start -= history_start % MINUTE_MS
        plan: list[tuple[str, int, int]] = []
        examined = 0
        for symbol in symbols:
            if symbol in self._refused:
                continue
            start = min(history_start, self._last.get(symbol, history_start) + MINUTE_MS)
            stop = min(end, until[symbol]) if until and symbol in until else end
            examined += max(0, (stop - start) // MINUTE_MS + 1)
            ranges = await self._repository.missing_ranges(BINANCE_SERIES, symbol, start, stop)
            plan.extend((symbol, first, last) for first, last in ranges)
        missing = sum((last - first) // MINUTE_MS + 1 for _, first, last in plan)
        progress = RepairProgress(examined=examined, total=missing)
        if on_progress is not None:
            on_progress(progress)
        try:
            for symbol, first, last in plan:
                await self._fetch_range(symbol, first, last, progress, on_progress)
        except RestUnavailable as exc:
            if self.rest_error is None:
                log.warning("exchange REST unavailable; missing minutes are fetched once it answers", error=str(exc))
            self.rest_error = str(exc)
            raise
        if self.rest_error is not None:
            log.info("exchange REST answers again", after=self.rest_error)
            self.rest_error = None
        return progress

    async def _fetch_range(
        self, symbol: str, first: int, last: int, progress: RepairProgress, on_progress: ProgressFn | None
    ) -> None:
        """Page through [first, last]; minutes the exchange does not return have no data there."""
        cursor = first
        while cursor <= last:
            try:
                rows = await self._rest.klines(symbol, cursor, last)
            except RestRejected as exc:
                self._refused.add(symbol)
                self._rejects.add(Rejected("refused_symbol", f"{symbol}: {exc}"))
                return
            page: dict[int, Bar] = {}
            for row in rows:
                parsed = parse_rest_row(row, symbol)
                if isinstance(parsed, Rejected):
                    self._rejects.add(parsed)
                elif cursor <= parsed.open_ms <= last:
                    page[parsed.open_ms] = parsed
            bars = [page[open_ms] for open_ms in sorted(page)]
            await self._publish(bars)
            progress.published += len(bars)
            following = bars[-1].open_ms + MINUTE_MS if bars and len(rows) >= PAGE_LIMIT else last + MINUTE_MS
            progress.done += (following - cursor) // MINUTE_MS
            cursor = following
            if on_progress is not None:
                on_progress(progress)

    async def _publish(self, bars: Sequence[Bar]) -> None:
        if not bars:
            return
        edge = self._clock.now_ms() - LIVE_EDGE_MS
        await publish_bars(self._publisher, bars, mode=Mode.LIVE, latency_from_ms=edge)
        await self._repository.store(bars)
        for bar in bars:
            self._last[bar.symbol] = max(self._last.get(bar.symbol, bar.open_ms), bar.open_ms)
        if self._on_published is not None:
            self._on_published(bars)
