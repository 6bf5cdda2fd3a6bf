"""Helpers for the Binance transport tests: known exchange data, a market clock the test moves
together with the fake server, settings with test-sized timings, exact-series assertions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from fake_binance import FakeBinance
from ingest_support import ManualClock, base_settings, bus_events, ohlcv
from nats.aio.client import Client
from prometheus_client import REGISTRY

from tradebus.events import Bar, BarSource, Mode
from tradebus.service import Service
from tradebus.timeframes import MINUTE_MS, datetime_to_ms
from tradebus_ingest import synthetic
from tradebus_ingest.settings import IngestSettings

T0 = datetime_to_ms(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
"""A minute boundary; the tests start half a minute after it, so the last closed minute is T0 - 1 min."""
HISTORY_MINUTES = 30


def exchange_klines(symbols: Sequence[str], *, before: int = 40, after: int = 30) -> dict[str, list[Bar]]:
    """The exchange's 1m klines around T0 (known data, seeded), as Binance REST would mark them."""
    first, last = T0 - before * MINUTE_MS, T0 + after * MINUTE_MS
    return {
        symbol: [
            bar.model_copy(update={"source": BarSource.BINANCE_REST})
            for bar in synthetic.bars_between(7, symbol, first, last, synthetic.start_price(symbol))
        ]
        for symbol in symbols
    }


class Market:
    """The clock the service and the fake exchange share; `next_minute` closes one more minute."""

    def __init__(self) -> None:
        self.clock = ManualClock(T0 + 30_000)
        self.server: FakeBinance | None = None

    @property
    def last_closed(self) -> int:
        now = self.clock.now_ms()
        return now - now % MINUTE_MS - MINUTE_MS

    async def next_minute(self, minutes: int = 1) -> None:
        assert self.server is not None
        for _ in range(minutes):
            await self.clock.advance(MINUTE_MS)
            await self.server.close_minutes()


def binance_settings(
    nats_url: str, database_url: str, server: FakeBinance, symbols: Sequence[str], source: str, **extra: object
) -> IngestSettings:
    values: dict[str, object] = {
        **base_settings(nats_url, database_url),
        "ingest_source": source,
        "symbols": tuple(symbols),
        "backfill_days": HISTORY_MINUTES / 1440,
        "binance_rest_url": server.rest_url,
        "binance_ws_url": server.ws_url,
        "binance_timeout_s": 2.0,
        "binance_backoff_s": 0.05,
        "binance_backoff_max_s": 0.2,
        "binance_ws_silence_s": 0.5,
        "binance_close_grace_s": 0.0,
        "binance_switch_delay_s": 0.0,
        **extra,
    }
    return IngestSettings(**values)  # type: ignore[arg-type]


def series_reached(service: Service, symbols: Sequence[str], open_ms: int) -> Callable[[], Awaitable[bool]]:
    """The stored Binance series of every symbol reaches `open_ms`."""

    async def reached() -> bool:
        rows = await service.pool.fetch("SELECT symbol, open_time FROM checkpoints WHERE source = 'binance'")
        got = {r["symbol"]: datetime_to_ms(r["open_time"]) for r in rows}
        return all(got.get(s, 0) >= open_ms for s in symbols)

    return reached


async def stored_series(pool: asyncpg.Pool, symbol: str) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM bars WHERE source = 'binance' AND symbol = $1 ORDER BY open_time", symbol)


async def assert_exact_series(nc: Client, pool: asyncpg.Pool, symbol: str, expected: list[Bar]) -> dict[int, str]:
    """Bus and table hold exactly `expected`: every minute once, in order, with the exchange's values.
    Returns the transport that delivered each minute."""
    events = await bus_events(nc, f"bars.1m.{symbol}")
    assert [e.event_id for e in events] == [f"bar:{symbol}:1m:{b.open_ms}" for b in expected]
    assert [ohlcv(e.data) for e in events] == [ohlcv(b) for b in expected]
    assert {e.mode for e in events} == {Mode.LIVE}
    assert {e.data.source for e in events} <= {BarSource.BINANCE_WS, BarSource.BINANCE_REST}
    rows = await stored_series(pool, symbol)
    assert [datetime_to_ms(r["open_time"]) for r in rows] == [b.open_ms for b in expected]
    assert [
        (r["open"], r["high"], r["low"], r["close"], r["volume"], r["quote_volume"], Decimal(r["trades"])) for r in rows
    ] == [ohlcv(b) for b in expected]
    by_event = {e.data.open_ms: e.data.source.value for e in events}
    assert {datetime_to_ms(r["open_time"]): r["transport"] for r in rows} == by_event
    return by_event


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
