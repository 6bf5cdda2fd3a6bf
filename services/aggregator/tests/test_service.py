"""The aggregator on a real NATS and PostgreSQL: publish timing and order, revisions, restart, HTTP."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg

from tradebus import subjects
from tradebus.bus import encode, ensure_streams
from tradebus.events import Bar, BarEvent, Mode
from tradebus.service import Service
from tradebus.testing import admin_publisher, running, wait_for
from tradebus.timeframes import MINUTE_MS, datetime_to_ms, iso_utc

sys.path.insert(0, str(Path(__file__).parent))
from aggregator_testkit import minute

from tradebus_aggregator.app import build_service
from tradebus_aggregator.settings import AggregatorSettings

HOUR = datetime_to_ms(datetime(2024, 3, 5, 10, tzinfo=UTC))
SYMBOLS = ("AGGONE", "AGGTWO", "AGGRUN", "BTCUSDT")


class Tap:
    """Every higher bar of one symbol as JetStream stored it, with its Nats-Msg-Id."""

    def __init__(self) -> None:
        self.events: list[tuple[str, BarEvent]] = []

    async def on_msg(self, msg: Msg) -> None:
        if not msg.subject.startswith("bars.1m."):
            msg_id = msg.headers["Nats-Msg-Id"] if msg.headers else ""
            self.events.append((msg_id, BarEvent.model_validate_json(msg.data)))

    def names(self, since: int = 0) -> list[str]:
        out = []
        for _, e in self.events[since:]:
            b = e.data
            out.append(f"{b.interval}@{iso_utc(b.open_time)[11:16]}" + (f":r{b.revision}" if b.revision else ""))
        return out


@pytest.fixture
async def tap(nats_url: str) -> AsyncIterator[Callable[[str], Any]]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js)

    async def subscribe(symbol: str) -> Tap:
        t = Tap()
        await js.subscribe(f"bars.*.{symbol}", stream="BARS", cb=t.on_msg, ordered_consumer=True)
        return t

    yield subscribe
    await nc.close()


def make(nats_url: str, database_url: str) -> Service:
    settings = AggregatorSettings(
        nats_url=nats_url, database_url=database_url, heartbeat_interval_s=1.0, symbols=SYMBOLS
    )
    return build_service(settings)


async def send(service: Service, bars: list[Bar]) -> list[BarEvent]:
    events = [BarEvent.of(b, source="ingest", mode=Mode.REPLAY) for b in bars]
    await (await admin_publisher(service)).publish_many((subjects.bars("1m", e.data.symbol), e) for e in events)
    return events


async def stored_1m(service: Service, symbol: str, n: int) -> None:
    async def done() -> bool:
        count = await service.pool.fetchval("SELECT count(*) FROM bars WHERE symbol = $1 AND interval = '1m'", symbol)
        return bool(count == n)

    await wait_for(done, timeout=30.0, what=f"{n} 1m bars of {symbol} stored")


async def seen(t: Tap, n: int) -> None:
    async def done() -> bool:
        return len(t.events) >= n

    await wait_for(done, timeout=30.0, what=f"{n} higher bars published")


def at(i: int) -> int:
    return HOUR + i * MINUTE_MS


async def test_publishes_on_last_minute_in_order_revises_and_ignores_duplicates(
    nats_url: str, database_url: str, tap: Callable[[str], Any]
) -> None:
    sym = "AGGONE"
    t: Tap = await tap(sym)
    async with running(make(nats_url, database_url)) as service:
        await send(service, [minute(at(i), symbol=sym) for i in range(4)])
        await stored_1m(service, sym, 4)
        assert t.events == []
        (closer,) = await send(service, [minute(at(4), "101", symbol=sym, volume="2")])
        await seen(t, 1)
        msg_id, first = t.events[0]
        assert t.names() == ["5m@10:00"] and msg_id == f"bar:{sym}:5m:{HOUR}"
        assert (first.trace_id, first.mode, first.source) == (closer.trace_id, Mode.REPLAY, "aggregator")
        assert (first.data.source.value, first.data.complete, first.data.volume, first.data.close) == (
            "aggregated",
            True,
            6,
            101,
        )

        await send(service, [minute(at(i), symbol=sym) for i in range(5, 60) if i != 7])
        await seen(t, 1 + 11 + 4 + 1)
        assert t.names()[-3:] == ["1h@10:00", "15m@10:45", "5m@10:55"]
        gap_bar = next(e.data for _, e in t.events if e.event_id == f"bar:{sym}:5m:{at(5)}")
        assert not gap_bar.complete

        before = len(t.events)
        await send(service, [minute(at(7), "90", symbol=sym)])
        await seen(t, before + 3)
        assert t.names(before) == ["1h@10:00:r1", "15m@10:00:r1", "5m@10:05:r1"]
        assert t.events[-1][0] == f"bar:{sym}:5m:{at(5)}:r1"
        assert t.events[-1][1].data.complete and t.events[-1][1].data.low == 90

        duplicate = BarEvent.of(minute(at(7), "90", symbol=sym), source="ingest", mode=Mode.REPLAY)
        await (await admin_publisher(service)).publish_raw(
            subjects.bars("1m", sym), encode(duplicate), "another-msg-id"
        )
        await send(service, [minute(at(i), symbol=sym) for i in range(60, 65)])
        await seen(t, before + 4)
        await stored_1m(service, sym, 65)
        assert t.names(before + 3) == ["5m@11:00"]

        revision = await service.pool.fetchval(
            "SELECT revision FROM bars WHERE symbol = $1 AND interval = '1h' AND open_time = $2",
            sym,
            datetime(2024, 3, 5, 10, tzinfo=UTC),
        )
        assert revision == 1
        await check_http(service, sym)


async def check_http(service: Service, sym: str) -> None:
    transport = httpx.ASGITransport(app=service.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://aggregator") as client:
        bars = (await client.get("/v1/bars", params={"symbol": sym, "interval": "5m"})).json()
        assert [b["open_time"][11:16] for b in bars] == [f"{h}:{m:02d}" for h in (10,) for m in range(0, 60, 5)] + [
            "11:00"
        ]
        assert bars[0]["close"] == "101" and bars[0]["volume"] == "6" and bars[1]["revision"] == 1
        newest = (await client.get("/v1/bars", params={"symbol": sym, "interval": "5m", "limit": 2})).json()
        assert [b["open_time"] for b in newest] == ["2024-03-05T10:55:00Z", "2024-03-05T11:00:00Z"]
        window = await client.get(
            "/v1/bars",
            params={"symbol": sym, "interval": "1m", "start": "2024-03-05T10:10:00Z", "end": "2024-03-05T10:13:00Z"},
        )
        assert [b["open_time"][11:16] for b in window.json()] == ["10:10", "10:11", "10:12"]
        bad_interval = await client.get("/v1/bars", params={"symbol": sym, "interval": "7m"})
        assert bad_interval.status_code == 422 and "unknown interval '7m'" in bad_interval.text
        bad_symbol = await client.get("/v1/bars", params={"symbol": "btc-usdt", "interval": "5m"})
        assert bad_symbol.status_code == 422 and "symbol" in bad_symbol.text
        too_many = await client.get("/v1/bars", params={"symbol": sym, "limit": 5001})
        assert too_many.status_code == 422
        unknown = await client.get("/v1/bars", params={"symbol": "NOSUCHUSDT"})
        assert unknown.status_code == 404 and f"this stack knows {', '.join(SYMBOLS)}" in unknown.text
        lower = await client.get("/v1/bars", params={"symbol": sym.lower(), "interval": "5m", "limit": 1})
        assert lower.json() == newest[-1:]
        empty = await client.get("/v1/bars", params={"symbol": sym, "interval": "1m", "end": "2000-01-01T00:00:00Z"})
        assert (empty.status_code, empty.json()) == (200, [])

        meta = (await client.get("/v1/meta/instruments")).json()
        mine = next(i for i in meta["instruments"] if i["symbol"] == sym)
        assert mine["bars"] == {"1m": 65, "5m": 13, "15m": 4, "1h": 1, "4h": 0, "1d": 0, "1w": 0}
        filtered = (await client.get("/v1/meta/instruments", params={"min_bars_1m": 66})).json()
        assert sym not in {i["symbol"] for i in filtered["instruments"]}
        exposition = (await client.get("/metrics")).text
        assert 'tradebus_aggregator_bars_revised_total{interval="1h"}' in exposition
        assert 'tradebus_aggregator_incomplete_bars_total{interval="5m"}' in exposition


async def test_restart_mid_bucket_neither_loses_nor_duplicates(
    nats_url: str, database_url: str, tap: Callable[[str], Any]
) -> None:
    sym = "AGGTWO"
    t: Tap = await tap(sym)
    first_bucket = [minute(at(i), symbol=sym) for i in range(5)]
    partial = [minute(at(i), symbol=sym, volume="2") for i in range(5, 8)]
    async with running(make(nats_url, database_url)) as service:
        await send(service, first_bucket + partial)
        await stored_1m(service, sym, 8)
        await seen(t, 1)

    async with running(make(nats_url, database_url)) as service:
        for bar in [*first_bucket, *partial]:  # redelivered after a crash, under fresh message ids
            event = BarEvent.of(bar, source="ingest")
            await (await admin_publisher(service)).publish_raw(
                subjects.bars("1m", sym), encode(event), f"redelivery-{bar.open_ms}"
            )
        await send(service, [minute(at(i), symbol=sym, volume="2") for i in range(8, 10)])
        await seen(t, 2)
        await stored_1m(service, sym, 10)
    assert t.names() == ["5m@10:00", "5m@10:05"]
    restarted = t.events[1][1].data
    assert (restarted.complete, restarted.revision, restarted.volume) == (True, 0, 10)


async def test_a_backfilled_run_takes_the_batch_path_and_publishes_every_interval(
    nats_url: str, database_url: str, tap: Callable[[str], Any]
) -> None:
    sym = "AGGRUN"
    t: Tap = await tap(sym)
    settings = AggregatorSettings(
        nats_url=nats_url, database_url=database_url, heartbeat_interval_s=1.0, symbols=SYMBOLS
    )
    async with running(build_service(settings)) as service:
        await send(service, [minute(at(i), symbol=sym) for i in range(0, 121) if i != 30])  # 10:00..12:00
        await stored_1m(service, sym, 120)
        await seen(t, 24 + 8 + 2 + 1)
        assert t.names()[:4] == ["5m@10:00", "5m@10:05", "15m@10:00", "5m@10:10"]  # descending per minute
        assert t.names()[-4:] == ["4h@08:00", "1h@11:00", "15m@11:45", "5m@11:55"]  # all closed by 11:59
        incomplete = [n for n, (_, e) in zip(t.names(), t.events, strict=True) if not e.data.complete]
        assert incomplete == ["5m@10:30", "15m@10:30", "1h@10:00", "4h@08:00"]  # 08:00-09:59 never sent
        counts = await service.pool.fetch("SELECT interval, bars FROM bar_counts WHERE symbol = $1", sym)
        assert {r["interval"]: r["bars"] for r in counts} == {"1m": 120, "5m": 24, "15m": 8, "1h": 2, "4h": 1}
