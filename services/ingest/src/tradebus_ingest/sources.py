"""Which feed runs for INGEST_SOURCE `auto`, `ws` and `rest`: Binance, or offline data until Binance answers.

AUTO first asks Binance (REST ping, WebSocket opening). If neither answers, it runs the
synthetic feed, says why in readiness, and keeps asking with backoff; once Binance answers it
stops the synthetic feed, waits out JetStream's duplicate window (a real minute shares its
event id with the synthetic one and must not be dropped as a repeat), and runs on Binance from
then on. Once on Binance it stays there through outages — the transports reconnect and repair —
because mixing invented prices into a real series would be worse than a pause.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect

from tradebus.bus import Publisher
from tradebus.logging import get_logger
from tradebus_ingest.binance.backoff import backoff_delay
from tradebus_ingest.binance.feed import BinanceFeed, Transport
from tradebus_ingest.binance.rest import BinanceRest, RestUnavailable
from tradebus_ingest.binance.websocket import stream_url
from tradebus_ingest.clock import Clock
from tradebus_ingest.feed import FeedStatus, SyntheticFeed
from tradebus_ingest.repository import IngestRepository
from tradebus_ingest.settings import IngestSettings

log = get_logger(__name__)


async def binance_unreachable(settings: IngestSettings, rest: BinanceRest) -> str | None:
    """Why neither Binance transport answers, or None when one does."""
    try:
        await rest.ping()
        return None
    except RestUnavailable as exc:
        rest_error = str(exc)
    try:
        url = stream_url(settings.binance_ws_url, settings.symbols)
        async with connect(url, open_timeout=settings.binance_timeout_s):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure to open means unreachable
        return f"REST {rest_error}; websocket {exc!r}"


async def run_exchange_feed(
    *,
    settings: IngestSettings,
    clock: Clock,
    publisher: Publisher,
    repository: IngestRepository,
    status: FeedStatus,
) -> None:
    """Run INGEST_SOURCE auto/ws/rest until cancelled."""
    rest = BinanceRest.configured(settings)
    try:
        if settings.ingest_source == "auto":
            await _offline_until_binance_answers(settings, rest, clock, publisher, repository, status)
        transport: Transport = "auto"
        if settings.ingest_source == "ws":
            transport = "ws"
        elif settings.ingest_source == "rest":
            transport = "rest"
        feed = BinanceFeed(
            transport=transport,
            settings=settings,
            rest=rest,
            publisher=publisher,
            repository=repository,
            clock=clock,
            status=status,
        )
        await feed.run()
    finally:
        await rest.aclose()


async def _offline_until_binance_answers(
    settings: IngestSettings,
    rest: BinanceRest,
    clock: Clock,
    publisher: Publisher,
    repository: IngestRepository,
    status: FeedStatus,
) -> None:
    error = await binance_unreachable(settings, rest)
    if error is None:
        return
    log.warning("Binance unreachable; running on offline data and asking again with backoff", error=error)
    synthetic = asyncio.create_task(
        SyntheticFeed(
            symbols=settings.symbols,
            seed=settings.ingest_seed,
            backfill_days=settings.backfill_days,
            live=settings.ingest_live,
            clock=clock,
            publisher=publisher,
            repository=repository,
            status=status,
        ).run()
    )
    failures = 0
    try:
        while error is not None:
            status.offline_reason = f"offline data source: synthetic feed (Binance unreachable: {error})"
            delay = backoff_delay(failures, base_s=settings.binance_backoff_s, cap_s=settings.binance_backoff_max_s)
            failures += 1
            if synthetic.done():
                await asyncio.sleep(delay)  # history published and INGEST_LIVE off
            else:
                await asyncio.wait({synthetic}, timeout=delay)
            if synthetic.done() and (failure := synthetic.exception()) is not None:
                raise RuntimeError("the offline feed failed") from failure
            error = await binance_unreachable(settings, rest)
    finally:
        synthetic.cancel()
        await asyncio.gather(synthetic, return_exceptions=True)
    log.info("Binance answers; switching from offline data to Binance", after_s=settings.binance_switch_delay_s)
    await asyncio.sleep(settings.binance_switch_delay_s)
