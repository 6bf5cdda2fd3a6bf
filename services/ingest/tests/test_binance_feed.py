"""The Binance transports against a real local server speaking Binance's protocol, on real NATS
and PostgreSQL. Every test ends by checking the exact 1m series on the bus and in the table:
every minute once, in order, equal to what the exchange served."""

from __future__ import annotations

from binance_support import (
    HISTORY_MINUTES,
    T0,
    Market,
    assert_exact_series,
    binance_settings,
    exchange_klines,
    sample,
    series_reached,
)
from fake_binance import fake_binance
from nats.aio.client import Client
from structlog.testing import capture_logs

from tradebus.testing import running, wait_for
from tradebus.timeframes import MINUTE_MS
from tradebus_ingest.app import build_service

HISTORY_START = T0 - HISTORY_MINUTES * MINUTE_MS


async def test_websocket_disconnect_mid_stream_reconnects_and_repairs_the_gap(
    nats_url: str, database_url: str, nc: Client
) -> None:
    symbols = ("WSDROPA", "WSDROPB")
    market = Market()
    async with fake_binance(exchange_klines(symbols), market.clock) as server:
        market.server = server
        service = build_service(
            binance_settings(nats_url, database_url, server, symbols, "ws"), clock=market.clock
        )
        success = sample("websocket_reconnections_total", {"source": "binance", "status": "success"})
        failure = sample("websocket_reconnections_total", {"source": "binance", "status": "failure"})
        async with running(service):
            await wait_for(series_reached(service, symbols, market.last_closed), what="backfill")
            await wait_for(_connected(server), what="websocket open")
            await market.next_minute(2)
            await wait_for(series_reached(service, symbols, market.last_closed), what="websocket minutes")
            assert sample("websocket_connection_status", {"source": "binance"}) == 1

            server.ws_refuse = True
            await server.drop_connections()
            await market.next_minute(2)  # two minutes close while the client cannot get back in
            await wait_for(_failed_reconnects(failure + 2), what="two reconnect attempts refused")
            assert sample("websocket_connection_status", {"source": "binance"}) == 0
            server.ws_refuse = False
            await wait_for(_connected(server), what="websocket reopened")
            await market.next_minute()
            await wait_for(series_reached(service, symbols, market.last_closed), what="gap repaired, minute after")
            ready, checks = await service.readiness()
            assert ready == "ok" and checks["feed"].ok and checks["feed"].detail.startswith("binance websocket live")
            assert sample("websocket_reconnections_total", {"source": "binance", "status": "success"}) == success + 1
            for symbol in symbols:
                transports = await assert_exact_series(
                    nc, service.pool, symbol, server.served(symbol, HISTORY_START, market.last_closed)
                )
                assert [transports[T0 + i * MINUTE_MS] for i in range(5)] == [
                    "binance-ws", "binance-ws", "binance-rest", "binance-rest", "binance-ws"
                ]  # fmt: skip


async def test_planned_reconnect_before_the_connection_age_limit(nats_url: str, database_url: str, nc: Client) -> None:
    symbols = ("WSAGE",)
    market = Market()
    async with fake_binance(exchange_klines(symbols), market.clock) as server:
        market.server = server
        settings = binance_settings(nats_url, database_url, server, symbols, "ws", binance_ws_max_age_s=0.3)
        service = build_service(settings, clock=market.clock)
        async with running(service):
            await wait_for(series_reached(service, symbols, market.last_closed), what="backfill")
            for _ in range(3):
                connects = server.connects
                await wait_for(_more_connects(server, connects), what="planned reconnect")
                await market.next_minute()
                await wait_for(series_reached(service, symbols, market.last_closed), what="minute published")
            expected = server.served("WSAGE", HISTORY_START, market.last_closed)
            await assert_exact_series(nc, service.pool, "WSAGE", expected)


async def test_websocket_silence_hands_over_to_rest_and_back(nats_url: str, database_url: str, nc: Client) -> None:
    symbols = ("AUTOSILA", "AUTOSILB")
    market = Market()
    async with fake_binance(exchange_klines(symbols), market.clock) as server:
        market.server = server
        settings = binance_settings(nats_url, database_url, server, symbols, "auto", log_level="INFO")
        service = build_service(settings, clock=market.clock)
        async with running(service):
            await wait_for(series_reached(service, symbols, market.last_closed), what="backfill")
            await wait_for(_connected(server), what="websocket open")
            await market.next_minute()
            await wait_for(series_reached(service, symbols, market.last_closed), what="websocket minute")
            with capture_logs() as logs:
                server.ws_silent = True
                await wait_for(_feed_detail(service, "binance REST polling (websocket silent"), what="REST fallback")
                for _ in range(3):
                    await market.next_minute()
                    await wait_for(series_reached(service, symbols, market.last_closed), what="polled minute")
                ready, checks = await service.readiness()
                assert ready == "ok" and checks["feed"].ok
                server.ws_silent = False
                await wait_for(_feed_detail(service, "binance websocket live"), what="websocket takes over")
                await market.next_minute(2)
                await wait_for(series_reached(service, symbols, market.last_closed), what="websocket minutes after")
            events = [entry["event"] for entry in logs]
            assert events.count("websocket unhealthy; REST polling takes over") == 1
            assert events.count("websocket healthy again; it takes over from REST polling") == 1
            for symbol in symbols:
                transports = await assert_exact_series(
                    nc, service.pool, symbol, server.served(symbol, HISTORY_START, market.last_closed)
                )
                assert [transports[T0 + i * MINUTE_MS] for i in range(6)] == [
                    "binance-ws", "binance-rest", "binance-rest", "binance-rest", "binance-ws", "binance-ws"
                ]  # fmt: skip


def _connected(server: object) -> object:
    async def check() -> bool:
        return server.connected > 0  # type: ignore[attr-defined]

    return check


def _more_connects(server: object, than: int) -> object:
    async def check() -> bool:
        return server.connects > than  # type: ignore[attr-defined]

    return check


def _failed_reconnects(at_least: float) -> object:
    async def check() -> bool:
        return sample("websocket_reconnections_total", {"source": "binance", "status": "failure"}) >= at_least

    return check


def _feed_detail(service: object, prefix: str) -> object:
    async def check() -> bool:
        _, checks = await service.readiness()  # type: ignore[attr-defined]
        return bool(checks["feed"].detail.startswith(prefix))

    return check
