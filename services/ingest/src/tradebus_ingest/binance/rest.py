"""Binance spot REST: `/api/v3/klines` within the request-weight limit.

Every call is counted by status. The client keeps a pause: a 429 or 418 answer (IP ban) sets it
from `Retry-After`, and a used weight (`X-MBX-USED-WEIGHT-1M`) close to the limit sets it to the
next minute. A pause short enough (`max_wait_s`) is waited out; a longer one makes calls fail
fast with `RestUnavailable` until it ends, so nothing hammers a server that asked for quiet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

import httpx

from tradebus.feedhealth import feeds
from tradebus.logging import get_logger
from tradebus_ingest import metrics
from tradebus_ingest.settings import IngestSettings

log = get_logger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # httpx logs every request at INFO

KLINES_PATH: Final = "/api/v3/klines"
PING_PATH: Final = "/api/v3/ping"
PAGE_LIMIT: Final = 1000
"""The most klines Binance returns per call."""
KLINES_WEIGHT: Final = 2
WEIGHT_HEADROOM: Final = 0.9
"""Share of the weight limit used before pausing until the next minute."""
_BAN_WITHOUT_RETRY_AFTER_S: Final = 120.0
"""Binance's shortest IP ban, for a 418 that does not say how long."""
REST_FEED: Final = feeds("ingest")["binance_rest"]
"""Every request, timed; a failure is no answer or a status >= 400 (a 429 asks us to slow down)."""


class RestUnavailable(Exception):
    """Binance REST cannot answer now: unreachable, failing (5xx), or asking us to wait longer than we do."""


class RestRejected(Exception):
    """Binance refused the request itself (4xx other than rate limits), e.g. an unknown symbol."""


class BinanceRest:
    """An HTTP client for the public market-data endpoints of one Binance-compatible server."""

    @classmethod
    def configured(cls, settings: IngestSettings) -> BinanceRest:
        """The client `settings` describe (URL, timeout, weight limit, longest wait)."""
        return cls(
            settings.binance_rest_url,
            timeout_s=settings.binance_timeout_s,
            weight_limit=settings.binance_rest_weight_limit,
            max_wait_s=settings.binance_retry_max_s,
        )

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        weight_limit: int = 6000,
        max_wait_s: float = 60.0,
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)
        self._weight_limit = weight_limit
        self._max_wait_s = max_wait_s
        self._paused_until = 0.0  # time.monotonic()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ping(self) -> None:
        """Raises RestUnavailable when the server does not answer."""
        await self._get(PING_PATH, {}, weight=1)

    async def klines(self, symbol: str, start_ms: int, end_ms: int, limit: int = PAGE_LIMIT) -> list[object]:
        """Raw 1m klines of `symbol` opening in [start_ms, end_ms], oldest first, at most `limit`."""
        params: dict[str, str | int] = {
            "symbol": symbol,
            "interval": "1m",
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": limit,
        }
        body = await self._get(KLINES_PATH, params, weight=KLINES_WEIGHT)
        if not isinstance(body, list):
            raise RestUnavailable(f"klines answer is not a list: {str(body)[:120]}")
        return body

    async def _get(self, path: str, params: dict[str, str | int], *, weight: int) -> object:
        while True:
            await self._wait_for_pause()
            started = time.perf_counter()
            try:
                response = await self._http.get(path, params=params)
            except httpx.HTTPError as exc:
                metrics.REST_CALLS.labels("error").inc()
                REST_FEED.record(False, time.perf_counter() - started, repr(exc))
                raise RestUnavailable(f"{path}: {exc!r}") from exc
            metrics.REST_CALLS.labels(str(response.status_code)).inc()
            ok = response.status_code < 400
            REST_FEED.record(ok, time.perf_counter() - started, "" if ok else f"{path}: HTTP {response.status_code}")
            self._note_weight(response, weight)
            if response.status_code in (429, 418):
                self._pause_for(response)
                continue
            if response.status_code >= 500:
                raise RestUnavailable(f"{path}: HTTP {response.status_code}")
            if response.status_code >= 400:
                raise RestRejected(f"{path} {params}: HTTP {response.status_code} {response.text[:200]}")
            try:
                return response.json()
            except ValueError as exc:
                raise RestUnavailable(f"{path}: answer is not JSON: {response.text[:120]!r}") from exc

    async def _wait_for_pause(self) -> None:
        wait = self._paused_until - time.monotonic()
        if wait > self._max_wait_s:
            raise RestUnavailable(f"rate limited by the exchange for {wait:.0f} s more")
        if wait > 0:
            await asyncio.sleep(wait)

    def _pause_for(self, response: httpx.Response) -> None:
        """A 429 (too many requests) or 418 (IP banned): wait as long as the server says."""
        header = response.headers.get("Retry-After", "")
        if header.strip().isdigit():
            seconds = float(header)
        elif response.status_code == 418:
            seconds = _BAN_WITHOUT_RETRY_AFTER_S
        else:
            seconds = 60 - time.time() % 60  # the weight window is the wall-clock minute
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        log.warning("exchange rate limit; pausing REST calls", status=response.status_code, retry_after_s=seconds)

    def _note_weight(self, response: httpx.Response, next_weight: int) -> None:
        used = response.headers.get("X-MBX-USED-WEIGHT-1M", "")
        if used.isdigit() and int(used) + next_weight > self._weight_limit * WEIGHT_HEADROOM:
            self._paused_until = max(self._paused_until, time.monotonic() + 60 - time.time() % 60)
