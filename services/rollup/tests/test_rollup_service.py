"""The rollup service on a real NATS and PostgreSQL: trades in, rows and events out, HTTP, EOD lock.

The NATS server is shared by the whole test run, so every test uses its own days (in 2019)
and strategy names and only asserts on those.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from tradebus import subjects
from tradebus.bus import encode
from tradebus.events import DailyPerformanceEvent, Direction, Mode, StrategyPerformanceEvent, Trade, TradeEvent
from tradebus.testing import admin_publisher, running, wait_for
from tradebus_rollup import performance
from tradebus_rollup.app import RollupService, create
from tradebus_rollup.rollup import EodOutcome
from tradebus_rollup.settings import RollupSettings

TOKEN = "test-token"
DAY = date(2019, 3, 4)


def trade_event(
    trade_id: str, strategy: str, exit_time: datetime, net: str, *, fee: str = "1", mode: Mode = Mode.LIVE
) -> TradeEvent:
    fees, net_pnl = Decimal(fee), Decimal(net)
    trade = Trade(
        trade_id=trade_id,
        symbol="BTCUSDT",
        strategy=strategy,
        direction=Direction.LONG,
        quantity=Decimal("0.5"),
        entry_price=Decimal("100"),
        exit_price=Decimal("100") + 2 * (net_pnl + fees),
        entry_time=exit_time - timedelta(hours=1),
        exit_time=exit_time,
        gross_pnl=net_pnl + fees,
        fees=fees,
        net_pnl=net_pnl,
        exit_reason="target",
    )
    return TradeEvent.build(
        event_id=f"trade:{trade_id}", source="risk", trace_id=f"tr-{trade_id}", data=trade, mode=mode
    )


def day_trades(strategy: str, day: date, nets: list[str], *, mode: Mode = Mode.LIVE) -> list[TradeEvent]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9)
    return [
        trade_event(f"{strategy}-{day}-{i}", strategy, start + timedelta(minutes=i), net, mode=mode)
        for i, net in enumerate(nets)
    ]


@pytest.fixture
async def rollup(nats_url: str, database_url: str) -> AsyncIterator[RollupService]:
    settings = RollupSettings(
        nats_url=nats_url,
        database_url=database_url,
        heartbeat_interval_s=1.0,
        tradebus_api_token=TOKEN,
        admission_live_max_age_days=36_500,  # live trades of 2019: the live window is tested in tradebus
    )
    built = create(settings)
    async with running(built.service):

        async def startup_eod_done() -> bool:
            return bool(await built.service.pool.fetchval("SELECT count(*) FROM eod_runs"))

        await wait_for(startup_eod_done, what="the start-up end-of-day catch-up")
        yield built


@pytest.fixture
async def daily_events(nc: Client) -> AsyncIterator[list[DailyPerformanceEvent]]:
    seen: list[DailyPerformanceEvent] = []

    async def collect(msg: Msg) -> None:
        seen.append(DailyPerformanceEvent.model_validate_json(msg.data))

    sub = await nc.subscribe(subjects.ROLLUP_DAILY, cb=collect)
    yield seen
    await sub.unsubscribe()


def strategy_name() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


async def daily_row(service: RollupService, day: date) -> asyncpg.Record | None:
    return await service.service.pool.fetchrow("SELECT * FROM daily_performance WHERE day = $1", day)


async def wait_for_day(service: RollupService, day: date, trades: int) -> asyncpg.Record:
    """The day's row once it counts `trades` and every changed row has been published."""

    async def arrived() -> bool:
        row = await daily_row(service, day)
        unpublished = await service.service.pool.fetchval(
            """SELECT (SELECT count(*) FROM daily_performance WHERE published_revision IS DISTINCT FROM revision)
                    + (SELECT count(*) FROM strategy_performance WHERE published_revision IS DISTINCT FROM revision)"""
        )
        return row is not None and row["trades"] == trades and unpublished == 0

    await wait_for(arrived, what=f"{trades} trades on {day}")
    row = await daily_row(service, day)
    assert row is not None
    return row


