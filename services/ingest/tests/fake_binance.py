"""A real local server that speaks Binance's REST klines endpoint and combined kline WebSocket
stream, serving known bars on a clock the test moves (named uniquely: tests share sys.path).

REST `GET /api/v3/klines` answers with the 12-item arrays for the minutes that have closed by
the clock (plus the running minute, partial, when the range asks for it), `X-MBX-USED-WEIGHT-1M`,
and on request 429/418 with `Retry-After` or 503. `GET /stream?streams=a@kline_1m/…` accepts a
WebSocket, streams running-minute updates (`"x": false`) every `heartbeat_s`, and each closed
minute (`"x": true`) when the test calls `close_minutes()`. The test can drop connections, refuse
new ones, fall silent, and send raw frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tradebus.events import Bar
from tradebus.testing import wait_for
from tradebus.timeframes import MINUTE_MS, datetime_to_ms

KLINES_WEIGHT = 2


def _dec(value: object) -> str:
    return format(value, "f")


def rest_row(bar: Bar) -> list[object]:
    return [
        bar.open_ms,
        _dec(bar.open),
        _dec(bar.high),
        _dec(bar.low),
        _dec(bar.close),
        _dec(bar.volume),
        datetime_to_ms(bar.close_time),
        _dec(bar.quote_volume),
        bar.trades,
        "0",
        "0",
        "0",
    ]


def kline_frame(bar: Bar, *, closed: bool, event_ms: int) -> str:
    kline = {
        "t": bar.open_ms,
        "T": datetime_to_ms(bar.close_time),
        "s": bar.symbol,
        "i": "1m",
        "f": 1,
        "L": 2,
        "o": _dec(bar.open),
        "c": _dec(bar.close),
        "h": _dec(bar.high),
        "l": _dec(bar.low),
        "v": _dec(bar.volume),
        "n": bar.trades,
        "x": closed,
        "q": _dec(bar.quote_volume),
        "V": "0",
        "Q": "0",
        "B": "0",
    }
    message = {
        "stream": f"{bar.symbol.lower()}@kline_1m",
        "data": {"e": "kline", "E": event_ms, "s": bar.symbol, "k": kline},
    }
    return orjson.dumps(message).decode()


class Clock(Protocol):
    def now_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class KlineRequest:
    symbol: str
    start_ms: int
    end_ms: int
    limit: int
    status: int
    at: float
    """time.monotonic() when it arrived."""


class FakeBinance:
    """See the module docstring; `klines` are the exchange's bars per symbol, `clock` says which have closed."""

    def __init__(self, klines: Mapping[str, Sequence[Bar]], clock: Clock, *, heartbeat_s: float = 0.05) -> None:
        self._bars = {symbol: {bar.open_ms: bar for bar in bars} for symbol, bars in klines.items()}
        self._clock = clock
        self._heartbeat_s = heartbeat_s
        self.requests: list[KlineRequest] = []
        self.rate_limited = 0
        """How many coming klines calls answer `rate_limit_status` with `Retry-After: retry_after`."""
        self.rate_limit_status = 429
        self.retry_after = 1
        self.rest_down = False
        self.ws_silent = False
        self.ws_refuse = False
        self.connects = 0
        self._connections: dict[WebSocket, tuple[str, ...]] = {}
        self._sent_until = self._last_closed()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        self.rest_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ test controls
    def served(self, symbol: str, first_ms: int, last_ms: int) -> list[Bar]:
        """The exchange's bars of `symbol` opening in [first_ms, last_ms]."""
        bars = self._bars[symbol]
        return [bars[t] for t in range(first_ms, last_ms + 1, MINUTE_MS) if t in bars]

    async def close_minutes(self) -> None:
        """Send every minute closed since the last call as a closed kline to each connection (unless silent)."""
        last = self._last_closed()
        if not self.ws_silent:
            for ws, symbols in list(self._connections.items()):
                for open_ms in range(self._sent_until + MINUTE_MS, last + 1, MINUTE_MS):
                    for symbol in symbols:
                        if (bar := self._bars.get(symbol, {}).get(open_ms)) is not None:
                            await self._send(ws, kline_frame(bar, closed=True, event_ms=self._clock.now_ms()))
        self._sent_until = last

    async def send_raw(self, frame: str | bytes) -> None:
        for ws in list(self._connections):
            with contextlib.suppress(Exception):
                await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_text(frame))

    async def drop_connections(self) -> None:
        for ws in list(self._connections):
            with contextlib.suppress(Exception):
                await ws.close(code=1001)
        self._connections.clear()

    @property
    def connected(self) -> int:
        return len(self._connections)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = Starlette(
            routes=[
                Route("/api/v3/ping", self._ping),
                Route("/api/v3/klines", self._klines),
                WebSocketRoute("/stream", self._stream),
            ]
        )
        config = uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="off")
        self._server = uvicorn.Server(config)
        self._tasks = [
            asyncio.create_task(self._server.serve(sockets=[self._socket])),
            asyncio.create_task(self._heartbeat()),
        ]
        server = self._server

        async def started() -> bool:
            return server.started

        await wait_for(started, what="fake Binance listening")

    async def stop(self) -> None:
        await self.drop_connections()
        if self._server is not None:
            self._server.should_exit = self._server.force_exit = True
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._socket.close()

    # ------------------------------------------------------------------ protocol
    def _last_closed(self) -> int:
        now = self._clock.now_ms()
        return now - now % MINUTE_MS - MINUTE_MS

    async def _ping(self, request: Request) -> Response:
        return JSONResponse({})

    async def _klines(self, request: Request) -> Response:
        query = request.query_params
        symbol = query.get("symbol", "")
        start = int(query.get("startTime", "0"))
        end = int(query.get("endTime", str(2**62)))
        limit = min(int(query.get("limit", "500")), 1000)
        status = 200
        if self.rest_down:
            status = 503
        elif self.rate_limited:
            self.rate_limited -= 1
            status = self.rate_limit_status
        elif symbol not in self._bars:
            status = 400
        self.requests.append(KlineRequest(symbol, start, end, limit, status, time.monotonic()))
        weight = {"X-MBX-USED-WEIGHT-1M": str(KLINES_WEIGHT * len(self.requests))}
        if status == 503:
            return Response("Service Unavailable", status_code=503)
        if status in (429, 418):
            body = {"code": -1003, "msg": "Too many requests; current limit of IP is 6000 request weight per 1 MINUTE."}
            return JSONResponse(body, status_code=status, headers={**weight, "Retry-After": str(self.retry_after)})
        if status == 400:
            return JSONResponse({"code": -1121, "msg": "Invalid symbol."}, status_code=400, headers=weight)
        running = self._last_closed() + MINUTE_MS
        rows: list[list[object]] = []
        for open_ms in sorted(self._bars[symbol]):
            if start <= open_ms <= end and open_ms <= running and len(rows) < limit:
                bar = self._bars[symbol][open_ms]
                rows.append(rest_row(bar) if open_ms < running else self._partial(bar))
        return JSONResponse(rows, headers=weight)

    @staticmethod
    def _partial(bar: Bar) -> list[object]:
        """The running minute as Binance returns it: not final (here: its open everywhere, no volume)."""
        row = rest_row(bar)
        row[2] = row[3] = row[4] = row[1]
        row[5] = row[7] = "0"
        row[8] = 0
        return row

    async def _stream(self, ws: WebSocket) -> None:
        if self.ws_refuse:
            await ws.close(code=1013)
            return
        symbols = tuple(s.split("@")[0].upper() for s in ws.query_params.get("streams", "").split("/") if s)
        await ws.accept()
        self.connects += 1
        self._connections[ws] = symbols
        try:
            while True:
                await ws.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self._connections.pop(ws, None)

    async def _heartbeat(self) -> None:
        """Running-minute updates, as Binance pushes them every second or two."""
        while True:
            await asyncio.sleep(self._heartbeat_s)
            if self.ws_silent:
                continue
            running = self._last_closed() + MINUTE_MS
            for ws, symbols in list(self._connections.items()):
                for symbol in symbols:
                    if (bar := self._bars.get(symbol, {}).get(running)) is not None:
                        await self._send(ws, kline_frame(bar, closed=False, event_ms=self._clock.now_ms()))

    async def _send(self, ws: WebSocket, frame: str) -> None:
        try:
            await ws.send_text(frame)
        except Exception:  # noqa: BLE001 - a client that went away
            self._connections.pop(ws, None)


@contextlib.asynccontextmanager
async def fake_binance(klines: Mapping[str, Sequence[Bar]], clock: Clock) -> AsyncIterator[FakeBinance]:
    server = FakeBinance(klines, clock)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
