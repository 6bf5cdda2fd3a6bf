"""The money policy on the book: every amount on its grid and the accounting identities exact,
over long random replays (hypothesis) with prices of many digits."""

from __future__ import annotations

import decimal
import random
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.events import FillEvent, PositionEvent, SignalState, TradeEvent
from tradebus_risk.book import Book
from tradebus_risk.limits import RiskLimits
from tradebus_risk.precision import accounting

sys.path.insert(0, str(Path(__file__).parent))
from risk_scenario import bar, plan, signal

D = Decimal
NOW = datetime(2024, 1, 2, 1, tzinfo=UTC)
SYMBOLS = ("BTCUSDT", "ETHUSDT", "ADABTC")


def _book(limits: RiskLimits) -> Book:
    return Book.fresh(limits)


def _on_grid(value: Decimal | None, decimals: int = 8) -> bool:
    return value is None or value == value.quantize(D(1).scaleb(-decimals))


def _price(rng: random.Random, level: Decimal) -> str:
    """A price with up to 8 decimals (ADABTC-like levels keep only a few significant digits)."""
    return str((level * D(1 + rng.uniform(-0.02, 0.02))).quantize(D("1e-8")))


def _replay(book: Book, seed: int, minutes: int) -> None:
    """Dense 5m signals (random states and plans) and random-walk 1m bars on three symbols."""
    rng = random.Random(seed)
    levels = {"BTCUSDT": D("43210.123"), "ETHUSDT": D("2345.6789"), "ADABTC": D("0.00001234")}
    for minute in range(minutes):
        for symbol in SYMBOLS:
            level = levels[symbol]
            if minute % 5 == 0 and minute >= 5:
                draw = rng.random()
                state = SignalState.BUY if draw < 0.3 else SignalState.SELL if draw < 0.5 else SignalState.NEUTRAL
                entry = D(_price(rng, level))
                stop = (entry * D("0.995")).quantize(D("1e-8"))
                target = (entry * D("1.01")).quantize(D("1e-8"))
                trade_plan = plan(str(entry), str(stop), str(target), "2") if state is SignalState.BUY else None
                book.decide(signal(symbol, minute - 5, state, trade_plan, price=str(entry)), NOW)
            o, c = _price(rng, level), _price(rng, level)
            h = max(D(o), D(c), D(_price(rng, level)))
            low = min(D(o), D(c), D(_price(rng, level)))
            book.apply_bar(bar(symbol, minute, o, str(h), str(low), c))
            levels[symbol] = D(c)
            _assert_identities(book)


def _assert_identities(book: Book) -> None:
    a = book.account
    with accounting():  # the identities themselves may not round either
        open_cost = sum((book.entry_cost(h) for h in book.holdings.values()), D(0))
        assert a.cash == a.initial_balance + a.realized_pnl - a.fees - open_cost
        assert book.equity() == a.cash + sum((book.market_value(h) for h in book.holdings.values()), D(0))
        trades = [t.data for t in book.changes.trades]
        for t in trades:
            assert t.net_pnl == t.gross_pnl - t.fees
        open_fees = sum((h.entry_fee for h in book.holdings.values()), D(0))
        assert sum((t.net_pnl for t in trades), D(0)) == a.realized_pnl - (a.fees - open_fees)
    amounts = [a.cash, a.realized_pnl, a.fees, a.peak_equity, a.day_start_equity, a.day_realized, book.equity()]
    assert all(_on_grid(v) for v in amounts), amounts


def _assert_published_on_grid(book: Book) -> None:
    for _, event in book.changes.events:
        if isinstance(event, FillEvent):
            assert _on_grid(event.data.price) and _on_grid(event.data.fee)
        elif isinstance(event, TradeEvent):
            t = event.data
            assert all(_on_grid(v) for v in (t.entry_price, t.exit_price, t.gross_pnl, t.fees, t.net_pnl))
        elif isinstance(event, PositionEvent):
            assert _on_grid(event.data.entry_price) and _on_grid(event.data.realized_pnl)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    fee_rate=st.sampled_from([D(0), D("0.001"), D("0.00075"), D("0.0013")]),
    slippage_bps=st.sampled_from([D(0), D(5), D("3.3"), D("12.5")]),
    per_trade=st.sampled_from([D("0.01"), D("0.033"), D("0.2")]),
)
def test_identities_hold_exactly_over_random_replays(
    seed: int, fee_rate: Decimal, slippage_bps: Decimal, per_trade: Decimal
) -> None:
    limits = RiskLimits(
        initial_balance=D("10000.12345678"),
        fee_rate=fee_rate,
        slippage_bps=slippage_bps,
        per_trade=per_trade,
        max_drawdown_pct=D(1),
        max_daily_loss_pct=D(1),
        min_notional=D(0),
    )
    book = _book(limits)
    _replay(book, seed, minutes=240)
    _assert_published_on_grid(book)
    assert book.changes.trades, "the replay closed no trade: it tests nothing"


def test_a_long_run_stays_on_the_grid() -> None:
    """A month-like run (40 k bars): the digits never grow, whatever the compounding."""
    book = _book(RiskLimits(max_drawdown_pct=D(1), max_daily_loss_pct=D(1), min_notional=D(0)))
    _replay(book, seed=3, minutes=4000)
    _assert_published_on_grid(book)
    assert len(book.changes.trades) > 100


def test_accounting_context_refuses_to_round() -> None:
    with accounting(), pytest.raises(decimal.Inexact):
        D("10000.00000001") * D("1.000000000000000000000000000000000000000000000000000000000001")
