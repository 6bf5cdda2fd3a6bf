"""One account, several symbols: decisions and fills in ONE global event-time order, whatever the
delivery (real NATS and PostgreSQL). Each delivery's canonical dump of decisions, orders, fills,
trades, published events and account must equal the pure book applying the same events in the
global order; the limits shared by the symbols are checked in event time."""

from __future__ import annotations

import asyncio
import os
import random
import signal as signal_module
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from nats.aio.client import Client

from tradebus import db, subjects
from tradebus.bus import Publisher
from tradebus.embedded import free_port
from tradebus.events import BarEvent, Envelope, SignalEvent, SignalState
from tradebus.service import CheckResult, Service
from tradebus.testing import durables_exist, wait_for
from tradebus.timeframes import MINUTE_MS, datetime_to_ms
from tradebus_risk.app import build_service
from tradebus_risk.bench import replay_events
from tradebus_risk.book import Book
from tradebus_risk.precision import MoneyPolicy
from tradebus_risk.rules import decision_time
from tradebus_risk.settings import RiskSettings

sys.path.insert(0, str(Path(__file__).parent))
from account_checker import breaches
from risk_scenario import bar, net, plan, signal
from test_service import DURABLES, _publish, serving

D = Decimal
T0 = datetime(2024, 1, 2, 23, 0, tzinfo=UTC)  # one hour before a new day
T0_MS = datetime_to_ms(T0)
MINUTES = 100
LIMITS = {"risk_max_open_positions": 1, "risk_max_daily_loss_pct": D("0.004")}  # 40 of 10,000


def _settings(nats_url: str, database_url: str, symbols: Sequence[str], bars_batch: int, **extra: Any) -> RiskSettings:
    return RiskSettings(
        nats_url=nats_url,
        database_url=database_url,
        heartbeat_interval_s=0.5,
        risk_deliver_policy="new",
        risk_bars_batch=bars_batch,
        symbols=tuple(symbols),
        **{**LIMITS, **extra},
    )


# ----------------------------------------------------------------- the scripted pair
def _pair(symbol: str) -> tuple[str, str]:
    base = symbol.removesuffix("USDT")
    return f"{base}AUSDT", f"{base}BUSDT"  # A sorts before B


def scripted(a: str, b: str) -> tuple[list[BarEvent], list[SignalEvent]]:
    """Minute 0 is 23:00. A: BUY at C=5 (20 units at 100.05), stopped at minute 20 (97.951): a loss
    of 45.94, past the daily limit (40). B: BUY at C=10 while A is open (max positions 1), SELL at
    C=20, BUY at C=30 after A's loss (daily limit), SELL at C=40, BUY at C=75 (00:15, a new day:
    sized on the equity after A's loss), each other 5m signal NEUTRAL."""
    flat = ("100", "100.5", "99.5", "100")
    bars = [bar(s, m, *flat, t0_ms=T0_MS) for m in range(MINUTES) for s in (a, b) if (s, m) != (a, 20)]
    bars.append(bar(a, 20, "99", "99.5", "97.5", "98", t0_ms=T0_MS))
    bars.sort(key=lambda e: (e.data.open_time, e.data.symbol))
    scripts = {
        (a, 0): (SignalState.BUY, plan("100", "98", "106", "3")),
        (b, 5): (SignalState.BUY, plan("100", "98", "106", "3")),
        (b, 15): (SignalState.SELL, None),
        (b, 25): (SignalState.BUY, plan("100", "98", "106", "3")),
        (b, 35): (SignalState.SELL, None),
        (b, 70): (SignalState.BUY, plan("100", "99", "103", "3")),
    }
    signals = []
    for m in range(0, MINUTES, 5):
        for s in (a, b):
            state, trade_plan = scripts.get((s, m), (SignalState.NEUTRAL, None))
            signals.append(signal(s, m, state, trade_plan, t0_ms=T0_MS))
    return bars, signals


def _split(events: Sequence[Envelope], symbol: str) -> list[Envelope]:
    return [e for e in events if e.data.symbol == symbol]  # type: ignore[attr-defined]


