"""Issue 15 through the service. The acceptance on real klines: four symbols quoted in two assets
(ETHUSDT, and XRBBTC, ICXBTC, NEOBTC, all of 2018-07-16 02:52-11:09; tests/data/SOURCES.md), each
with a dense 5m signal drawn from a seeded generator, replayed into the service (real NATS and
PostgreSQL) in event order with a large bars batch, and shuffled in small chunks with a bars
batch of 7: both give byte for byte the pure book's trades, audit, orders, events and balances
(so each other's), and a checker walking the trades in event time finds no breach of the shared
limits. Every series is cut at the same minute, the last of a 5m bucket, so no stream is left
holding the event order at the end (a replay's tail, services/risk/README.md)."""

from __future__ import annotations

import random
import secrets
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from nats.aio.client import Client

from tradebus.events import (
    BarEvent,
    BarSource,
    Envelope,
    Mode,
    SignalEvent,
    SignalState,
    make_bar,
)
from tradebus.testing import wait_for
from tradebus.timeframes import MINUTE_MS, datetime_to_ms
from tradebus_risk.app import build_service
from tradebus_risk.bench import dense_signal
from tradebus_risk.book import Book
from tradebus_risk.settings import RiskSettings

sys.path.insert(0, str(Path(__file__).parent))
from account_checker import breaches
from risk_scenario import bar, plan, signal
from test_event_order import (
    _num,
    delivery,
    most_open_at_once,
    open_intervals,
    reference,
    reference_dump,
    replay,
    service_dump,
)
from test_service import _publish, collecting, serving

D = Decimal
DATA = Path(__file__).parents[3] / "tests" / "data"
FILES = {
    "ETHUSDT": "binance_ETH_USDT_20180716_131148.data.1m.binance.csv",
    "XRBBTC": "binance_XRB_BTC_20180716_131148.data.1m.binance.csv",
    "ICXBTC": "binance_ICX_BTC_20180716_131148.data.1m.binance.csv",
    "NEOBTC": "binance_NEO_BTC_20180716_131148.data.1m.binance.csv",
}
SYMBOLS = tuple(sorted(FILES))
FIVE_MS = 5 * MINUTE_MS
DAY_MS = 1440 * MINUTE_MS


END_MS = 1531739340000
"""2018-07-16 11:09 UTC: the last minute of a 5m bucket every series reaches."""


def klines(symbol: str, tag: str = "") -> list[BarEvent]:
    """The file's 1m bars up to `END_MS` as replayed bar events of `tag` + `symbol` (JetStream
    drops equal event ids for 120 s: each test tags its symbols; the quote asset stays)."""
    out = []
    for line in (DATA / FILES[symbol]).read_text().splitlines():
        ms, o, h, low, c, volume = line.split(",")[:6]
        if int(ms) > END_MS:
            break
        bar = make_bar(
            tag + symbol, "1m", int(ms), D(o), D(h), D(low), D(c), D(volume), D(c) * D(volume), 1, BarSource.REPLAY
        )
        out.append(BarEvent.of(bar, source="ingest", mode=Mode.REPLAY))
    return out


