"""Quiet live bars (see `tradebus_risk.desk`): applied in memory without a transaction and acked
at once; every other bar, a restart and a new day behave as with a transaction per bar."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
from nats.aio.client import Client

from tradebus.events import Envelope, Mode, SignalState
from tradebus.service import CheckResult, Service
from tradebus.testing import wait_for
from tradebus.timeframes import MINUTE_MS, datetime_to_ms
from tradebus_risk.app import build_service
from tradebus_risk.book import Book
from tradebus_risk.limits import RiskLimits
from tradebus_risk.records import Account, Holding
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
)
from test_service import _bars_durable, _ids, _publish, _until_count, collecting, expected_events, serving

D = Decimal
DAY = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _live_events_of_2024(monkeypatch: pytest.MonkeyPatch) -> None:
    """These scenarios run live bars on a 2024 timeline: the live window of admission (tested in
    tradebus) is opened wide, so that what is tested here is what risk does with quiet bars."""
    monkeypatch.setenv("ADMISSION_LIVE_MAX_AGE_DAYS", "36500")


def _service(nats_url: str, database_url: str, hold_s: float = 60.0) -> Service:
    """Live signals of 2024 are not stale for this service; it waits for the symbols it sees."""
    settings = RiskSettings(
        nats_url=nats_url,
        database_url=database_url,
        heartbeat_interval_s=0.5,
        risk_deliver_policy="new",
        risk_stale_after_s=1e10,
        symbols=(),
        risk_watermark_hold_s=hold_s,
    )
    return build_service(settings)


def _live(events: list[Envelope]) -> list[Envelope]:
    return [e.model_copy(update={"mode": Mode.LIVE}) for e in events]


def _live_scenario(symbol: str) -> list[Envelope]:
    """The scripted scenario as a live feed: each signal just before the bar opening at its decision point."""
    signals = {datetime_to_ms(s.data.bar_time) + 5 * MINUTE_MS: s for s in _live(list(scenario_signals(symbol)))}
    out: list[Envelope] = []
    for b in _live(list(scenario_bars(symbol))):
        if (s := signals.get(b.data.open_ms)) is not None:  # type: ignore[attr-defined]
            out.append(s)
        out.append(b)
    return out


async def _start_live(service: Service, nc: Client, symbol: str, t0_ms: int = T0_MS) -> None:
    """What a live feed has sent before the scenario: the bar of minute -1 (it waits for a signal)
    and the NEUTRAL signal deciding at minute 0 (it lets both go)."""
    live = {"mode": Mode.LIVE, "t0_ms": t0_ms}
    await _feed(service, nc, [bar(symbol, -1, *"1111", **live)], held=1)  # type: ignore[arg-type]
    await _feed(service, nc, [signal(symbol, -5, SignalState.NEUTRAL, **live)])  # type: ignore[arg-type]


async def _feed(service: Service, nc: Client, events: list[Envelope], held: int = 0) -> None:
    """Publish one event at a time and wait until it is handled (a live feed, in order across streams)."""
    for event in events:
        await _publish(service, [event])
        if event.event_type == "bar.closed":
            await wait_for(partial(_acked, nc, held), timeout=15, what="bar acked")
        else:
            await wait_for(partial(_decided, service, event.event_id), timeout=15, what="signal decided")


async def _acked(nc: Client, held: int) -> bool:
    return await _bars_durable(nc) == (0, held)


async def _decided(service: Service, signal_id: str) -> bool:
    return bool(await service.pool.fetchval("SELECT 1 FROM audit WHERE signal_id = $1", signal_id))


async def _book_row(service: Service, symbol: str) -> tuple[object, ...]:
    pool = service.pool
    return (
        await pool.fetchval("SELECT version FROM account"),
        await pool.fetchval("SELECT bar_applied FROM symbol_state WHERE symbol = $1", symbol),
    )


def _minute(m: int) -> datetime:
    return DAY + timedelta(minutes=m)


async def test_quiet_live_bars_write_nothing_and_are_acked(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    live = {"mode": Mode.LIVE}
    service = _service(nats_url, database_url)
    async with serving(service, js_client):
        # bar 4 waits for the signal deciding at minute 5, which lets both go (the first bar after
        # the start rolls the day and checks the drawdown)
        await _feed(service, js_client, [bar(symbol, 4, *"1111", **live)], held=1)
        await _feed(service, js_client, [signal(symbol, 0, SignalState.NEUTRAL, **live)])
        first = await _book_row(service, symbol)
        await _feed(service, js_client, [bar(symbol, m, "100", "101", "99", "100", **live) for m in range(5, 9)])
        quiet = await _book_row(service, symbol)
        # bar 9 closes at minute 10, a correlation sample (exposure.py): written, to be durable
        await _feed(service, js_client, [bar(symbol, 9, "100", "101", "99", "100", **live)])
        sampled = await _book_row(service, symbol)
        # minute 10: the signal deciding there may still come, so it waits for it, unacked
        await _feed(service, js_client, [bar(symbol, 10, "100", "101", "99", "100", **live)], held=1)
        waiting = await _book_row(service, symbol)
        await _feed(service, js_client, [signal(symbol, 5, SignalState.NEUTRAL, **live)])
        loud = await _book_row(service, symbol)
        replay = [bar(symbol, m, "100", "101", "99", "100") for m in (11, 15)]
        await _feed(service, js_client, replay, held=1)  # replay bar 15 waits for the signal at C=15
        held = await _book_row(service, symbol)
    assert first[1] == _minute(4)
    assert quiet == first  # acked (the durable has nothing pending) without a write
    assert sampled[1] == _minute(9) and sampled[0] > quiet[0]
    assert waiting == sampled  # a bar that waits writes nothing
    assert loud[1] == _minute(10) and loud[0] > sampled[0]
    assert held[1] == _minute(11) and held[0] > loud[0]  # replay bars keep their transaction


async def test_live_orders_and_holdings_fill_and_exit_as_before(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    service = _service(nats_url, database_url)
    async with serving(service, js_client), collecting(js_client, symbol) as seen:
        await _start_live(service, js_client, symbol)
        await _feed(service, js_client, _live_scenario(symbol))
        await _until_count(seen, 17)
        cash = await service.pool.fetchval("SELECT cash FROM account")
    _assert_scenario_traded(symbol, seen, cash)


async def test_readiness_tells_the_committed_positions_at_every_step(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    """The trading check reads the desk's memory copy: it says what the database holds (compared
    only when nothing committed around the check), and answers with every pooled connection taken."""
    service = _service(nats_url, database_url)
    limit = RiskLimits().max_open_positions
    seen_open: set[int] = set()

    async def stored() -> int:
        return int(
            await service.pool.fetchval(
                "SELECT (SELECT count(*) FROM positions)"
                " + (SELECT count(*) FROM orders WHERE status = 'submitted' AND purpose = 'entry')"
            )
        )

    async with serving(service, js_client):
        await _start_live(service, js_client, symbol)
        for event in _live_scenario(symbol):
            await _feed(service, js_client, [event])
            before = await stored()
            _, checks = await service.readiness()
            if await stored() == before:
                assert checks["trading"].detail == f"{before} of {limit} positions open"
                seen_open.add(before)
        taken = [await service.pool.acquire() for _ in range(service.pool.get_max_size())]
        try:
            _, checks = await service.readiness()
        finally:
            for conn in taken:
                await service.pool.release(conn)
    assert {0, 1} <= seen_open
    assert not checks["database"].ok
    assert checks["trading"] == CheckResult(True, f"0 of {limit} positions open")


async def test_a_restart_after_quiet_bars_trades_as_an_uninterrupted_run(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    """A replay bar of another symbol, far ahead, waits unacked before everything (its symbol's
    signals, silent, are excused after the 1 s hold), so the restart rewinds the bars durable and
    the quiet bars already acked (bars 23-27) come again."""
    feed = _live_scenario(symbol)
    split = [i for i, e in enumerate(feed) if e.event_type == "bar.closed"][28]  # before the bar of minute 28
    async with collecting(js_client, symbol) as seen:
        first = _service(nats_url, database_url, hold_s=1.0)
        async with serving(first, js_client):
            await _feed(first, js_client, [bar(f"{symbol[:-4]}XUSDT", 10**5, *"1111")], held=1)
            await _start_live(first, js_client, symbol)
            await _feed(first, js_client, feed[:split], held=1)
            before = await _book_row(first, symbol)
        second = _service(nats_url, database_url, hold_s=1.0)
        async with serving(second, js_client):
            await _feed(second, js_client, feed[split:], held=1)
            await _until_count(seen, 17)
            cash = await second.pool.fetchval("SELECT cash FROM account")
    assert before[1] == _minute(24)  # the last decided signal (C=25) saved the quiet bars 23 and 24, not 25-27
    _assert_scenario_traded(symbol, seen, cash)


async def test_a_new_day_is_rolled_durably_after_quiet_bars(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    """(The day rule of the book itself is tested with the book, below.)"""
    live = {"mode": Mode.LIVE}
    t0 = T0_MS + (24 * 60 - 10) * MINUTE_MS  # 23:50
    service = _service(nats_url, database_url)
    async with serving(service, js_client):
        await _start_live(service, js_client, symbol, t0)
        await _feed(service, js_client, [bar(symbol, m, *"1111", t0_ms=t0, **live) for m in range(5)])
        first = [signal(symbol, 0, SignalState.NEUTRAL, t0_ms=t0, **live), bar(symbol, 5, *"1111", t0_ms=t0, **live)]
        await _feed(service, js_client, first)
        await _feed(service, js_client, [bar(symbol, m, *"1111", t0_ms=t0, **live) for m in range(6, 10)])
        quiet_day = await service.pool.fetchval("SELECT day FROM account")
        last = [signal(symbol, 5, SignalState.NEUTRAL, t0_ms=t0, **live), bar(symbol, 10, *"1111", t0_ms=t0, **live)]
        await _feed(service, js_client, last)  # 00:00 of the next day
        day, applied = await service.pool.fetchrow(
            "SELECT day, bar_applied FROM account, symbol_state WHERE symbol = $1", symbol
        )
    assert quiet_day == date(2024, 1, 2)
    # the signal deciding at 00:00 rolled the day, durably; the 00:00 bar after it is quiet
    assert day == date(2024, 1, 3) and applied == datetime(2024, 1, 2, 23, 59, tzinfo=UTC)


def _assert_scenario_traded(symbol: str, seen: list[tuple[str, dict]], cash: Decimal) -> None:
    assert _ids(seen) == expected_events(symbol)
    assert {body["mode"] for _, body in seen} == {"live"}
    trades = [body["data"] for kind, body in seen if kind == "trade"]
    assert [(t["exit_reason"], D(t["entry_price"]), D(t["exit_price"])) for t in trades] == [
        ("signal", FIRST_ENTRY, FIRST_EXIT),
        ("stop", SECOND_ENTRY, SECOND_EXIT),
    ]
    assert cash == D(10000) + net(FIRST_QTY, FIRST_ENTRY, FIRST_EXIT) + net(SECOND_QTY, SECOND_ENTRY, SECOND_EXIT)


# ----------------------------------------------------------------- the book's rule
def _watched_book() -> Book:
    """A book after one bar of another symbol: its day is set and its drawdown checked."""
    limits = RiskLimits()
    account = Account(limits.initial_balance, limits.initial_balance, peak_equity=D(10000), day_start_equity=D(10000))
    book = Book({"USDT": account}, {}, {}, {}, {}, limits)
    book.apply_bar(bar("OTHERUSDT", 0, *"1111"))
    return book


def test_a_bar_is_quiet_only_when_applying_it_changes_nothing_but_its_mark() -> None:
    book = _watched_book()
    fresh = Book(
        {"USDT": Account(D(1), D(1), peak_equity=D(1), day_start_equity=D(1), day=DAY.date())},
        {},
        {},
        {},
        {},
        book.limits,
    )
    assert book.quiet_bar("XUSDT", _minute(1)) and book.quiet_bar("XUSDT", _minute(24 * 60 - 2))
    assert not book.quiet_bar("XUSDT", _minute(24 * 60 - 1))  # its close is a correlation sample
    assert not book.quiet_bar("XUSDT", _minute(24 * 60))  # rolls the day
    assert not fresh.quiet_bar("XUSDT", _minute(1))  # drawdown not checked yet
    book.bar_applied["XUSDT"] = _minute(5)
    assert not book.quiet_bar("XUSDT", _minute(5)) and book.quiet_bar("XUSDT", _minute(6))
    book.decide(signal("XUSDT", 0, SignalState.BUY, plan("100", "98", "106", "3")), wall_clock=_minute(5))
    assert not book.quiet_bar("XUSDT", _minute(6))  # its entry waits for this bar
    assert book.quiet_bar("YUSDT", _minute(6))
    book.pending.clear()
    book.holdings["XUSDT"] = Holding("XUSDT", "p", D(1), D(1), D(0), D(1), [], D(1), _minute(5), "m", "t", Mode.REPLAY)
    assert not book.quiet_bar("XUSDT", _minute(6))  # marks, stop and target