def delivery(kind: str, bars: list[BarEvent], signals: list[SignalEvent], symbols: Sequence[str]) -> list[Envelope]:
    """The same per-stream orders, delivered differently: one symbol after the other, or both
    streams shuffled together (each stream still in its order)."""
    if kind == "a_first":
        return [*(e for s in symbols for e in [*_split(bars, s), *_split(signals, s)])]
    if kind == "b_first":
        return [*(e for s in reversed(symbols) for e in [*_split(signals, s), *_split(bars, s)])]
    rng = random.Random(kind)
    streams: list[list[Envelope]] = [list(bars), list(signals)]
    out: list[Envelope] = []
    while any(streams):
        source = rng.choice([s for s in streams if s])
        n = rng.randint(1, 40)
        out += source[:n]
        del source[:n]
    return out


# ----------------------------------------------------------------- what must come out
def reference(bars: list[BarEvent], signals: list[SignalEvent], settings: RiskSettings) -> Book:
    """The pure book over every event in the global order (signal at C before the bars opening
    at C, then by symbol): what any delivery must produce."""
    limits = settings.limits()
    book = Book.fresh(limits)

    @dataclass
    class _Keyed:
        event_id: str
        kind: str
        symbol: str
        at: datetime
        event: Envelope

    keyed = [_Keyed(s.event_id, "signal", s.data.symbol, decision_time(s.data), s) for s in signals]
    keyed += [_Keyed(b.event_id, "bar", b.data.symbol, b.data.open_time, b) for b in bars]
    rank = {"signal": 0, "bar": 1}
    for item in sorted(keyed, key=lambda k: (k.at, rank[k.kind], k.symbol, k.event_id)):
        if isinstance(item.event, SignalEvent):
            book.decide(item.event, datetime.now(tz=UTC))
        else:
            assert isinstance(item.event, BarEvent)
            book.apply_bar(item.event)
    return book


def _num(value: object) -> str:
    """One text per number, however PostgreSQL or Decimal arithmetic writes it (10000 = 1E+4)."""
    return format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)


def _trade_numbers(trade: Any) -> list[Decimal]:
    names = ("quantity", "entry_price", "exit_price", "gross_pnl", "fees", "net_pnl")
    return [trade[n] if isinstance(trade, asyncpg.Record) else getattr(trade, n) for n in names]


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


def reference_dump(book: Book) -> dict[str, Any]:
    changes = book.changes
    audits = [
        (e.signal_id, e.symbol, e.decision, str(e.reason), e.detail, e.event_time.isoformat(), e.mode.value)
        for e in changes.audits
    ]
    a = book.account
    trades = [t.data for t in changes.trades]
    return {
        "trades": sorted(
            _json(
                [t.trade_id, t.symbol, *map(_num, _trade_numbers(t)), t.entry_time.isoformat(), t.exit_time.isoformat()]
            )
            + t.exit_reason
            for t in trades
        ),
        "audit": sorted(_json(row) for row in audits),
        "orders": sorted(
            _json([o.order_id, o.status, _num(o.quantity), _num(o.fill_price), _num(o.fee)])
            for o in changes.orders.values()
        ),
        "events": sorted(
            _json([e.event_id, subject, e.model_dump(mode="json")["data"]]) for subject, e in changes.events
        ),
        "account": _json([_num(v) for v in (a.cash, a.realized_pnl, a.fees, a.peak_equity, a.frozen, a.day)]),
    }


async def service_dump(service: Service, symbols: Sequence[str]) -> dict[str, Any]:
    return await _dump_pool(service.pool, symbols)


async def _dump_pool(pool: asyncpg.Pool, symbols: Sequence[str]) -> dict[str, Any]:
    audit = await pool.fetch(
        "SELECT signal_id, symbol, decision, reason, detail, event_time, mode FROM audit WHERE symbol = ANY($1)",
        list(symbols),
    )
    orders = await pool.fetch("SELECT order_id, status, quantity, fill_price, fee FROM orders")
    outbox = await pool.fetch("SELECT event_id, subject, payload FROM outbox")
    a = await pool.fetchrow("SELECT cash, realized_pnl, fees, peak_equity, frozen, day FROM account")
    assert a is not None
    trades = await pool.fetch("SELECT * FROM trades WHERE symbol = ANY($1)", list(symbols))
    return {
        "trades": sorted(
            _json(
                [
                    r["trade_id"],
                    r["symbol"],
                    *map(_num, _trade_numbers(r)),
                    r["entry_time"].isoformat(),
                    r["exit_time"].isoformat(),
                ]
            )
            + r["exit_reason"]
            for r in trades
        ),
        "audit": sorted(
            _json(
                [
                    r["signal_id"],
                    r["symbol"],
                    r["decision"],
                    r["reason"],
                    r["detail"],
                    r["event_time"].isoformat(),
                    r["mode"],
                ]
            )
            for r in audit
        ),
        "orders": sorted(
            _json([r["order_id"], r["status"], _num(r["quantity"]), _num(r["fill_price"]), _num(r["fee"])])
            for r in orders
        ),
        "events": sorted(_json([r["event_id"], r["subject"], orjson.loads(r["payload"])["data"]]) for r in outbox),
        "account": _json(
            [_num(v) for v in (a["cash"], a["realized_pnl"], a["fees"], a["peak_equity"], a["frozen"], a["day"])]
        ),
    }


