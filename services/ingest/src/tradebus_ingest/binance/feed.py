"""The live Binance feed: INGEST_SOURCE `ws`, `rest`, or `auto` (WebSocket with REST fallback).

- ws: the kline WebSocket; REST only fetches history and gaps.
- rest: REST polling after every minute close.
- auto: the WebSocket, watched by a monitor. When it is down or silent longer than
  BINANCE_WS_SILENCE_S, REST polling starts (logged once) and bars keep flowing; when it is
  healthy again, polling stops (logged once) and a repair fills whatever fell between.

In every mode a repair runs first (backfill); a live minute after a gap (a reconnect, a
takeover, a restart) has the gap repaired before it; and a repair that found REST unavailable
is retried with backoff. `BinanceSeries` makes sure each minute is published once whichever
path brings it.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from tradebus.bus import Publisher
from tradebus.events import Bar, BarSource
from tradebus.logging import get_logger
from tradebus.timeframes import MINUTE_MS
from tradebus_ingest.binance.backoff import backoff_delay
from tradebus_ingest.binance.rest import BinanceRest, RestUnavailable
from tradebus_ingest.binance.series import BinanceSeries
from tradebus_ingest.binance.websocket import KlineStream
from tradebus_ingest.clock import Clock
from tradebus_ingest.feed import FeedState, FeedStatus
from tradebus_ingest.repository import IngestRepository
from tradebus_ingest.settings import IngestSettings

log = get_logger(__name__)

Transport = Literal["auto", "ws", "rest"]
_DAY_MS = 86_400_000


class BinanceFeed:
    """Runs the transports of one mode into a `BinanceSeries` until cancelled."""

    def __init__(
        self,
        *,
        transport: Transport,
        settings: IngestSettings,
        rest: BinanceRest,
        publisher: Publisher,
        repository: IngestRepository,
        clock: Clock,
        status: FeedStatus,
    ) -> None:
        self._transport = transport
        self._settings = settings
        self._clock = clock
        self._status = status
        self._grace_ms = round(settings.binance_close_grace_s * 1000)
        self.series = BinanceSeries(
            symbols=settings.symbols,
            publisher=publisher,
            repository=repository,
            rest=rest,
            clock=clock,
            history_ms=round(settings.backfill_days * _DAY_MS),
            close_grace_ms=self._grace_ms,
            on_published=status.record,
        )
        self._inbox: asyncio.Queue[Bar] = asyncio.Queue()
        self.stream: KlineStream | None = None
        if transport != "rest":
            self.stream = KlineStream(
                base_url=settings.binance_ws_url,
                symbols=settings.symbols,
                sink=self._inbox.put_nowait,
                open_timeout_s=settings.binance_timeout_s,
                backoff_s=settings.binance_backoff_s,
                backoff_max_s=settings.binance_backoff_max_s,
                max_age_s=settings.binance_ws_max_age_s,
            )
        self._poller: asyncio.Task[None] | None = None
        self._started = 0.0

    async def run(self) -> None:
        self._status.offline_reason = None
        self._status.source = BarSource.BINANCE_REST if self.stream is None else BarSource.BINANCE_WS
        self._status.state = FeedState.CATCHING_UP
        self._status.exchange_health = self.health
        self._started = asyncio.get_running_loop().time()
        await self.series.load()
        self.series.repair_wanted.set()  # the backfill
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._repairs())
                if self.stream is None:
                    tasks.create_task(self._poll())
                else:
                    tasks.create_task(self.stream.run())
                    tasks.create_task(self._drain())
                if self._transport == "auto":
                    tasks.create_task(self._monitor())
        finally:
            if self._poller is not None:
                self._poller.cancel()

    def health(self) -> tuple[bool, str]:
        """Whether minutes are flowing, and by which transport."""
        rest_problem = f"; REST failing: {self.series.rest_error}" if self.series.rest_error else ""
        if self.stream is None:
            return self.series.rest_error is None, f"binance REST polling{rest_problem}"
        ws_problem = self._ws_problem()
        if self._poller is not None:
            why = ws_problem or "websocket healthy again, taking over"
            return self.series.rest_error is None, f"binance REST polling ({why}){rest_problem}"
        if ws_problem is None:
            return True, f"binance websocket live{rest_problem}"
        return False, f"binance {ws_problem}{rest_problem}"

    def _ws_problem(self) -> str | None:
        assert self.stream is not None
        now = asyncio.get_running_loop().time()
        silence = self._settings.binance_ws_silence_s
        if not self.stream.connected:
            if not self.stream.ever_connected and now - self._started < silence:
                return None  # still opening for the first time
            return f"websocket disconnected ({self.stream.last_error})"
        if now - self.stream.last_frame > silence:
            return f"websocket silent for {now - self.stream.last_frame:.1f} s"
        return None

    async def _drain(self) -> None:
        """Publish the WebSocket's closed minutes, as many as have arrived at once."""
        while True:
            batch = [await self._inbox.get()]
            while not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            await self.series.live(batch)

    async def _repairs(self) -> None:
        """Run a repair whenever one is wanted; retry with backoff while REST cannot answer."""
        failures = 0
        while True:
            await self.series.repair_wanted.wait()
            self.series.repair_wanted.clear()
            try:
                await self.series.repair()
            except RestUnavailable:
                self.series.repair_wanted.set()
                s = self._settings
                await asyncio.sleep(backoff_delay(failures, base_s=s.binance_backoff_s, cap_s=s.binance_backoff_max_s))
                failures += 1
            else:
                failures = 0
                self._status.state = FeedState.LIVE

    async def _poll(self) -> None:
        """REST polling: a repair now, then one after every minute close (plus the grace).

        The next close is reckoned from when the repair began: a minute that closed while it ran
        is polled at once, not a minute later."""
        while True:
            now = self._clock.now_ms()
            try:
                # shielded: stopping the poller must not cut a page between publish and store
                await asyncio.shield(self.series.repair())
                self._status.state = FeedState.LIVE
            except RestUnavailable:
                pass  # logged by the series on the first failure; the next minute tries again
            await self._clock.sleep_until(now - now % MINUTE_MS + MINUTE_MS + self._grace_ms)

    async def _monitor(self) -> None:
        """AUTO: hand over to REST polling while the WebSocket is unhealthy, and back."""
        interval = min(1.0, self._settings.binance_ws_silence_s / 4)
        while True:
            if self._poller is not None and self._poller.done():
                self._poller.result()  # a poller that died of a real failure takes the feed down (and back up)
            problem = self._ws_problem()
            if problem is not None and self._poller is None:
                log.warning("websocket unhealthy; REST polling takes over", reason=problem)
                self._poller = asyncio.create_task(self._poll())
                self._status.source = BarSource.BINANCE_REST
            elif problem is None and self._poller is not None:
                self._poller.cancel()
                await asyncio.gather(self._poller, return_exceptions=True)
                self._poller = None
                log.info("websocket healthy again; it takes over from REST polling")
                self._status.source = BarSource.BINANCE_WS
            await asyncio.sleep(interval)
