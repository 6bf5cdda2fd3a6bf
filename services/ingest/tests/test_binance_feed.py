"""The Binance transports against a real local server speaking Binance's protocol, on real NATS
and PostgreSQL. Every test ends by checking the exact 1m series on the bus and in the table:
every minute once, in order, equal to what the exchange served."""

from __future__ import annotations

import orjson
from binance_support import (
    HISTORY_MINUTES,
    T0,
    Market,
    assert_exact_series,
    binance_settings,
    exchange_klines,
    sample,
    series_reached,
    stored_series,
)
from fake_binance import FakeBinance, fake_binance, kline_frame
from nats.aio.client import Client
from structlog.testing import capture_logs

from tradebus.feedhealth import feeds
from tradebus.testing import running, wait_for
from tradebus.timeframes import MINUTE_MS, datetime_to_ms
from tradebus_ingest.app import build_service

HISTORY_START = T0 - HISTORY_MINUTES * MINUTE_MS
REJECTED = "tradebus_ingest_rejected_messages_total"


async def test_websocket_disconnect_mid_stream_reconnects_and_repairs_the_gap(
    nats_url: str, database_url: str, nc: Client
) -> None:
    symbols = ("WSDROPA", "WSDROPB")
    market = Market()
    async with fake_binance(exchange_klines(symbols), market.clock) as server:
        market.server = server
        service = build_service(binance_settings(nats_url, database_url, server, symbols, "ws"), clock=market.clock)
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
        settings = binance_settings(
            nats_url, database_url, server, symbols, "auto", log_level="INFO", binance_ws_silence_s=1.0
        )
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


async def test_rate_limits_are_honoured(nats_url: str, database_url: str, nc: Client) -> None:
    """A 429 is waited out for its Retry-After and the call repeated; a 418 ban longer than we wait
    stops REST calls (readiness says why) instead of hammering the server."""
    symbols = ("RESTLIMIT",)
    history = 1500  # two pages of at most 1000
    market = Market()
    async with fake_binance(exchange_klines(symbols, before=history + 10), market.clock) as server:
        market.server = server
        server.rate_limited, server.retry_after = 1, 1
        settings = binance_settings(nats_url, database_url, server, symbols, "rest", backfill_days=history / 1440)
        service = build_service(settings, clock=market.clock)
        limited = sample("tradebus_ingest_rest_calls_total", {"status": "429"})
        rest_failures = feeds("ingest")["binance_rest"].failures
        async with running(service):
            await wait_for(series_reached(service, symbols, market.last_closed), timeout=15, what="backfill")
            first, retried, second_page = server.requests[:3]
            assert (first.status, retried.status, second_page.status) == (429, 200, 200)
            assert (retried.start_ms, retried.end_ms, retried.limit) == (first.start_ms, first.end_ms, 1000)
            assert retried.at - first.at >= 1.0
            assert second_page.start_ms == first.start_ms + 1000 * MINUTE_MS
            assert sample("tradebus_ingest_rest_calls_total", {"status": "429"}) == limited + 1
            assert feeds("ingest")["binance_rest"].failures == rest_failures + 1  # the 429, in the feed's health
            await market.next_minute()
            await wait_for(series_reached(service, symbols, market.last_closed), what="polled minute")

            server.rate_limited, server.rate_limit_status, server.retry_after = 1, 418, 600
            await market.next_minute()
            await wait_for(_feed_detail(service, "binance REST polling; REST failing: rate limited"), what="ban")
            calls = len(server.requests)
            await market.next_minute()
            await wait_for(_feed_detail(service, "binance REST polling; REST failing"), what="still banned")
            assert len(server.requests) == calls  # no call while banned
            ready, checks = await service.readiness()
            assert ready == "degraded" and not checks["feed"].ok
            start = T0 - history * MINUTE_MS
            await assert_exact_series(nc, service.pool, "RESTLIMIT", server.served("RESTLIMIT", start, T0))