async def _settled(service: Service, signals: int, last_bars: dict[str, datetime]) -> bool:
    pool = service.pool
    decided = await pool.fetchval("SELECT count(*) FROM audit WHERE symbol = ANY($1)", list(last_bars))
    applied = dict(
        await pool.fetch("SELECT symbol, bar_applied FROM symbol_state WHERE symbol = ANY($1)", list(last_bars))
    )
    return decided == signals and applied == last_bars and service.held("bars-1m").held == 0


async def replay(
    service: Service, nc: Client, events: list[Envelope], bars: list[BarEvent], signals: list[SignalEvent]
) -> None:
    """Publish `events` in that order into `service` and wait until it decided and applied them all."""
    last_bars: dict[str, datetime] = {}
    for b in bars:
        last_bars[b.data.symbol] = max(b.data.open_time, last_bars.get(b.data.symbol, b.data.open_time))
    for start in range(0, len(events), 500):
        await _publish(service, events[start : start + 500])
    await wait_for(lambda: _settled(service, len(signals), last_bars), timeout=120, what="replay applied")


def open_intervals(trades: Sequence[Any], positions: Sequence[Any]) -> list[tuple[datetime, datetime, str]]:
    """[entry, exit) of every position held, closed or still open."""
    end = datetime.max.replace(tzinfo=UTC)
    return [(t["entry_time"], t["exit_time"], t["symbol"]) for t in trades] + [
        (p["opened_at"], end, p["symbol"]) for p in positions
    ]


def most_open_at_once(intervals: Sequence[tuple[datetime, datetime, str]]) -> int:
    """Walk the opens and closes in event time (a close at t before an open at t)."""
    points = sorted([(start, 1) for start, _, _ in intervals] + [(stop, -1) for _, stop, _ in intervals])
    most = current = 0
    for _, step in sorted(points, key=lambda p: (p[0], p[1])):
        current += step
        most = max(most, current)
    return most