async def test_trades_become_daily_and_strategy_rows_and_events(
    rollup: RollupService, daily_events: list[DailyPerformanceEvent], nc: Client
) -> None:
    name = strategy_name()
    trades = day_trades(name, DAY, ["10", "-4", "6", "-2"])
    strategy_seen: list[StrategyPerformanceEvent] = []

    async def collect(msg: Msg) -> None:
        strategy_seen.append(StrategyPerformanceEvent.model_validate_json(msg.data))

    sub = await nc.subscribe(subjects.ROLLUP_STRATEGY, cb=collect)
    await (await admin_publisher(rollup.service)).publish_many(
        (subjects.exec_trade("BTCUSDT"), e) for e in reversed(trades)
    )
    row = await wait_for_day(rollup, DAY, 4)

    expected = performance.figures(
        [performance.ClosedTrade.of(e.data) for e in trades]
    )  # the hand-checked case of test_rollup_performance
    assert expected.sharpe == Decimal("0.75664991") and expected.profit_factor == Decimal("2.66666667")
    for field in ("trades", "wins", "win_rate", "gross_pnl", "net_pnl", "fees", "profit_factor", "max_drawdown"):
        assert row[field] == getattr(expected, field), field
    assert row["sharpe"] == expected.sharpe and row["mode"] == "live"
    assert row["revision"] == performance.fingerprint(expected)

    async def published() -> bool:
        return any(e.event_id == f"daily:{DAY}:{row['revision']}" for e in daily_events) and any(
            e.data.strategy == name and e.data.trades == 4 for e in strategy_seen
        )

    await wait_for(published, what="rollup events")
    event = next(e for e in daily_events if e.event_id == f"daily:{DAY}:{row['revision']}")
    assert event.data.day == DAY and event.mode is Mode.LIVE and event.source == "rollup"
    assert event.data.net_pnl == Decimal("10") and event.data.max_drawdown == Decimal("4")
    strategy_row = await rollup.service.pool.fetchrow("SELECT * FROM strategy_performance WHERE strategy = $1", name)
    assert strategy_row is not None and strategy_row["sharpe"] == expected.sharpe
    assert (
        await rollup.service.pool.fetchval(
            "SELECT count(*) FROM daily_performance WHERE published_revision IS DISTINCT FROM revision"
        )
        == 0
    )
    await sub.unsubscribe()


async def test_a_redelivered_trade_changes_nothing(
    rollup: RollupService, daily_events: list[DailyPerformanceEvent], nc: Client
) -> None:
    name, day, marker_day = strategy_name(), date(2019, 4, 1), date(2019, 4, 2)
    trades = day_trades(name, day, ["3", "-1"])
    await (await admin_publisher(rollup.service)).publish_many((subjects.exec_trade("BTCUSDT"), e) for e in trades)
    before = await wait_for_day(rollup, day, 2)
    await wait_for(
        lambda: _async_true(any(e.data.day == day and e.data.trades == 2 for e in daily_events)), what="first event"
    )
    events_before = [e for e in daily_events if e.data.day == day]

    # the same trade again, past JetStream's duplicate window (a new Nats-Msg-Id), then a replayed marker
    js = nc.jetstream()
    await js.publish(subjects.exec_trade("BTCUSDT"), encode(trades[0]), headers={"Nats-Msg-Id": "redelivery-1"})
    marker = day_trades(strategy_name(), marker_day, ["7"], mode=Mode.REPLAY)
    await (await admin_publisher(rollup.service)).publish_many((subjects.exec_trade("BTCUSDT"), e) for e in marker)
    await wait_for_day(rollup, marker_day, 1)
    await wait_for(lambda: _async_true(any(e.data.day == marker_day for e in daily_events)), what="marker event")

    after = await daily_row(rollup, day)
    assert after == before
    assert [e for e in daily_events if e.data.day == day] == events_before
    assert next(e for e in daily_events if e.data.day == marker_day).mode is Mode.REPLAY
    assert await rollup.service.pool.fetchval("SELECT count(*) FROM trades WHERE strategy = $1", name) == 2


