"""The ingest service on real NATS and PostgreSQL: history, live minutes, restarts, replay."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from ingest_support import ManualClock, base_settings, bus_events, ohlcv
from nats.aio.client import Client
from prometheus_client import REGISTRY

from tradebus.events import Bar, Mode
from tradebus.service import Service
from tradebus.testing import running, wait_for
from tradebus.timeframes import MINUTE_MS, datetime_to_ms
from tradebus_ingest import synthetic
from tradebus_ingest.app import build_service
from tradebus_ingest.settings import IngestSettings

NOW = datetime_to_ms(datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC))
"""Half a minute past 12:00, so the last closed minute is 11:59."""
SEED = 42


def expected_series(symbol: str, first_ms: int, last_ms: int) -> list[Bar]:
    return list(synthetic.bars_between(SEED, symbol, first_ms, last_ms, synthetic.close_before(SEED, symbol, first_ms)))


async def stored_bars(service: Service, symbol: str) -> list[asyncpg.Record]:
    return await service.pool.fetch(
        "SELECT * FROM bars WHERE symbol = $1 AND source = 'synthetic' ORDER BY open_time", symbol
    )


def checkpoint_reached(service: Service, symbols: tuple[str, ...], open_ms: int) -> Callable[[], Any]:
    async def reached() -> bool:
        rows = await service.pool.fetch("SELECT symbol, open_time FROM checkpoints WHERE source = 'synthetic'")
        got = {r["symbol"]: datetime_to_ms(r["open_time"]) for r in rows}
        return all(got.get(s) == open_ms for s in symbols)

    return reached


async def assert_exact_series(nc: Client, service: Service, symbol: str, expected: list[Bar]) -> list[Any]:
    """The bus and the table hold exactly `expected`, each minute once, in order."""
    events = await bus_events(nc, f"bars.1m.{symbol}")
    assert [e.event_id for e in events] == [f"bar:{symbol}:1m:{b.open_ms}" for b in expected]
    assert [e.data for e in events] == expected
    rows = await stored_bars(service, symbol)
    assert [datetime_to_ms(r["open_time"]) for r in rows] == [b.open_ms for b in expected]
    assert [
        (r["open"], r["high"], r["low"], r["close"], r["volume"], r["quote_volume"], Decimal(r["trades"])) for r in rows
    ] == [ohlcv(b) for b in expected]
    return events


async def test_history_then_live_minutes(nats_url: str, database_url: str, nc: Client) -> None:
    symbols = ("HISTA", "HISTB")
    settings = IngestSettings(**base_settings(nats_url, database_url), symbols=symbols, backfill_days=0.5)
    clock = ManualClock(NOW)
    service = build_service(settings, clock=clock)
    first = NOW - NOW % MINUTE_MS - 720 * MINUTE_MS  # 00:00
    last = NOW - NOW % MINUTE_MS - MINUTE_MS  # 11:59
    async with running(service):
        await wait_for(checkpoint_reached(service, symbols, last), what="history published")
        status, checks = await service.readiness()
        assert status == "degraded"
        assert not checks["feed"].ok
        assert checks["feed"].detail.startswith("offline data source: synthetic feed (Binance unreachable: REST ")
        for symbol in symbols:
            events = await assert_exact_series(nc, service, symbol, expected_series(symbol, first, last))
            assert {e.mode for e in events} == {Mode.REPLAY}

        await clock.advance(MINUTE_MS)  # 12:01:30: the 12:00 minute closed
        await wait_for(checkpoint_reached(service, symbols, last + MINUTE_MS), what="live minute published")
        for symbol in symbols:
            events = await assert_exact_series(nc, service, symbol, expected_series(symbol, first, last + MINUTE_MS))
            assert events[-1].mode is Mode.LIVE
        assert (
            REGISTRY.get_sample_value("tradebus_ingest_bars_total", {"symbol": "HISTA", "source": "synthetic"}) == 721
        )
        assert (
            REGISTRY.get_sample_value("tradebus_ingest_last_bar_timestamp_seconds", {"symbol": "HISTA"})
            == (last + MINUTE_MS) / 1000
        )
        assert REGISTRY.get_sample_value("tradebus_ingest_feed_latency_seconds_count") >= 2

        transport = httpx.ASGITransport(app=service.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            feed = (await client.get("/v1/feed")).json()
            asyncapi = (await client.get("/docs/asyncapi")).text
    assert feed["source"] == "synthetic" and feed["requested"] == "auto" and feed["state"] == "live"
    assert feed["symbols"] == ["HISTA", "HISTB"]
    assert {c["symbol"]: c["bars_stored"] for c in feed["checkpoints"]} == {"HISTA": 721, "HISTB": 721}
    assert "bars.1m.*" in asyncapi


async def test_restart_resumes_without_duplicates_or_holes(nats_url: str, database_url: str, nc: Client) -> None:
    symbols = ("RESTA", "RESTB")
    settings = IngestSettings(
        **base_settings(nats_url, database_url), symbols=symbols, backfill_days=0.1, ingest_live=False
    )
    first = NOW - NOW % MINUTE_MS - 144 * MINUTE_MS
    last = NOW - NOW % MINUTE_MS - MINUTE_MS
    service = build_service(settings, clock=ManualClock(NOW))
    async with running(service):
        await wait_for(checkpoint_reached(service, symbols, last), what="history published")
        # A crash after JetStream acked the last 10 minutes but before they were stored:
        rewind = last - 10 * MINUTE_MS
        await service.pool.execute("DELETE FROM bars WHERE open_time > $1", ms(rewind))
        await service.pool.execute(
            """UPDATE checkpoints c SET open_time = b.open_time, last_close = b.close
               FROM bars b WHERE b.symbol = c.symbol AND b.source = c.source AND b.open_time = $1""",
            ms(rewind),
        )

    later = NOW + 20 * MINUTE_MS
    service = build_service(settings, clock=ManualClock(later))
    async with running(service):
        await wait_for(checkpoint_reached(service, symbols, last + 20 * MINUTE_MS), what="restart caught up")
        for symbol in symbols:
            await assert_exact_series(nc, service, symbol, expected_series(symbol, first, last + 20 * MINUTE_MS))


async def test_replay_source_stores_checkpoints_and_survives_bad_rows(
    nats_url: str, database_url: str, nc: Client, data_dir: Path, tmp_path: Path
) -> None:
    good = (data_dir / "ADABTC-1m-2021-11-27.csv").read_text().splitlines()
    path = tmp_path / "SVCADA-1m-2021-11-27.csv"
    path.write_text("\n".join([*good[:5], "junk,row", "1637971500000,1,0.5,2,1,1,1637971559999,1,1,0,0,0", *good[5:]]))
    settings = IngestSettings(
        **base_settings(nats_url, database_url), ingest_source="replay", ingest_replay_files=str(path)
    )
    service = build_service(settings)

    async def idle() -> bool:
        return (await service.readiness())[1]["feed"].detail.endswith("idle")

    async with running(service):
        await wait_for(idle, what="replay finished")
        status, checks = await service.readiness()
        assert status == "degraded"
        assert checks["feed"].detail.startswith("offline data source: replay of 1 kline file(s)")
        events = await bus_events(nc, "bars.1m.SVCADA")
        assert len(events) == 10 and {e.data.source.value for e in events} == {"replay"}
        assert await service.pool.fetchval("SELECT count(*) FROM bars WHERE symbol = 'SVCADA'") == 0  # files keep them
        transport = httpx.ASGITransport(app=service.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            feed = (await client.get("/v1/feed")).json()
        assert feed["replay"]["rows_rejected"] == {"column_count": 1, "high_below_low": 1}
        assert feed["symbols"] == ["SVCADA"]
        assert feed["checkpoints"][0]["open_time"] == "2021-11-27T00:09:00.000Z"
        assert feed["checkpoints"][0]["bars_stored"] == 10

    service = build_service(settings)
    async with running(service):
        await wait_for(idle, what="second replay finished")
        transport = httpx.ASGITransport(app=service.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            feed = (await client.get("/v1/feed")).json()
        assert feed["replay"]["bars_skipped"] == 10 and feed["replay"]["bars_published"] == 0
        assert feed["checkpoints"][0]["bars_stored"] == 10
    assert len(await bus_events(nc, "bars.1m.SVCADA")) == 10


def ms(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
