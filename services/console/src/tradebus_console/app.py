"""The console service: one live page for traders (issue 18), on the shared service shell.

It is an observer (`Service(observer=True)`): it reads the bus and the services' APIs, owns no
schema and publishes nothing, so any number of instances run side by side, sharing the Redis
snapshot. Its one mutating route forwards a risk reset with the caller's token, which it never
stores or logs.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from dataclasses import dataclass
from importlib import resources
from types import FrameType
from typing import Annotated, Any, Final

import httpx
from fastapi import Header, HTTPException, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tradebus.service import CheckResult, Service
from tradebus.settings import CONSOLE
from tradebus.timeframes import INTERVALS
from tradebus_console.live import Console
from tradebus_console.settings import ConsoleSettings

STATIC: Final[dict[str, str]] = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "vendor/lightweight-charts.standalone.production.js": "text/javascript; charset=utf-8",
    "vendor/lightweight-charts.LICENSE": "text/plain; charset=utf-8",
}
"""The page's files, served from memory by exact name (no path is ever joined from a request)."""
MAX_BARS: Final = 1000
PAGE_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""The page runs only its own scripts: even a string that escaped escaping could not run."""


@dataclass(frozen=True, slots=True)
class ConsoleService:
    service: Service
    console: Console


def build_service(settings: ConsoleSettings) -> Service:
    return create(settings).service


def create(settings: ConsoleSettings) -> ConsoleService:
    service = Service(CONSOLE, settings, observer=True)
    console = Console(service, settings)

    @service.on_startup
    async def follow() -> None:
        _end_streams_on_exit_signal(console)
        await console.start()

    service.on_shutdown(console.stop)
    service.background(console.snapshot_loop)
    service.background(console.account_loop)
    service.background(console.reconcile_loop)

    @service.check("state", critical=False)
    async def state_check() -> CheckResult:
        if console.reconciled:
            return CheckResult(True, f"state from {console.source}, reconciled with the services' APIs")
        return CheckResult(False, f"state from {console.source}; the services' APIs have not answered yet")

    _routes(service, console)
    return ConsoleService(service, console)


def _routes(service: Service, console: Console) -> None:
    files = {name: (resources.files("tradebus_console").joinpath("static", name).read_bytes(), kind)
             for name, kind in STATIC.items()}  # fmt: skip

    def static(name: str) -> Response:
        if name not in files:
            raise HTTPException(404, "no such file")
        body, kind = files[name]
        return Response(body, media_type=kind, headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})

    @service.router.get("/", include_in_schema=False)
    async def page() -> Response:
        return static("index.html")

    @service.router.get("/static/{name:path}", include_in_schema=False)
    async def static_file(name: str) -> Response:
        return static(name)

    @service.router.get("/v1/console/state", tags=["console"])
    async def state() -> dict[str, Any]:
        """Everything the page shows, as one document (what a browser's stream starts with)."""
        return console.view()

    @service.router.get("/v1/console/stream", tags=["console"])
    async def stream() -> StreamingResponse:
        """Server-sent events: `snapshot` (the whole state) at once, then a `delta` per change."""
        return StreamingResponse(
            console.hub.stream(console.view),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @service.router.get("/v1/console/bars", tags=["console"])
    async def bars(
        symbol: str, interval: str = "1h", limit: Annotated[int, Query(ge=1, le=MAX_BARS)] = 500
    ) -> JSONResponse:
        """The chart's history from the aggregator, with a clear error for a symbol or interval it cannot have."""
        if not (symbol.isascii() and symbol.isalnum() and symbol == symbol.upper()):
            raise HTTPException(422, f"unknown symbol {symbol!r}: symbols are upper-case letters and digits")
        if interval not in INTERVALS:
            raise HTTPException(422, f"unknown interval {interval!r}: one of {' '.join(INTERVALS)}")
        rows = await console.upstream.get("aggregator", "/v1/bars", symbol=symbol, interval=interval, limit=limit)
        if rows is None:
            raise HTTPException(502, "the aggregator did not answer; try again shortly")
        return JSONResponse(rows)

    @service.router.post("/v1/console/risk/reset", tags=["console"])
    async def risk_reset(authorization: Annotated[str | None, Header()] = None) -> JSONResponse:
        """Forward a risk reset with the caller's admin token (never stored); risk's answer as it is."""
        if not authorization:
            raise HTTPException(401, "the admin token is required", headers={"WWW-Authenticate": "Bearer"})
        try:
            answer = await console.upstream.forward(
                "POST", "risk", "/v1/risk/reset", headers={"Authorization": authorization}
            )
        except httpx.HTTPError as exc:
            raise HTTPException(502, f"risk did not answer: {type(exc).__name__}") from None
        try:
            body = answer.json()
        except ValueError:
            body = {"detail": answer.text}
        return JSONResponse(body, status_code=answer.status_code)


def _end_streams_on_exit_signal(console: Console) -> None:
    """End the browsers' streams as soon as SIGTERM/SIGINT arrives: uvicorn waits for open responses
    before shutting down, and a live stream never finishes on its own. The server's own handler
    (installed before start-up) still runs."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(console.hub.close)
            if callable(previous):
                previous(sig, frame)

        signal.signal(signum, handler)
