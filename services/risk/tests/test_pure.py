"""The pure modules: sizing, each rule, fill prices, stop-first, and exact Decimal P&L."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tradebus.events import FillEvent, Mode, PositionEvent, RejectionEvent, Side, SignalState, TradeEvent, TradePlan
from tradebus_risk.book import Book
from tradebus_risk.limits import RiskLimits
from tradebus_risk.paper import exit_trigger
from tradebus_risk.precision import MoneyPolicy, plain
from tradebus_risk.records import Account
from tradebus_risk.rules import Reason, Snapshot, evaluate
from tradebus_risk.sizing import size_entry

sys.path.insert(0, str(Path(__file__).parent))
from risk_scenario import (
    FIRST_ENTRY,
    FIRST_EXIT,
    FIRST_QTY,
    SECOND_ENTRY,
    SECOND_EXIT,
    SECOND_QTY,
    bar,
    net,
    plan,
    scenario_bars,
    scenario_signals,
    signal,
)

D = Decimal
LIMITS = RiskLimits()
NOW = datetime(2024, 1, 2, 1, tzinfo=UTC)


def _snapshot(**changes: object) -> Snapshot:
    base = Snapshot(
        equity=D(10000),
        cash=D(10000),
        peak_equity=D(10000),
        frozen=False,
        day_start_equity=D(10000),
        day_realized=D(0),
        open_positions=0,
        has_position=False,
        has_pending_order=False,
    )
    return replace(base, **changes)


def _book(limits: RiskLimits = LIMITS) -> Book:
    initial = limits.initial_balance
    account = Account(initial, initial, peak_equity=initial, day_start_equity=initial)
    return Book({"USDT": account}, {}, {}, {}, {}, limits)


# ----------------------------------------------------------------- sizing
def test_size_from_stop_distance() -> None:
    size = size_entry(equity=D(10000), cash=D(10000), entry=D(100), stop=D(95), limits=LIMITS)
    assert size.quantity == D(20) and size.reason is None  # 100 at risk / 5 per unit


def test_size_shrinks_to_position_cap_and_quantises_down() -> None:
    size = size_entry(equity=D(10000), cash=D(10000), entry=D(300), stop=D(299), limits=LIMITS)
    assert size.quantity == D("6.66666")  # 2000 / 300 = 6.666..., capped and rounded down
    assert "shrunk" in size.detail


def test_size_capped_by_cash_then_insufficient_balance() -> None:
    capped = size_entry(equity=D(10000), cash=D(1000), entry=D(100), stop=D(95), limits=LIMITS)
    assert capped.quantity == LIMITS.money.quantity(D(1000) / (D("100.05") * D("1.001")))
    broke = size_entry(equity=D(10000), cash=D(5), entry=D(100), stop=D(95), limits=LIMITS)
    assert (broke.quantity, broke.reason) == (D(0), "insufficient_balance")


def test_size_below_minimum_notional_is_position_size() -> None:
    tiny = size_entry(equity=D(40), cash=D(40), entry=D(100), stop=D(95), limits=LIMITS)
    assert tiny.reason == "position_size"


# ----------------------------------------------------------------- rules
BUY = signal("BTCUSDT", 0, SignalState.BUY, plan("100", "98", "106", "3")).data


@pytest.mark.parametrize(
    ("snapshot", "reason"),
    [
        (_snapshot(frozen=True), Reason.DRAWDOWN_FREEZE),
        (_snapshot(day_realized=D(-500)), Reason.DAILY_LOSS_LIMIT),
        (_snapshot(open_positions=5), Reason.MAX_OPEN_POSITIONS),
        (_snapshot(cash=D(1)), Reason.INSUFFICIENT_BALANCE),
    ],
)
def test_entry_rejections(snapshot: Snapshot, reason: Reason) -> None:
    verdict = evaluate(BUY, snapshot, LIMITS, wall_clock=None)
    assert (verdict.decision, verdict.reason) == ("rejected", reason)


def test_daily_loss_just_under_the_limit_still_trades() -> None:
    verdict = evaluate(BUY, _snapshot(day_realized=D("-499.99")), LIMITS, wall_clock=None)
    assert verdict.decision == "accepted"


def test_plan_rules() -> None:
    no_plan = signal("BTCUSDT", 0, SignalState.BUY).data
    incoherent = TradePlan.model_construct(
        entry=Decimal(100), stop=Decimal(101), targets=[Decimal(106)], risk_reward=Decimal(3)
    )
    inverted = no_plan.model_copy(update={"plan": incoherent})  # built unvalidated: the rule still holds
    low_rr = signal("BTCUSDT", 0, SignalState.STRONG_BUY, plan("100", "98", "102", "1.49")).data
    assert evaluate(no_plan, _snapshot(), LIMITS, wall_clock=None).reason is Reason.NO_PLAN
    assert evaluate(inverted, _snapshot(), LIMITS, wall_clock=None).reason is Reason.NO_PLAN
    assert evaluate(low_rr, _snapshot(), LIMITS, wall_clock=None).reason is Reason.RISK_REWARD_TOO_LOW


def test_sell_neutral_and_holds() -> None:
    sell = signal("BTCUSDT", 0, SignalState.STRONG_SELL).data
    neutral = signal("BTCUSDT", 0, SignalState.NEUTRAL).data
    assert evaluate(sell, _snapshot(), LIMITS, wall_clock=None).reason is Reason.NO_POSITION
    assert evaluate(sell, _snapshot(has_position=True), LIMITS, wall_clock=None).reason is Reason.EXIT
    assert evaluate(neutral, _snapshot(), LIMITS, wall_clock=None).decision == "hold"
    assert evaluate(BUY, _snapshot(has_position=True), LIMITS, wall_clock=None).reason is Reason.POSITION_OPEN
    assert evaluate(BUY, _snapshot(has_pending_order=True), LIMITS, wall_clock=None).reason is Reason.ORDER_PENDING


def test_stale_only_against_a_given_wall_clock() -> None:
    decided_at = BUY.bar_time + timedelta(minutes=5)
    stale = evaluate(BUY, _snapshot(), LIMITS, wall_clock=decided_at + timedelta(seconds=601))
    fresh = evaluate(BUY, _snapshot(), LIMITS, wall_clock=decided_at + timedelta(seconds=599))
    assert stale.reason is Reason.STALE_DATA and fresh.decision == "accepted"


# ----------------------------------------------------------------- paper prices
def test_slippage_is_adverse_and_fee_is_on_notional() -> None:
    money = MoneyPolicy()
    assert money.fill_price(D(100), Side.BUY, D(5)) == D("100.05")
    assert money.fill_price(D(100), Side.SELL, D(5)) == D("99.95")
    assert money.fee(money.notional(D(2), D("100.05"), Side.BUY), D("0.001")) == D("0.2001")


def test_money_policy_rounds_against_the_trader() -> None:
    money = MoneyPolicy(price_decimals=2, quote_decimals=2, qty_step=D("0.001"))
    assert money.fill_price(D("100.01"), Side.BUY, D(5)) == D("100.07")  # 100.0600 05 up
    assert money.fill_price(D("100.01"), Side.SELL, D(5)) == D("99.95")  # 99.959995 down
    assert money.notional(D("0.333"), D("0.07"), Side.BUY) == D("0.03")  # 0.02331 up
    assert money.notional(D("0.333"), D("0.07"), Side.SELL) == D("0.02")  # down
    assert money.fee(D("10.00"), D("0.0001")) == D("0.01")  # 0.001 up: the exchange's favour
    assert money.quantity(D("1.23456")) == D("1.234")
    btc_quoted = MoneyPolicy()  # ADABTC: 8 decimals keep a satoshi
    assert btc_quoted.fill_price(D("0.00000812"), Side.BUY, D(5)) == D("0.00000813")


def test_stop_first_when_both_touched_and_gaps_fill_at_the_open() -> None:
    both = bar("BTCUSDT", 0, "100", "110", "90", "100").data
    assert exit_trigger(both, D(95), D(105)) == exit_trigger(both, D(95), None)
    assert exit_trigger(both, D(95), D(105)).reason == "stop"  # type: ignore[union-attr]
    gap_down = bar("BTCUSDT", 0, "94", "96", "93", "95").data
    assert exit_trigger(gap_down, D(95), D(105)).price == D(94)  # type: ignore[union-attr]
    up = bar("BTCUSDT", 0, "100", "106", "99", "105").data
    assert exit_trigger(up, D(95), D(105)).reason == "target"  # type: ignore[union-attr]
    assert exit_trigger(bar("BTCUSDT", 0, "100", "101", "99", "100").data, D(95), D(105)) is None


# ----------------------------------------------------------------- the book
def test_scripted_replay_on_the_book_is_exact() -> None:
    book = _book()
    signals = {s.data.bar_time + timedelta(minutes=5): s for s in scenario_signals("BTCUSDT")}
    for b in scenario_bars("BTCUSDT"):
        if (s := signals.get(b.data.open_time)) is not None:
            book.decide(s, NOW)
        book.apply_bar(b)
    trades = [e.data for _, e in book.changes.events if isinstance(e, TradeEvent)]
    assert [(t.exit_reason, t.entry_price, t.exit_price) for t in trades] == [
        ("signal", FIRST_ENTRY, FIRST_EXIT),
        ("stop", SECOND_ENTRY, SECOND_EXIT),
    ]
    assert trades[0].net_pnl == net(FIRST_QTY, FIRST_ENTRY, FIRST_EXIT) == D("53.88307498")
    assert trades[1].quantity == SECOND_QTY
    assert trades[1].net_pnl == net(SECOND_QTY, SECOND_ENTRY, SECOND_EXIT)
    total = trades[0].net_pnl + trades[1].net_pnl
    assert book.equity() == book.account.cash == D(10000) + total
    assert book.account.realized_pnl - book.account.fees == total  # the books balance to the last digit
    rejected = [e.data.reason for _, e in book.changes.events if isinstance(e, RejectionEvent)]
    assert rejected == ["no_position", "risk_reward_too_low", "no_plan"]
    positions = [e.event_id for _, e in book.changes.events if isinstance(e, PositionEvent)]
    assert positions == [f"position:BTCUSDT:{n}" for n in range(1, 5)]


def test_decimal_pnl_does_not_drift_where_float_would() -> None:
    limits = replace(LIMITS, slippage_bps=D(0), fee_rate=D(0), min_notional=D(0), max_position_pct=D(1))
    book = _book(limits)
    for i in range(10):  # ten round trips each gaining exactly 0.1 per unit on 1 unit
        minute = i * 10
        entry = signal("BTCUSDT", minute, SignalState.BUY, plan("0.3", "0.2", "0.9", "6"))
        book.decide(entry, NOW)
        book.apply_bar(bar("BTCUSDT", minute + 5, "0.3", "0.3", "0.3", "0.3"))
        book.decide(signal("BTCUSDT", minute + 5, SignalState.SELL), NOW)
        book.apply_bar(bar("BTCUSDT", minute + 10, "0.4", "0.4", "0.4", "0.4"))
    trades = [e.data for _, e in book.changes.events if isinstance(e, TradeEvent)]
    assert len(trades) == 10
    assert all(t.net_pnl == t.quantity * D("0.1") for t in trades)  # compounding sizes, still exact
    as_float = 10000.0
    for t in trades:
        as_float += float(t.quantity) * 0.4 - float(t.quantity) * 0.3
    assert book.account.cash == D(10000) + sum(t.net_pnl for t in trades)
    assert D(repr(as_float)) != book.account.cash  # what float arithmetic would have booked


def test_drawdown_freezes_entries_until_reset() -> None:
    book = _book()
    book.decide(signal("BTCUSDT", 0, SignalState.BUY, plan("100", "95", "300", "3")), NOW)
    book.apply_bar(bar("BTCUSDT", 5, "100", "100", "100", "100"))
    assert book.holdings["BTCUSDT"].quantity == D("19.99")  # 20 % of equity at the fill price 100.05
    book.account.cash -= D(2000)  # a loss elsewhere: equity 7977 < 80 % of the peak
    book.apply_bar(bar("BTCUSDT", 6, "100", "100", "99", "99"))
    assert book.account.frozen
    verdict = book.decide(signal("ETHUSDT", 5, SignalState.BUY, plan("10", "9", "13", "3")), NOW)
    assert verdict.reason is Reason.DRAWDOWN_FREEZE
    book.reset(NOW, Mode.LIVE)
    assert not book.account.frozen and book.account.peak_equity == book.equity()
    assert [a.decision for a in book.changes.audits][-2:] == ["rejected", "reset"]
    fills = [e for _, e in book.changes.events if isinstance(e, FillEvent)]
    assert fills[0].data.fee == D("1.9999995")  # 19.99 x 100.05 x 0.1 %


def test_a_late_signal_opens_nothing_but_still_closes() -> None:
    """Late (`merge`): the account's event time is past the signal's; sizing and limits of a later
    moment must not open a position, but an exit still goes."""
    late_buy = evaluate(BUY, _snapshot(), LIMITS, wall_clock=None, late=True)
    sell = signal("BTCUSDT", 0, SignalState.SELL).data
    late_sell = evaluate(sell, _snapshot(has_position=True, open_positions=1), LIMITS, wall_clock=None, late=True)
    assert (late_buy.decision, late_buy.reason) == ("rejected", Reason.STALE_DATA)
    assert (late_sell.decision, late_sell.reason) == ("accepted", Reason.EXIT)
    assert evaluate(BUY, _snapshot(), LIMITS, wall_clock=None).decision == "accepted"


def test_audit_details_read_the_same_whatever_the_exponent() -> None:
    """10000 read back from PostgreSQL is Decimal('1E+4'); a restart must not change a detail."""
    loaded = _snapshot(equity=D("1E+4"), day_start_equity=D("1E+4"), day_realized=D("-50.00"))
    kept = _snapshot(equity=D("10000.00"), day_start_equity=D("10000"), day_realized=D("-50"))
    assert evaluate(BUY, loaded, LIMITS, wall_clock=None) == evaluate(BUY, kept, LIMITS, wall_clock=None)
    assert plain(D("1E+4")) == "10000" and plain(D("40.000")) == "40" and plain(D("0.00")) == "0"