# ----------------------------------------------------------------- the tests
@pytest.mark.parametrize(("kind", "bars_batch"), [("a_first", 1000), ("b_first", 1000), ("shuffled", 7)])
async def test_a_scripted_pair_trades_in_global_event_order_however_delivered(
    kind: str, bars_batch: int, nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    a, b = _pair(symbol)
    bars, signals = scripted(a, b)
    settings = _settings(nats_url, database_url, (a, b), bars_batch)
    expected = reference(bars, signals, settings)
    service = build_service(settings)
    async with serving(service, js_client):
        await replay(service, js_client, delivery(kind, bars, signals, (a, b)), bars, signals)
        got = await service_dump(service, (a, b))
        verdicts = {
            r["signal_id"]: (r["decision"], r["reason"])
            for r in await service.pool.fetch("SELECT signal_id, decision, reason FROM audit")
        }
        entry = await service.pool.fetchrow("SELECT quantity FROM orders WHERE order_id = $1", f"{_sid(b, 70)}:entry")
        trades = await service.pool.fetch("SELECT * FROM trades")
        positions = await service.pool.fetch("SELECT * FROM positions")
    # the limits the two symbols share, in event time (all checked, so a failure lists every defect)
    equity = D(10000) + net(D("19.99"), D("100.05"), D("97.951"))  # at 00:15: after A's loss, nothing open
    sized = entry["quantity"] if entry is not None else None
    checks = {
        "B entry while A open (23:05-23:20) refused": verdicts[_sid(b, 5)] == ("rejected", "max_open_positions"),
        "B entry after A's loss that day refused": verdicts[_sid(b, 25)] == ("rejected", "daily_loss_limit"),
        "B entry at 00:15 (new day) accepted": verdicts[_sid(b, 70)] == ("accepted", "entry"),
        "B entry at 00:15 sized on the equity then": sized == MoneyPolicy().quantity(equity * D("0.2") / D("100.05")),
        "never more than 1 position open in event time": most_open_at_once(open_intervals(trades, positions)) <= 1,
        "no limit breached walking the trades in event time": breaches(trades, positions, settings.limits()) == [],
        "the pure book's global order, byte for byte": got == reference_dump(expected),
    }
    failed = [name for name, ok in checks.items() if not ok]
    assert not failed, "; ".join(failed)


def _sid(symbol: str, minute: int) -> str:
    return f"signal:{symbol}:5m:{T0_MS + minute * MINUTE_MS}"


def _time_ordered(bars: list[BarEvent]) -> list[BarEvent]:
    return sorted(bars, key=lambda e: (e.data.open_time, e.data.symbol))


@pytest.mark.parametrize(("kind", "bars_batch"), [("signals_first", 1000), ("shuffled-seed-3", 13)])
async def test_a_seeded_replay_of_two_symbols_is_the_same_for_every_delivery(
    kind: str, bars_batch: int, nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    """A day of two seeded random walks with dense signals (the bench's), delivered whole or
    shuffled in small chunks with a small bars batch: the same dump as the pure global order."""
    a, b = _pair(symbol)
    bars, signals = replay_events(1, [a, b], seed=5)
    bars = _time_ordered(bars)
    settings = _settings(nats_url, database_url, (a, b), bars_batch, risk_max_daily_loss_pct=D("0.01"))
    expected = reference(bars, signals, settings)
    events: list[Envelope] = [*signals, *bars] if kind == "signals_first" else delivery(kind, bars, signals, (a, b))
    service = build_service(settings)
    async with serving(service, js_client):
        await replay(service, js_client, events, bars, signals)
        got = await service_dump(service, (a, b))
        trades = await service.pool.fetch("SELECT * FROM trades")
        positions = await service.pool.fetch("SELECT * FROM positions")
    reasons = {row.split(",")[3] for row in got["audit"]}
    assert len(trades) >= 5 and '"max_open_positions"' in reasons  # the shared limit was exercised
    assert most_open_at_once(open_intervals(trades, positions)) <= 1
    assert breaches(trades, positions, settings.limits()) == []
    assert got == reference_dump(expected)


async def test_a_silent_symbol_holds_the_order_only_for_the_hold_and_readiness_names_it(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    """B is configured but its feed says nothing: A waits RISK_WATERMARK_HOLD_S, readiness naming
    B meanwhile; then A trades alone and B, excused, is named so. B's feed, back behind A's
    trades, is late: applied on arrival, its entries refused."""
    a, b = _pair(symbol)
    bars, signals = scripted(a, b)
    hold = 4.0
    settings = _settings(nats_url, database_url, (a, b), 1000, risk_watermark_hold_s=hold)
    service = build_service(settings)
    loop = asyncio.get_running_loop()

    async def check() -> CheckResult:
        _, checks = await service.readiness()
        return checks["event_order"]

    async def decided(symbol: str) -> int:
        return int(await service.pool.fetchval("SELECT count(*) FROM audit WHERE symbol = $1", symbol))

    async with serving(service, js_client):
        assert (await check()).ok
        await _publish(service, [*_split(signals, a), *_split(bars, a)])
        published = loop.time()

        async def holding_named() -> bool:
            return not (await check()).ok

        await wait_for(holding_named, timeout=hold, what="readiness naming the silent symbol")
        while_held = await check()
        nothing_yet = await decided(a)

        async def a_decided() -> bool:
            return await decided(a) == len(_split(signals, a))

        await wait_for(a_decided, timeout=hold + 10, what="A decided after the hold")
        held_for = loop.time() - published
        excused = await check()
        await _publish(service, [*_split(signals, b), *_split(bars, b)])  # B is back, late

        async def b_decided() -> bool:
            return await decided(b) == len(_split(signals, b))

        await wait_for(b_decided, what="B decided, late")
        late_entry = await service.pool.fetchrow("SELECT decision, reason FROM audit WHERE signal_id = $1", _sid(b, 70))
        back = await check()
    assert nothing_yet == 0
    assert "waiting" in while_held.detail and f"for {b} " in while_held.detail and a not in while_held.detail
    assert hold <= held_for < hold + 10  # A waited for the hold, not forever
    assert not excused.ok and f"{b} bars excused" in excused.detail and f"{b} signals excused" in excused.detail
    assert late_entry is not None and tuple(late_entry) == ("rejected", "stale_data")
    assert back.ok, back.detail  # B spoke on both streams: in step again


async def test_a_kill_9_mid_replay_trades_as_an_uninterrupted_run(
    nats_url: str, database_url: str, js_client: Client, symbol: str, tmp_path: Path
) -> None:
    """The risk process, killed with SIGKILL while it holds bars unacked for the global order,
    then started again: the same dump as the pure book in the global order."""
    a, b = _pair(symbol)
    bars, signals = scripted(a, b)
    settings = _settings(nats_url, database_url, (a, b), 7)
    expected = reference(bars, signals, settings)
    events = delivery("shuffled", bars, signals, (a, b))

    def before_kill(e: Envelope) -> bool:
        """Signals up to C=40, A's bars to minute 50, B's to 30: A's trade (23:05-23:20) is
        booked, and A's bars from 32 on wait, unacked, for B's."""
        if isinstance(e, SignalEvent):
            return e.data.bar_time < T0 + timedelta(minutes=40)
        assert isinstance(e, BarEvent)
        return e.data.open_time <= T0 + timedelta(minutes=50 if e.data.symbol == a else 30)

    first, rest = [e for e in events if before_kill(e)], [e for e in events if not before_kill(e)]
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "SYMBOLS": f"{a},{b}",
        "RISK_DELIVER_POLICY": "new",
        "RISK_BARS_BATCH": "7",
        "RISK_MAX_OPEN_POSITIONS": "1",
        "RISK_MAX_DAILY_LOSS_PCT": "0.004",
        "TRADEBUS_RISK_PORT": str(free_port()),
        "LOG_LEVEL": "WARNING",
    }
    publisher = Publisher(js_client, "test")
    js = js_client.jetstream()

    def start() -> subprocess.Popen[bytes]:
        log = (tmp_path / "risk.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "tradebus_risk"], env=env, stdout=log, stderr=log)

    async def publish(chunk: Sequence[Envelope]) -> None:
        def subject(e: Envelope) -> str:
            data = e.data  # type: ignore[attr-defined]
            return subjects.bars("1m", data.symbol) if e.event_type == "bar.closed" else subjects.signals(data.symbol)

        await publisher.publish_many((subject(e), e) for e in chunk)

    pool = await db.create_pool(database_url, schema="risk", max_size=2)
    proc = start()
    try:
        await wait_for(durables_exist(js, DURABLES), timeout=60, what="risk durables created")
        await publish(first)

        async def some_applied_some_held() -> bool:
            info = await js.consumer_info("BARS", "risk-bars-1m")
            trades = await pool.fetchval("SELECT count(*) FROM trades") if await _has_schema(pool) else 0
            return bool(trades) and info.num_ack_pending == 19  # A's bars 32-50 (31 sorts before B's 31)

        try:
            await wait_for(some_applied_some_held, timeout=60, what="a trade booked while bars are held")
        except AssertionError:
            print((tmp_path / "risk.log").read_text()[-3000:])
            raise
        proc.send_signal(signal_module.SIGKILL)
        proc.wait(30)
        proc = start()
        await publish(rest)
        last = {s: max(e.data.open_time for e in bars if e.data.symbol == s) for s in (a, b)}

        async def settled() -> bool:
            decided = await pool.fetchval("SELECT count(*) FROM audit WHERE symbol = ANY($1)", [a, b])
            applied = dict(
                await pool.fetch("SELECT symbol, bar_applied FROM symbol_state WHERE symbol = ANY($1)", [a, b])
            )
            unsent = await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            return decided == len(signals) and applied == last and unsent == 0

        await wait_for(settled, timeout=60, what="the replay applied after the restart")
        info = await js.consumer_info("BARS", "risk-bars-1m")
        got = await _dump_pool(pool, (a, b))
    finally:
        proc.terminate()
        proc.wait(30)
        await pool.close()
    assert info.num_ack_pending == 0  # every held bar acked once applied
    want = reference_dump(expected)
    for part in want:
        assert got[part] == want[part], (part, set(got[part]) ^ set(want[part]))


async def _has_schema(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT to_regclass('trades') IS NOT NULL"))