def signals_for(bars: list[BarEvent], seed: str) -> list[SignalEvent]:
    """A 5m signal for every 5m bucket with a bar, deciding on its last close: BUY with a plan
    (stop 1 % below, target 2 % above) 15 % of the time, SELL 10 %, else NEUTRAL (seeded)."""
    symbol = bars[0].data.symbol
    rng = random.Random(seed)  # the untagged symbol: every run draws the same signals
    last: dict[int, Decimal] = {}
    for b in bars:
        last[datetime_to_ms(b.data.open_time) // FIVE_MS * FIVE_MS] = b.data.close
    grid = D("1e-8")
    return [
        dense_signal(symbol, ms, close, rng.random(), buy=0.15, sell=0.1, grid=grid)
        for ms, close in sorted(last.items())
    ]


def _settings(nats_url: str, database_url: str, bars_batch: int, symbols: tuple[str, ...] = SYMBOLS) -> RiskSettings:
    return RiskSettings(
        nats_url=nats_url,
        database_url=database_url,
        heartbeat_interval_s=0.5,
        risk_deliver_policy="new",
        risk_bars_batch=bars_batch,
        symbols=symbols,
        risk_balances="USDT=10000,BTC=0.5,ETH=5",  # ETH funded, unused: its balance must stay untouched
        risk_max_open_positions=2,
        risk_max_exposure_pct=D("0.3"),
    )


def _balances(book: Book) -> str:
    rows = [
        [asset, *map(_num, (a.cash, a.realized_pnl, a.fees, a.frozen))] for asset, a in sorted(book.accounts.items())
    ]
    return orjson.dumps(rows).decode()


@pytest.mark.parametrize(("kind", "bars_batch"), [("in_order", 1000), ("shuffled-seed-15", 7)])
async def test_three_quote_assets_replay_byte_identical_within_the_limits(
    kind: str, bars_batch: int, nats_url: str, database_url: str, js_client: Client
) -> None:
    tag = f"R{secrets.token_hex(3).upper()}"
    symbols = tuple(tag + s for s in SYMBOLS)
    bars = sorted((b for s in SYMBOLS for b in klines(s, tag)), key=lambda e: (e.data.open_time, e.data.symbol))
    signals = [e for s in SYMBOLS for e in signals_for([b for b in bars if b.data.symbol == tag + s], s)]
    settings = _settings(nats_url, database_url, bars_batch, symbols)
    expected = reference(bars, signals, settings)
    events: list[Envelope] = [*bars, *signals] if kind == "in_order" else delivery(kind, bars, signals, symbols)
    service = build_service(settings)
    async with serving(service, js_client):
        await replay(service, js_client, events, bars, signals)
        got: dict[str, Any] = await service_dump(service, symbols)
        balances = await service.pool.fetch(
            "SELECT asset, cash, realized_pnl, fees, frozen FROM balances ORDER BY asset"
        )
        trades = await service.pool.fetch("SELECT * FROM trades")
        positions = await service.pool.fetch("SELECT * FROM positions")
        sampled = await service.pool.fetch("SELECT symbol, sample_times, sample_closes FROM symbol_state")
        transport = httpx.ASGITransport(app=service.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://risk") as client:
            account = (await client.get("/v1/account")).json()
            shown = (await client.get("/v1/trades", params={"limit": 1000})).json()
            exposition = (await client.get("/metrics")).text
    columns = ("cash", "realized_pnl", "fees", "frozen")
    got["balances"] = orjson.dumps([[r["asset"], *(_num(r[k]) for k in columns)] for r in balances]).decode()
    want = {**reference_dump(expected), "balances": _balances(expected)}
    assert got == want
    # the correlation samples the service persisted (appended batch by batch) are the pure book's
    assert {r["symbol"]: list(zip(r["sample_times"], r["sample_closes"], strict=True)) for r in sampled} == {
        symbol: kept for symbol, kept in expected.samples.items()
    }
    reasons = {orjson.loads(row)[3] for row in got["audit"]}
    quoted = {settings.limits().quote_of(t["symbol"]) for t in trades}
    assert {"exposure_limit", "max_open_positions"} <= reasons, reasons
    assert quoted == {"USDT", "BTC"}, quoted
    # every figure says its asset: the API's account and trades, and the trade events
    assert account["quote_asset"] == "USDT" and account["cash"] == account["balances"]["USDT"]["cash"]
    assert {a: (b["quote_asset"], b["cash"]) for a, b in account["balances"].items()} == {
        r["asset"]: (r["asset"], _num(r["cash"])) for r in balances
    }
    assert account["balances"]["ETH"]["cash"] == "5"  # funded, never traded: untouched
    assert 'tradebus_risk_balance_equity{asset="ETH"} 5.0' in exposition
    assert {(t["symbol"][len(tag) :], t["quote_asset"]) for t in shown} == {
        ("ETHUSDT", "USDT"),
        ("XRBBTC", "BTC"),
        ("ICXBTC", "BTC"),
    }
    events = [orjson.loads(e)[2] for e in got["events"] if orjson.loads(e)[0].startswith("trade:")]
    assert events and all(e["quote_asset"] == settings.limits().quote_of(e["symbol"]) for e in events)
    assert most_open_at_once(open_intervals(trades, positions)) <= 2
    assert breaches(trades, positions, settings.limits()) == []


async def test_live_bars_that_overtake_the_replay_expire_its_orders_instead_of_filling(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    """The replay decided a BUY at C, but its bars stop before C and the next bar of the symbol is
    a live one three days later: the order expires `stale` (audited, published), nothing fills."""
    settings = RiskSettings(
        nats_url=nats_url,
        database_url=database_url,
        heartbeat_interval_s=0.5,
        risk_deliver_policy="new",
        symbols=(symbol,),
        risk_watermark_hold_s=0.5,  # the replay's signals end: the live bar waits only this long
    )
    t0_ms = (datetime_to_ms(datetime.now(tz=UTC)) // DAY_MS - 4) * DAY_MS
    replayed = [bar(symbol, m, "100", "100.5", "99.5", "100", t0_ms=t0_ms) for m in range(5)]
    buy = signal(symbol, 0, SignalState.BUY, plan("100", "98", "106", "3"), t0_ms=t0_ms)
    live = bar(symbol, 3 * 1440, "150", "151", "149", "150", mode=Mode.LIVE, t0_ms=t0_ms)
    order_id = f"{buy.event_id}:entry"
    service = build_service(settings)
    async with serving(service, js_client), collecting(js_client, symbol) as seen:
        await _publish(service, [*replayed, buy, live])

        async def expired() -> bool:
            status = await service.pool.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id)
            return status == "expired" and any(kind == "rejected" for kind, _ in seen)

        await wait_for(expired, what="the overtaken order expired")
        audit = await service.pool.fetch("SELECT decision, reason FROM audit WHERE symbol = $1 ORDER BY id", symbol)
        fills = await service.pool.fetchval("SELECT count(*) FROM orders WHERE fill_price IS NOT NULL")
        positions = await service.pool.fetchval("SELECT count(*) FROM positions")
    assert [(r["decision"], r["reason"]) for r in audit] == [("accepted", "entry"), ("expired", "stale")]
    assert (fills, positions) == (0, 0)
    rejected = [event["data"] for kind, event in seen if kind == "rejected"]
    assert [(r["signal_id"], r["reason"]) for r in rejected] == [(buy.event_id, "stale")]


async def test_a_long_whose_feed_went_silent_is_closed_stale_feed_and_its_row_removed(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    """A fills a long, then its feeds stop; B's bars go on past RISK_STALE_FEED_H (3 minutes here):
    A's long is closed at its last close by B's bar, and the durable book agrees (A's row is gone,
    its position counter moved)."""
    a, b = symbol, f"{symbol[:-4]}XUSDT"
    settings = RiskSettings(
        nats_url=nats_url,
        database_url=database_url,
        heartbeat_interval_s=0.5,
        risk_deliver_policy="new",
        symbols=(a, b),
        risk_watermark_hold_s=0.5,  # A's streams end: B's items wait only this long
        risk_stale_feed_h=D("0.05"),
    )
    flat = ("100", "100.5", "99.5", "100")
    events: list[Envelope] = [signal(s, m, SignalState.NEUTRAL) for m in range(0, 30, 5) for s in (b,)]
    events += [signal(a, 0, SignalState.BUY, plan("100", "98", "106", "3"))]
    events += [bar(a, m, "101", "101", "101", "101") for m in range(8)]  # filled at 5, silent after 7
    events += [bar(b, m, *flat) for m in range(30)]
    service = build_service(settings)
    async with serving(service, js_client):
        await _publish(service, events)

        async def closed() -> bool:
            return bool(await service.pool.fetchval("SELECT count(*) FROM trades WHERE symbol = $1", a))

        await wait_for(closed, what="A's silent long closed")
        trade = await service.pool.fetchrow("SELECT * FROM trades WHERE symbol = $1", a)
        rows = await service.pool.fetchval("SELECT count(*) FROM positions WHERE symbol = $1", a)
        seq = await service.pool.fetchval("SELECT position_seq FROM symbol_state WHERE symbol = $1", a)
    assert (trade["exit_reason"], trade["exit_price"]) == ("stale_feed", D("100.9495"))  # 101 - 5 bps
    assert trade["exit_time"] == datetime(2024, 1, 2, 0, 11, tzinfo=UTC)  # more than 3 min after A's bar at 00:07
    assert (rows, seq) == (0, 2)  # the durable book closed it too (open, close)
