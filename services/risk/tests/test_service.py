"""The risk service on real NATS and PostgreSQL: replay merge, live staleness, idempotency,
restart mid-position, bars held unacked (and a restart after a kill) and the HTTP API."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest
from nats.aio.client import Client

from tradebus import subjects
from tradebus.bus import encode
from tradebus.events import Envelope, Mode, SignalState
from tradebus.service import Service
from tradebus.testing import admin_publisher, durables_exist, running, wait_for
from tradebus.timeframes import MINUTE_MS, datetime_to_ms
from tradebus_risk.app import build_service
from tradebus_risk.settings import RiskSettings

sys.path.insert(0, str(Path(__file__).parent))
from risk_scenario import (
    FIRST_ENTRY,
    FIRST_EXIT,
    FIRST_QTY,
    SECOND_ENTRY,
    SECOND_EXIT,
    SECOND_QTY,
    T0_MS,
    bar,
    net,
    plan,
    scenario_bars,
    scenario_signals,
    signal,
    with_detail,
)

TOKEN = "test-token"
DURABLES = (
    ("SIGNALS", "risk-signals"),
    ("BARS", "risk-bars-1m"),
    ("TELEMETRY", "risk-readiness"),
    ("TELEMETRY", "risk-quality"),
)


def _service(nats_url: str, database_url: str, token: str | None = TOKEN, bars_batch: int = 1000) -> Service:
    settings = RiskSettings(
        nats_url=nats_url,
        database_url=database_url,
        heartbeat_interval_s=0.5,
        tradebus_api_token=token,
        risk_deliver_policy="new",
        risk_bars_batch=bars_batch,
        symbols=(),  # the global order waits for the symbols seen (each test has its own)
    )
    return build_service(settings)


def _sig(symbol: str, minute: int) -> str:
    return f"signal:{symbol}:5m:{T0_MS + minute * MINUTE_MS}"


def expected_events(symbol: str) -> list[tuple[str, str]]:
    """(subject kind, event id) of everything the scripted replay publishes, in order."""
    s0, s15 = _sig(symbol, 0), _sig(symbol, 15)
    return [
        ("order", f"order:{s0}:entry"),
        ("fill", f"fill:{s0}:entry"),
        ("position", f"position:{symbol}:1"),
        ("order", f"order:{s0}:exit"),
        ("fill", f"fill:{s0}:exit"),
        ("position", f"position:{symbol}:2"),
        ("trade", f"trade:{s0}"),
        ("order", f"order:{s15}:entry"),
        ("fill", f"fill:{s15}:entry"),
        ("position", f"position:{symbol}:3"),
        ("order", f"order:{s15}:stop"),
        ("fill", f"fill:{s15}:stop"),
        ("position", f"position:{symbol}:4"),
        ("trade", f"trade:{s15}"),
        ("rejected", f"rejected:{_sig(symbol, 20)}"),
        ("rejected", f"rejected:{_sig(symbol, 25)}"),
        ("rejected", f"rejected:{_sig(symbol, 30)}"),
    ]


@asynccontextmanager
async def serving(service: Service, nc: Client) -> AsyncIterator[Service]:
    """`running(service)`, once its durables exist (they start at the stream's end in these tests)."""
    js = nc.jetstream()

    async with running(service):
        await wait_for(durables_exist(js, DURABLES), what="risk durables created")
        yield service


@asynccontextmanager
async def collecting(nc: Client, symbol: str) -> AsyncIterator[list[tuple[str, dict]]]:
    """Every exec event published for `symbol`, as (subject kind, decoded JSON)."""
    seen: list[tuple[str, dict]] = []

    async def on_msg(msg) -> None:  # type: ignore[no-untyped-def]
        seen.append((msg.subject.split(".")[1], orjson.loads(msg.data)))

    sub = await nc.subscribe(f"exec.*.{symbol}", cb=on_msg)
    try:
        yield seen
    finally:
        await sub.unsubscribe()


async def _publish(service: Service, events: Sequence[Envelope]) -> None:
    def subject(e: Envelope) -> str:
        data = e.data  # type: ignore[attr-defined]
        return subjects.bars("1m", data.symbol) if e.event_type == "bar.closed" else subjects.signals(data.symbol)

    await (await admin_publisher(service)).publish_many((subject(e), e) for e in events)


async def _until_count(seen: list, n: int) -> None:
    async def enough() -> bool:
        return len(seen) >= n

    await wait_for(enough, timeout=15, what=f"{n} exec events")
    await asyncio.sleep(0.3)  # anything extra would show up now


def _ids(seen: list[tuple[str, dict]]) -> list[tuple[str, str]]:
    return [(kind, body["event_id"]) for kind, body in seen]


def _interleaved(symbol: str) -> list[Envelope]:
    bars, signals, out = scenario_bars(symbol), scenario_signals(symbol), []
    rng = random.Random(7)
    while bars or signals:
        source = signals if signals and (not bars or rng.random() < 0.3) else bars
        out.append(source.pop(0))
    return out


@pytest.mark.parametrize("order", ["signals_first", "bars_first", "interleaved"])
async def test_replay_gives_the_same_events_however_streams_interleave(
    order: str, nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    service = _service(nats_url, database_url)
    async with serving(service, js_client), collecting(js_client, symbol) as seen:
        if order == "signals_first":
            await _publish(service, scenario_signals(symbol))
            await _publish(service, scenario_bars(symbol))
        elif order == "bars_first":
            await _publish(service, scenario_bars(symbol))
            await asyncio.sleep(0.3)  # the bars are staged and held, waiting for signals
            await _publish(service, scenario_signals(symbol))
        else:
            for event in _interleaved(symbol):
                await _publish(service, [event])
        await _until_count(seen, 17)
    assert _ids(seen) == expected_events(symbol)
    trades = [body["data"] for kind, body in seen if kind == "trade"]
    assert [(t["exit_reason"], Decimal(t["entry_price"]), Decimal(t["exit_price"])) for t in trades] == [
        ("signal", FIRST_ENTRY, FIRST_EXIT),
        ("stop", SECOND_ENTRY, SECOND_EXIT),
    ]
    assert Decimal(trades[1]["net_pnl"]) == net(SECOND_QTY, SECOND_ENTRY, SECOND_EXIT)
    assert {body["mode"] for _, body in seen} == {"replay"}
    assert trades[0]["strategy"] == "test-model-1"
    reasons = [body["data"]["reason"] for kind, body in seen if kind == "rejected"]
    assert reasons == ["no_position", "risk_reward_too_low", "no_plan"]


async def test_live_signals_stale_rejected_fresh_traded(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    now_ms = datetime_to_ms(datetime.now(tz=UTC))
    t0 = now_ms - now_ms % (5 * MINUTE_MS) - 5 * MINUTE_MS  # the 5m bar that just closed
    stale = signal(symbol, -60, SignalState.BUY, plan("100", "98", "106", "3"), mode=Mode.LIVE, t0_ms=t0)
    fresh = signal(symbol, 0, SignalState.BUY, plan("100", "98", "106", "3"), mode=Mode.LIVE, t0_ms=t0)
    before = bar(symbol, 4, "100", "101", "99.5", "100.5", mode=Mode.LIVE, t0_ms=t0)  # a signal at C waits for C - 1m
    service = _service(nats_url, database_url)
    async with serving(service, js_client), collecting(js_client, symbol) as seen:
        await _publish(service, [before, stale, fresh])
        await _until_count(seen, 2)  # send the fill bar after the order
        await _publish(service, [bar(symbol, 5, "100", "101", "99.5", "100.5", mode=Mode.LIVE, t0_ms=t0)])
        await _until_count(seen, 4)
        reason = await service.pool.fetchval("SELECT reason FROM audit WHERE signal_id = $1", stale.event_id)
    assert [kind for kind, _ in seen] == ["rejected", "order", "fill", "position"]
    assert seen[0][1]["data"]["reason"] == "stale_data" == reason
    assert seen[2][1]["data"]["price"] == "100.05" and seen[2][1]["mode"] == "live"


async def test_redelivered_and_duplicate_events_change_nothing(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    service = _service(nats_url, database_url)
    js = js_client.jetstream()
    everything: list[Envelope] = [*scenario_signals(symbol), *scenario_bars(symbol)]
    async with serving(service, js_client), collecting(js_client, symbol) as seen:
        await _publish(service, everything)
        await _until_count(seen, 17)
        before = await _state(service)
        for event in everything:  # a fresh Nats-Msg-Id gets past JetStream: the service must cope
            subject = subjects.bars("1m", symbol) if event.event_type == "bar.closed" else subjects.signals(symbol)
            await js.publish(subject, encode(event), headers={"Nats-Msg-Id": f"{event.msg_id}:again"})

        async def drained() -> bool:
            infos = [await js.consumer_info(stream, durable) for stream, durable in DURABLES]
            return all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos)

        await wait_for(drained, timeout=15, what="redeliveries consumed")
        await asyncio.sleep(0.3)
        assert await _state(service) == before
    assert len(seen) == 17


async def _state(service: Service) -> tuple[object, ...]:
    pool = service.pool
    return (
        await pool.fetchval("SELECT cash FROM account"),
        await pool.fetchval("SELECT count(*) FROM trades"),
        await pool.fetchval("SELECT count(*) FROM audit"),
        await pool.fetchval("SELECT count(*) FROM outbox"),
        await pool.fetchval("SELECT count(*) FROM orders"),
        await pool.fetchval("SELECT count(*) FROM inbox"),
    )


async def test_restart_mid_position_continues_and_closes(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    signals, bars = scenario_signals(symbol), scenario_bars(symbol)
    async with collecting(js_client, symbol) as seen:
        first = _service(nats_url, database_url)
        async with serving(first, js_client):
            await _publish(first, [*signals[:2], *bars[:13]])
            await _until_count(seen, 3)  # entry order, fill, position open
        second = _service(nats_url, database_url)
        async with serving(second, js_client):
            assert await second.pool.fetchval("SELECT quantity FROM positions WHERE symbol = $1", symbol) == FIRST_QTY
            await _publish(second, [*signals[2:], *bars[13:]])
            await _until_count(seen, 17)
    assert _ids(seen) == expected_events(symbol)


async def test_signals_in_full_and_inbox_rows_of_the_full_model_trade_the_same(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    """Signals with everything the signal service adds are decoded slim; the signals waiting in
    the inbox are then rewritten as an older risk stored them (the full `SignalEvent`)."""
    signals = [with_detail(s) for s in scenario_signals(symbol)]
    async with collecting(js_client, symbol) as seen:
        first = _service(nats_url, database_url)
        async with serving(first, js_client):
            await _publish(first, signals)  # no bar yet: every signal waits in the inbox

            async def staged() -> bool:
                return await first.pool.fetchval("SELECT count(*) FROM inbox WHERE symbol = $1", symbol) == 7

            await wait_for(staged, what="signals staged")
            for s in signals:
                await first.pool.execute(
                    "UPDATE inbox SET payload = $2 WHERE event_id = $1", s.event_id, s.model_dump_json()
                )
        second = _service(nats_url, database_url)
        async with serving(second, js_client):
            await _publish(second, scenario_bars(symbol))
            await _until_count(seen, 17)
    assert _ids(seen) == expected_events(symbol)


async def _bars_durable(nc: Client) -> tuple[int, int]:
    """(not yet delivered, delivered but unacked) of risk's bars durable."""
    info = await nc.jetstream().consumer_info("BARS", "risk-bars-1m")
    return int(info.num_pending or 0), int(info.num_ack_pending or 0)


async def _until_held(service: Service, nc: Client, held: int, pending: int = 0) -> None:
    """Until the service holds `held` bars back and the durable agrees (and has `pending` unsent)."""

    async def reached() -> bool:
        return service.held("bars-1m").held == held and await _bars_durable(nc) == (pending, held)

    await wait_for(reached, timeout=15, what=f"{held} bars held, {pending} not yet sent")


async def test_held_bars_stay_unacked_until_applied(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    service = _service(nats_url, database_url)
    async with serving(service, js_client), collecting(js_client, symbol) as seen:
        await _publish(service, scenario_bars(symbol))
        await _until_held(service, js_client, 40)  # no signal yet: every bar waits, unacked
        assert await service.pool.fetchval("SELECT count(*) FROM inbox") == 0
        await _publish(service, scenario_signals(symbol))
        await _until_count(seen, 17)
        await _until_held(service, js_client, 0)  # applied, then acked
        assert await service.pool.fetchval("SELECT count(*) FROM inbox") == 0
    assert _ids(seen) == expected_events(symbol)


async def test_restart_after_a_kill_with_held_bars_trades_as_an_uninterrupted_run(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    signals, bars = scenario_signals(symbol), scenario_bars(symbol)
    async with collecting(js_client, symbol) as seen:
        first = _service(nats_url, database_url)
        async with serving(first, js_client):
            await _publish(first, [*bars, *signals[:2]])  # signals up to C=10: bars from minute 15 on wait
            await _until_count(seen, 3)
            await _until_held(first, js_client, 25)
            seen_mark = await first.pool.fetchval("SELECT bar_seen FROM symbol_state WHERE symbol = $1", symbol)
        assert seen_mark == bars[14].data.open_time  # persisted only as far as applied: held bars are not durable
        # Stopped without releasing: like a kill, 25 deliveries stay unacked until their ack_wait
        # (60 s), and would come after newer ones. The next instance rewinds the durable instead.
        second = _service(nats_url, database_url)
        async with serving(second, js_client):
            await _publish(second, signals[2:])
            await _until_count(seen, 17)
            await _until_held(second, js_client, 0)
            cash = await second.pool.fetchval("SELECT cash FROM account")
    assert _ids(seen) == expected_events(symbol)
    total = net(FIRST_QTY, FIRST_ENTRY, FIRST_EXIT) + net(SECOND_QTY, SECOND_ENTRY, SECOND_EXIT)
    assert cash == Decimal(10000) + total


async def test_a_failed_transaction_keeps_the_held_bars(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    """The state is dropped after a failure, but not the bars the consumer still holds for it."""
    service = _service(nats_url, database_url)
    async with serving(service, js_client), collecting(js_client, symbol) as seen:
        await _publish(service, scenario_bars(symbol))
        await _until_held(service, js_client, 40)
        # The first audit row written fails its whole transaction once (a sequence survives the rollback).
        await service.pool.execute(
            """CREATE SEQUENCE fail_once;
            CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('fail_once') = 1 THEN RAISE EXCEPTION 'injected failure'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER fail_once BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION fail_once();"""
        )
        await _publish(service, scenario_signals(symbol))
        await _until_count(seen, 17)
        await _until_held(service, js_client, 0)
        failures = await service.pool.fetchval("SELECT last_value FROM fail_once")
    assert failures > 1  # it did fail once, and went on
    assert _ids(seen) == expected_events(symbol)


async def test_held_bars_never_exceed_the_durables_bound(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    batch, bound, minutes = 10, 200, 260  # max_ack_pending is 20 batches
    service = _service(nats_url, database_url, bars_batch=batch)
    consumer = service.held("bars-1m")
    most = 0

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, consumer.held)
            await asyncio.sleep(0.005)

    bars = [bar(symbol, m, "100", "101", "99.5", "100.5") for m in range(minutes)]
    signals = [signal(symbol, m, SignalState.NEUTRAL) for m in range(0, minutes, 5)]
    async with serving(service, js_client):
        watcher = asyncio.create_task(watch())
        try:
            await _publish(service, bars)
            await _until_held(service, js_client, bound, pending=minutes - bound)  # the server stops sending
            await _publish(service, signals)
            await _until_held(service, js_client, 0)
        finally:
            watcher.cancel()
        last = await service.pool.fetchval("SELECT bar_applied FROM symbol_state WHERE symbol = $1", symbol)
    assert most <= bound and consumer.held == 0
    assert last == bars[-1].data.open_time


async def test_http_account_trades_and_reset(nats_url: str, database_url: str, js_client: Client, symbol: str) -> None:
    service = _service(nats_url, database_url)
    async with serving(service, js_client), collecting(js_client, symbol) as seen:
        await _publish(service, [*scenario_signals(symbol), *scenario_bars(symbol)])
        await _until_count(seen, 17)
        transport = httpx.ASGITransport(app=service.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://risk") as client:
            account = (await client.get("/v1/account")).json()
            trades = (await client.get("/v1/trades", params={"symbol": symbol, "limit": 10})).json()
            positions = (await client.get("/v1/positions")).json()
            ready = (await client.get("/health/ready")).json()
            anonymous = await client.post("/v1/risk/reset")
            wrong = await client.post("/v1/risk/reset", headers={"Authorization": "Bearer nope"})
            reset = await client.post("/v1/risk/reset", headers={"Authorization": f"Bearer {TOKEN}"})
        audit = await service.pool.fetchval("SELECT count(*) FROM audit WHERE decision = 'reset'")
    total = net(FIRST_QTY, FIRST_ENTRY, FIRST_EXIT) + net(SECOND_QTY, SECOND_ENTRY, SECOND_EXIT)
    assert Decimal(account["cash"]) == Decimal(account["equity"]) == Decimal(10000) + total
    assert Decimal(account["realized_pnl"]) - Decimal(account["fees"]) == total
    assert account["frozen"] is False and account["open_positions"] == 0
    assert [t["exit_reason"] for t in trades] == ["stop", "signal"] and positions == []
    assert ready["checks"]["trading"]["ok"] is True
    assert (anonymous.status_code, wrong.status_code, reset.status_code) == (401, 401, 200)
    assert reset.json()["peak_equity"] == account["equity"] and audit == 1


async def test_reset_refuses_without_a_configured_token(nats_url: str, database_url: str) -> None:
    service = _service(nats_url, database_url, token=None)
    transport = httpx.ASGITransport(app=service.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://risk") as client:
        response = await client.post("/v1/risk/reset", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 503 and "TRADEBUS_API_TOKEN is not configured" in response.text