async def test_bad_frames_are_counted_logged_once_and_never_a_bar(nats_url: str, database_url: str, nc: Client) -> None:
    symbols = ("BADFRAME",)
    market = Market()
    async with fake_binance(exchange_klines(symbols), market.clock) as server:
        market.server = server
        service = build_service(binance_settings(nats_url, database_url, server, symbols, "ws"), clock=market.clock)
        reasons = ("not_json", "malformed", "high_below_low", "unknown_symbol")
        before = {r: sample(REJECTED, {"transport": "binance-ws", "reason": r}) for r in reasons}
        ws_failures = feeds("ingest")["binance_ws"].failures
        async with running(service):
            await wait_for(series_reached(service, symbols, market.last_closed), what="backfill")
            await wait_for(_connected(server), what="websocket open")
            good = server.served("BADFRAME", T0, T0)[0]
            inverted = good.model_copy(update={"high": good.low, "low": good.high})
            truncated = kline_frame(good, closed=True, event_ms=T0)
            lacking_open = orjson.loads(truncated)
            del lacking_open["data"]["k"]["o"]
            with capture_logs() as logs:
                for frame in (
                    "not json at all",
                    "not json either",
                    truncated[: len(truncated) // 2],
                    b"\x00\xff\x01",
                    orjson.dumps(lacking_open).decode(),
                    kline_frame(inverted, closed=True, event_ms=T0),
                    kline_frame(good.model_copy(update={"symbol": "OTHERUSDT"}), closed=True, event_ms=T0),
                ):
                    await server.send_raw(frame)
                await market.next_minute()  # now the good kline of T0
                await wait_for(series_reached(service, symbols, T0), what="good minute")
            assert {r: sample(REJECTED, {"transport": "binance-ws", "reason": r}) - before[r] for r in reasons} == {
                "not_json": 4, "malformed": 1, "high_below_low": 1, "unknown_symbol": 1
            }  # fmt: skip
            logged = [e["reason"] for e in logs if e["event"].startswith("exchange message rejected")]
            assert sorted(logged) == sorted(reasons)  # once per kind
            assert feeds("ingest")["binance_ws"].failures == ws_failures + 7  # each bad frame, in the feed's health
            assert server.connects == 1  # nothing dropped the connection
            transports = await assert_exact_series(
                nc, service.pool, "BADFRAME", server.served("BADFRAME", HISTORY_START, T0)
            )
            assert transports[T0] == "binance-ws"


async def test_a_gap_after_a_restart_is_repaired_in_order(nats_url: str, database_url: str, nc: Client) -> None:
    symbols = ("RESTARTA", "RESTARTB")
    market = Market()
    async with fake_binance(exchange_klines(symbols), market.clock) as server:
        market.server = server
        settings = binance_settings(nats_url, database_url, server, symbols, "ws")
        service = build_service(settings, clock=market.clock)
        async with running(service):
            await wait_for(series_reached(service, symbols, market.last_closed), what="backfill")
            await wait_for(_connected(server), what="websocket open")
            await market.next_minute()
            await wait_for(series_reached(service, symbols, market.last_closed), what="websocket minute")
        await market.next_minute(5)  # five minutes close while ingest is down
        calls = len(server.requests)
        service = build_service(settings, clock=market.clock)
        async with running(service):
            await wait_for(series_reached(service, symbols, market.last_closed), what="gap repaired")
            assert {(r.symbol, r.start_ms, r.end_ms) for r in server.requests[calls:]} == {
                (s, T0 + MINUTE_MS, T0 + 5 * MINUTE_MS) for s in symbols
            }  # only the missing minutes were asked for
            await wait_for(_connected(server), what="websocket open again")
            await market.next_minute()
            await wait_for(series_reached(service, symbols, market.last_closed), what="websocket minute after")
            for symbol in symbols:
                await assert_exact_series(
                    nc, service.pool, symbol, server.served(symbol, HISTORY_START, market.last_closed)
                )


async def test_auto_runs_offline_until_binance_answers(nats_url: str, database_url: str) -> None:
    symbols = ("OFFLINEA",)
    market = Market()
    server = FakeBinance(exchange_klines(symbols), market.clock)  # bound, not listening: unreachable
    market.server = server
    settings = binance_settings(nats_url, database_url, server, symbols, "auto", backfill_days=10 / 1440)
    service = build_service(settings, clock=market.clock)
    try:
        async with running(service):
            await wait_for(_feed_detail(service, "offline data source: synthetic feed (Binance unreachable: REST"))
            ready, _ = await service.readiness()
            assert ready == "degraded"
            await server.start()
            await wait_for(_feed_detail(service, "binance websocket live"), what="switch to Binance")
            await wait_for(series_reached(service, symbols, market.last_closed), what="Binance history")
            assert (await service.readiness())[0] == "ok"
            rows = await stored_series(service.pool, "OFFLINEA")
            expected = server.served("OFFLINEA", T0 - 10 * MINUTE_MS, market.last_closed)
            assert [(datetime_to_ms(r["open_time"]), r["close"]) for r in rows] == [
                (b.open_ms, b.close) for b in expected
            ]
            synthetic_rows = await service.pool.fetchval("SELECT count(*) FROM bars WHERE source = 'synthetic'")
            assert synthetic_rows == 10
    finally:
        await server.stop()


async def test_a_symbol_the_exchange_does_not_know_is_refused_once(
    nats_url: str, database_url: str, nc: Client
) -> None:
    market = Market()
    async with fake_binance(exchange_klines(("KNOWNSYM",)), market.clock) as server:
        market.server = server
        settings = binance_settings(nats_url, database_url, server, ("KNOWNSYM", "NOSUCHSYM"), "rest")
        service = build_service(settings, clock=market.clock)
        refused = sample(REJECTED, {"transport": "binance-rest", "reason": "refused_symbol"})
        async with running(service):
            await wait_for(series_reached(service, ("KNOWNSYM",), market.last_closed), what="backfill")
            await market.next_minute(2)
            await wait_for(series_reached(service, ("KNOWNSYM",), market.last_closed), what="polled minutes")
            assert [r.symbol for r in server.requests].count("NOSUCHSYM") == 1
            assert sample(REJECTED, {"transport": "binance-rest", "reason": "refused_symbol"}) == refused + 1
            assert (await service.readiness())[1]["feed"].ok
            expected = server.served("KNOWNSYM", HISTORY_START, market.last_closed)
            await assert_exact_series(nc, service.pool, "KNOWNSYM", expected)
            assert await stored_series(service.pool, "NOSUCHSYM") == []
