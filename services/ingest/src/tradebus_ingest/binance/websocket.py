"""Binance's combined kline stream: every symbol's `<symbol>@kline_1m` on one connection.

The subscription is in the URL, so every reconnect resubscribes. Pings from the server are
answered by the `websockets` library (and it pings too, to notice a dead peer). A dropped or
refused connection is retried with backoff; a connection is closed and reopened on purpose
before Binance's 24 h cut. Only closed klines (`"x": true`) reach `sink`; every frame, open
minutes' updates included, proves the stream alive (`last_frame`), which AUTO's monitor watches.
What a reconnect missed is repaired when the next closed minute arrives after the gap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Final

import websockets
from websockets.asyncio.client import ClientConnection, connect

from tradebus.events import Bar
from tradebus.feedhealth import feeds
from tradebus.logging import get_logger
from tradebus_ingest import metrics
from tradebus_ingest.binance.backoff import backoff_delay
from tradebus_ingest.binance.schemas import Rejects, parse_frame
from tradebus_ingest.klines import Rejected

log = get_logger(__name__)

METRIC_SOURCE: Final = "binance"
CLOSE_TIMEOUT_S: Final = 2.0
WS_FEED: Final = feeds("ingest")["binance_ws"]
"""Every connection attempt (timed to the open handshake) and every frame (a failure: one that is
not a valid kline, or the connection dropping while reading)."""
"""How long a closing handshake may take before the connection is dropped (default 10 s)."""


def stream_url(base_url: str, symbols: Sequence[str]) -> str:
    """`<base>/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m`."""
    return f"{base_url}/stream?streams=" + "/".join(f"{symbol.lower()}@kline_1m" for symbol in symbols)


class KlineStream:
    """Keeps one combined-stream connection open and hands each closed kline to `sink`."""

    def __init__(
        self,
        *,
        base_url: str,
        symbols: Sequence[str],
        sink: Callable[[Bar], None],
        open_timeout_s: float,
        backoff_s: float,
        backoff_max_s: float,
        max_age_s: float,
    ) -> None:
        self.url = stream_url(base_url, symbols)
        self._symbols = frozenset(symbols)
        self._sink = sink
        self._open_timeout_s = open_timeout_s
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._max_age_s = max_age_s
        self._rejects = Rejects("binance-ws")
        self.connected = False
        self.ever_connected = False
        self.last_frame = 0.0
        """Event-loop time of the last frame (or of the connection opening)."""
        self.last_error = "not connected yet"
        metrics.WS_CONNECTED.labels(METRIC_SOURCE).set(0)

    async def run(self) -> None:
        """Connect, read, reconnect — until cancelled."""
        attempts = failures = 0
        while True:
            reconnect = attempts > 0
            attempts += 1
            started = time.perf_counter()
            try:
                async with connect(
                    self.url, open_timeout=self._open_timeout_s, close_timeout=CLOSE_TIMEOUT_S, max_size=2**20
                ) as ws:
                    WS_FEED.record(True, time.perf_counter() - started)
                    self._opened(reconnect=reconnect)
                    failures = 0
                    await self._read(ws)
                log.info("websocket reopened before the exchange's 24 h limit", max_age_s=self._max_age_s)
                continue  # a planned reconnect: no backoff
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                if not self.connected:  # the connection attempt failed (a drop later is a failed frame read)
                    WS_FEED.record(False, time.perf_counter() - started, repr(exc))
                    if reconnect:
                        metrics.WS_RECONNECTIONS.labels(METRIC_SOURCE, "failure").inc()
                else:
                    WS_FEED.record(False, None, repr(exc))
                self.last_error = repr(exc)
            finally:
                self.connected = False
                metrics.WS_CONNECTED.labels(METRIC_SOURCE).set(0)
            delay = backoff_delay(failures, base_s=self._backoff_s, cap_s=self._backoff_max_s)
            failures += 1
            log.info("websocket reconnecting", in_s=round(delay, 2), error=self.last_error)
            await asyncio.sleep(delay)

    async def _read(self, ws: ClientConnection) -> None:
        """Hand over closed klines until the connection drops (raises) or reaches its planned age."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_age_s
        while (remaining := deadline - loop.time()) > 0:
            try:
                # asyncio.timeout, not wait_for: wait_for's inner task could hang the cancellation of
                # a shutting-down feed (seen under load in the tests).
                async with asyncio.timeout(remaining):
                    frame = await ws.recv()
            except TimeoutError:
                break
            self.last_frame = loop.time()
            parsed = parse_frame(frame, self._symbols)
            WS_FEED.record(not isinstance(parsed, Rejected))
            if isinstance(parsed, Rejected):
                self._rejects.add(parsed)
            elif parsed is not None:
                self._sink(parsed)
        await ws.close()

    def _opened(self, *, reconnect: bool) -> None:
        if reconnect:
            metrics.WS_RECONNECTIONS.labels(METRIC_SOURCE, "success").inc()
        log.info("websocket connected", url=self.url, reconnect=reconnect)
        self.connected = self.ever_connected = True
        self.last_frame = asyncio.get_running_loop().time()
        metrics.WS_CONNECTED.labels(METRIC_SOURCE).set(1)