async def _async_true(value: bool) -> bool:
    return value


async def test_a_batch_of_replayed_trades_over_several_days(
    rollup: RollupService, daily_events: list[DailyPerformanceEvent]
) -> None:
    name, first, second = strategy_name(), date(2019, 8, 5), date(2019, 8, 6)
    batch = day_trades(name, second, ["-2"], mode=Mode.REPLAY) + day_trades(name, first, ["5", "1"], mode=Mode.REPLAY)
    await rollup.rollup.on_trades(batch)
    await rollup.rollup.on_trades(batch)  # the whole batch redelivered

    rows = {
        r["day"]: r
        for r in await rollup.service.pool.fetch("SELECT * FROM daily_performance WHERE day IN ($1, $2)", first, second)
    }
    assert (rows[first]["trades"], rows[first]["net_pnl"], rows[first]["mode"]) == (2, Decimal(6), "replay")
    assert (rows[second]["trades"], rows[second]["net_pnl"], rows[second]["max_drawdown"]) == (
        1,
        Decimal(-2),
        Decimal(2),
    )
    strategy = await rollup.service.pool.fetchrow("SELECT * FROM strategy_performance WHERE strategy = $1", name)
    assert strategy is not None
    assert (strategy["trades"], strategy["net_pnl"], strategy["max_drawdown"]) == (3, Decimal(4), Decimal(2))
    await wait_for(lambda: _async_true(sum(e.data.day in rows for e in daily_events) == 2), what="two daily events")
    assert {e.mode for e in daily_events if e.data.day in rows} == {Mode.REPLAY}


async def test_http_performance_endpoints_and_gauges(rollup: RollupService) -> None:
    name, first, second = strategy_name(), date(2019, 5, 6), date(2019, 5, 8)
    trades = day_trades(name, first, ["2.5", "-1"]) + day_trades(name, second, ["4"])
    await (await admin_publisher(rollup.service)).publish_many((subjects.exec_trade("BTCUSDT"), e) for e in trades)
    await wait_for_day(rollup, first, 2)
    await wait_for_day(rollup, second, 1)

    transport = httpx.ASGITransport(app=rollup.service.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://rollup") as client:
        daily = await client.get("/v1/performance/daily", params={"from": "2019-05-06", "to": "2019-05-08"})
        one_day = await client.get("/v1/performance/daily", params={"from": "2019-05-08", "to": "2019-05-08"})
        reversed_range = await client.get("/v1/performance/daily", params={"from": "2019-05-08", "to": "2019-05-06"})
        bad_date = await client.get("/v1/performance/daily", params={"from": "2019-13-01"})
        strategies = await client.get("/v1/performance/strategies")
        prometheus = await client.get("/metrics")
        asyncapi = await client.get("/docs/asyncapi")

    assert daily.status_code == 200
    rows = daily.json()
    assert [r["day"] for r in rows] == ["2019-05-06", "2019-05-08"]
    assert rows[0] == {
        "day": "2019-05-06",
        "trades": 2,
        "wins": 1,
        "win_rate": "0.50000000",
        "gross_pnl": "3.5",
        "net_pnl": "1.5",
        "fees": "2",
        "profit_factor": "2.50000000",
        "max_drawdown": "1.0",
        "sharpe": "0.42857143",  # 0.75 / (1.75 * sqrt 2) * sqrt 2 = 3/7
    }
    assert [r["day"] for r in one_day.json()] == ["2019-05-08"]
    assert reversed_range.status_code == 422 and bad_date.status_code == 422
    mine = [s for s in strategies.json() if s["strategy"] == name]
    assert mine and mine[0]["trades"] == 3 and mine[0]["net_pnl"] == "5.5"

    assert "rollups.daily" in asyncapi.text and "rollups.strategy" in asyncapi.text and "exec.trade.*" in asyncapi.text
    assert b"tradebus_rollup_win_rate" in prometheus.content
    assert b"tradebus_rollup_pnl_giveback_ratio" in prometheus.content
    stored = await rollup.service.pool.fetchval("SELECT count(*) FROM trades")
    assert REGISTRY.get_sample_value("tradebus_rollup_trades_total") == stored
    latest = await rollup.service.pool.fetchval("SELECT net_pnl FROM daily_performance ORDER BY day DESC LIMIT 1")
    assert REGISTRY.get_sample_value("tradebus_rollup_daily_pnl") == float(latest)


async def test_recompute_endpoint_needs_the_token_and_is_idempotent(
    rollup: RollupService, nats_url: str, database_url: str
) -> None:
    name, day, quiet = strategy_name(), date(2019, 6, 3), date(2019, 6, 4)
    await (await admin_publisher(rollup.service)).publish_many(
        (subjects.exec_trade("BTCUSDT"), e) for e in day_trades(name, day, ["1", "-3"])
    )
    before = await wait_for_day(rollup, day, 2)
    await rollup.service.pool.execute("DELETE FROM daily_performance WHERE day = $1", day)  # a lost row

    params = {"from": "2019-06-03", "to": "2019-06-04"}
    url = "/v1/performance/recompute"
    unconfigured = create(RollupSettings(nats_url=nats_url, database_url=database_url, tradebus_api_token=None))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=unconfigured.service.app()), base_url="http://rollup"
    ) as client:
        assert (await client.post(url, params=params, headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 503
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=rollup.service.app()), base_url="http://rollup"
    ) as client:
        assert (await client.post(url, params=params)).status_code == 401
        assert (await client.post(url, params=params, headers={"Authorization": "Bearer nope"})).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert (
            await client.post(url, params={"from": "2019-06-04", "to": "2019-06-03"}, headers=auth)
        ).status_code == 422
        first = await client.post(url, params=params, headers=auth)
        again = await client.post(url, params=params, headers=auth)

    assert first.status_code == 200, first.text
    assert first.json() == {"days": 2, "strategies": 1, "published": 2}  # the restored day and the empty day
    assert again.json() == {"days": 2, "strategies": 1, "published": 0}
    restored = await daily_row(rollup, day)
    assert restored is not None
    assert {k: restored[k] for k in ("revision", "net_pnl", "max_drawdown")} == {
        k: before[k] for k in ("revision", "net_pnl", "max_drawdown")
    }
    empty = await daily_row(rollup, quiet)
    assert empty is not None and empty["trades"] == 0 and empty["net_pnl"] == 0 and empty["profit_factor"] is None


async def test_only_one_instance_runs_the_end_of_day_job(rollup: RollupService, database_url: str) -> None:
    holder = await asyncpg.connect(database_url)
    try:
        assert await holder.fetchval("SELECT pg_try_advisory_lock(hashtext('tradebus.rollup.eod'))")
        assert await rollup.rollup.run_eod(date(2019, 7, 1)) is EodOutcome.LOCKED
    finally:
        await holder.close()  # the lock goes with the session

    outcomes = await asyncio.gather(rollup.rollup.run_eod(date(2019, 7, 2)), rollup.rollup.run_eod(date(2019, 7, 2)))
    assert sorted(outcomes).count(EodOutcome.RAN) == 1, outcomes
    assert await rollup.rollup.run_eod(date(2019, 7, 2)) is EodOutcome.DONE
    row = await daily_row(rollup, date(2019, 7, 2))
    assert row is not None and row["trades"] == 0


async def test_a_trade_whose_day_cannot_be_computed_is_not_stored(rollup: RollupService) -> None:
    """Handed past the door (its times are admitted only up to now), a trade closing on the last
    day of the calendar fails before anything is stored: never stored and dead-lettered."""
    name = strategy_name()
    doomed = trade_event(f"{name}-9999", name, datetime(9999, 12, 31, 23, tzinfo=UTC), "5")
    with pytest.raises(OverflowError):
        await rollup.rollup.on_trades([doomed])
    assert await rollup.service.pool.fetchval("SELECT count(*) FROM trades WHERE strategy = $1", name) == 0
