"""Issue 15's account defects on the pure book: one account per quote asset, exposure caps
(R-4.8), gap fills, the position cap at the fill price, stale feeds and expired orders."""

from __future__ import annotations

import random
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tradebus.events import BarEvent, Mode, RejectionEvent, SignalState, TradeEvent
from tradebus.timeframes import MINUTE_MS, datetime_to_ms
from tradebus_risk.book import Book
from tradebus_risk.limits import RiskLimits, quote_asset
from tradebus_risk.paper import exit_trigger
from tradebus_risk.rules import Reason

sys.path.insert(0, str(Path(__file__).parent))
from risk_scenario import bar, plan, signal

D = Decimal
T0 = datetime(2024, 1, 2, tzinfo=UTC)
NOW = T0 + timedelta(days=30)
TWO = RiskLimits(balances=(("USDT", D(10000)), ("BTC", D("0.5"))))
BUY_PLAN = plan("100", "98", "106", "3")


def _trades(book: Book) -> list[TradeEvent]:
    return [e for _, e in book.changes.events if isinstance(e, TradeEvent)]


def _flat(book: Book, symbol: str, minutes: range, price: str = "100") -> None:
    for m in minutes:
        book.apply_bar(bar(symbol, m, price, price, price, price))


# ----------------------------------------------------------------- 2. balances per quote asset
def test_the_quote_asset_is_the_longest_funded_suffix_else_a_known_one() -> None:
    funded = ("USDT", "BTC")
    assert quote_asset("BTCUSDT", funded) == "USDT"
    assert quote_asset("XRBBTC", funded) == "BTC"
    assert quote_asset("XRPETH", funded) == "ETH"  # known, not funded: named in the rejection
    assert quote_asset("USDT", funded) is None and quote_asset("ABCXYZ", funded) is None
    assert RiskLimits().funded == {"USDT": D(10000)}  # RISK_BALANCES unset: RISK_INITIAL_BALANCE in USDT


def test_a_btc_quoted_symbol_trades_its_btc_balance_and_never_touches_usdt() -> None:
    book = Book.fresh(TWO)
    verdict = book.decide(signal("XRBBTC", 0, SignalState.BUY, plan("0.001", "0.00098", "0.00106", "3")), NOW)
    assert verdict.reason is Reason.ENTRY
    assert verdict.quantity * D("0.001") <= D("0.5") * TWO.max_position_pct  # sized on 0.5 BTC, not 10,000
    _flat(book, "XRBBTC", range(5, 10), "0.001")
    book.decide(signal("XRBBTC", 5, SignalState.SELL), NOW)
    book.apply_bar(bar("XRBBTC", 10, "0.0011", "0.0011", "0.0011", "0.0011"))
    (trade,) = _trades(book)
    usdt, btc = book.accounts["USDT"], book.accounts["BTC"]
    assert (usdt.cash, usdt.realized_pnl, usdt.fees, usdt.day_realized) == (D(10000), 0, 0, 0)
    assert btc.cash == D("0.5") + trade.data.net_pnl and btc.day_realized == trade.data.net_pnl
    assert trade.data.net_pnl > 0 and book.equity("USDT") == D(10000)


def test_a_symbol_whose_quote_asset_has_no_balance_is_refused() -> None:
    book = Book.fresh(TWO)
    verdict = book.decide(signal("XRPETH", 0, SignalState.BUY, plan("0.001", "0.00098", "0.00106", "3")), NOW)
    assert (verdict.decision, verdict.reason) == ("rejected", Reason.NO_QUOTE_BALANCE)
    assert "ETH" in verdict.detail
    assert [e.data.reason for _, e in book.changes.events if isinstance(e, RejectionEvent)] == ["no_quote_balance"]


def test_the_daily_loss_and_drawdown_are_per_quote_asset() -> None:
    book = Book.fresh(TWO)
    _flat(book, "AUSDT", range(1))
    book.accounts["BTC"].day_realized = D("-0.03")  # 6 % of 0.5 BTC lost today: BTC entries stop
    btc = book.decide(signal("XRBBTC", 0, SignalState.BUY, plan("0.001", "0.00098", "0.00106", "3")), NOW)
    usdt = book.decide(signal("AUSDT", 0, SignalState.BUY, BUY_PLAN), NOW)
    assert (btc.reason, usdt.reason) == (Reason.DAILY_LOSS_LIMIT, Reason.ENTRY)
    book.accounts["BTC"].cash = D("0.3")  # a 40 % fall of the BTC account freezes BTC only
    _flat(book, "AUSDT", range(5, 6))
    assert book.accounts["BTC"].frozen and not book.accounts["USDT"].frozen
    assert any(a.reason == Reason.DRAWDOWN_FREEZE and a.detail.startswith("BTC ") for a in book.changes.audits)


# ----------------------------------------------------------------- 3. exposure limits
def test_exposure_per_quote_asset_is_capped() -> None:
    limits = replace(TWO, max_exposure_pct=D("0.3"))
    book = Book.fresh(limits)
    _flat(book, "AUSDT", range(1))
    first = book.decide(signal("AUSDT", 0, SignalState.BUY, BUY_PLAN), NOW)
    second = book.decide(signal("BUSDT", 0, SignalState.BUY, BUY_PLAN), NOW)  # A's pending entry counts
    btc = book.decide(signal("XRBBTC", 0, SignalState.BUY, plan("0.001", "0.00098", "0.00106", "3")), NOW)
    assert (first.reason, second.reason, btc.reason) == (Reason.ENTRY, Reason.EXPOSURE_LIMIT, Reason.ENTRY)
    assert second.detail.startswith("USDT exposure 2000 + 2000 above 0.3 of equity 10000")


def _walks(minutes: int, seed: int) -> tuple[list[BarEvent], dict[str, list[Decimal]]]:
    """A and B move together (B = 2 x A), C on its own: 1m bars of all three, in time order."""
    rng = random.Random(seed)
    a = c = D(100)
    closes: dict[str, list[Decimal]] = {"AUSDT": [], "BUSDT": [], "CUSDT": []}
    bars = []
    for m in range(minutes):
        a = (a * D(1 + rng.gauss(0, 0.003))).quantize(D("0.0001"))
        c = (c * D(1 + rng.gauss(0, 0.003))).quantize(D("0.0001"))
        for symbol, close in (("AUSDT", a), ("BUSDT", 2 * a), ("CUSDT", c)):
            closes[symbol].append(close)
            text = str(close)
            bars.append(bar(symbol, m, text, text, text, text))
    return bars, closes


def test_correlated_symbols_share_one_exposure_cap() -> None:
    limits = replace(RiskLimits(), max_correlated_pct=D("0.3"))
    book = Book.fresh(limits)
    bars, closes = _walks(5 * 60, seed=3)
    for event in bars:
        book.apply_bar(event)
    minute = 5 * 60 - 5  # decided at C = minute + 5, after every bar above
    wide = {s: plan(str(p[-1]), str(p[-1] * D("0.98")), str(p[-1] * D("1.06")), "3") for s, p in closes.items()}
    a = book.decide(signal("AUSDT", minute, SignalState.BUY, wide["AUSDT"]), NOW)
    b = book.decide(signal("BUSDT", minute, SignalState.BUY, wide["BUSDT"]), NOW)
    c = book.decide(signal("CUSDT", minute, SignalState.BUY, wide["CUSDT"]), NOW)
    assert (a.reason, b.reason, c.reason) == (Reason.ENTRY, Reason.EXPOSURE_LIMIT, Reason.ENTRY)
    assert b.detail.startswith("correlated with AUSDT: USDT ")


def test_the_correlation_uses_only_closes_up_to_the_decision() -> None:
    """A bar closing after the decision point (a quiet live bar applied ahead) never counts."""
    book = Book.fresh(RiskLimits())
    bars, _ = _walks(60, seed=4)
    for event in bars:
        book.apply_bar(event)
    at = T0 + timedelta(minutes=60)
    assert book.correlated("AUSDT", ["BUSDT", "CUSDT"], at) == ("BUSDT",)
    assert book.correlated("AUSDT", ["BUSDT"], T0 + timedelta(minutes=30)) == ()  # < 10 shared returns then


# ----------------------------------------------------------------- 5. gap fills
def test_a_gap_fills_at_the_open_and_stop_first_only_when_the_open_lies_between() -> None:
    stop, target = D(98), D(106)
    above = bar("XUSDT", 0, "107", "108", "97", "97").data  # opens beyond the target, then falls through the stop
    below = bar("XUSDT", 0, "97", "107", "96", "106").data  # opens through the stop
    between = bar("XUSDT", 0, "100", "107", "97", "100").data
    assert exit_trigger(above, stop, target) == exit_trigger(above, None, target)
    assert (exit_trigger(above, stop, target).reason, exit_trigger(above, stop, target).price) == ("target", D(107))  # type: ignore[union-attr]
    assert (exit_trigger(below, stop, target).reason, exit_trigger(below, stop, target).price) == ("stop", D(97))  # type: ignore[union-attr]
    assert (exit_trigger(between, stop, target).reason, exit_trigger(between, stop, target).price) == ("stop", D(98))  # type: ignore[union-attr]


# ----------------------------------------------------------------- 6. the cap at the fill
def test_no_entry_exceeds_the_position_cap_at_its_fill_price() -> None:
    book = Book.fresh(RiskLimits())
    book.decide(signal("XUSDT", 0, SignalState.BUY, plan("100", "99.9", "106", "3")), NOW)  # sized 20 at 100
    book.decide(signal("YUSDT", 0, SignalState.BUY, plan("100", "99.9", "106", "3")), NOW)
    book.apply_bar(bar("XUSDT", 5, "100", "100", "100", "100"))  # fills at 100.05
    book.apply_bar(bar("YUSDT", 5, "103", "103", "103", "103"))  # a gap up: fills at 103.0515
    for symbol in ("XUSDT", "YUSDT"):
        held = book.holdings[symbol]
        assert held.quantity * held.entry_price <= D(10000) * D("0.2"), symbol
    assert book.holdings["XUSDT"].quantity == D("19.99")


# ----------------------------------------------------------------- 7. stale feeds
def test_a_long_whose_feed_is_silent_past_the_limit_closes_at_its_last_price() -> None:
    limits = replace(RiskLimits(), max_open_positions=1, stale_feed_h=D(2))
    book = Book.fresh(limits)
    book.decide(signal("AUSDT", 0, SignalState.BUY, BUY_PLAN), NOW)
    _flat(book, "AUSDT", range(5, 10), "101")  # filled at 5, last bar at 9, then silence
    _flat(book, "BUSDT", range(5, 9 + 121))  # up to exactly 2 h after A's last bar: still open
    assert "AUSDT" in book.holdings
    blocked = book.decide(signal("BUSDT", 120, SignalState.BUY, BUY_PLAN), NOW)
    assert blocked.reason is Reason.MAX_OPEN_POSITIONS
    _flat(book, "BUSDT", range(9 + 121, 9 + 122))  # 2 h 1 m: A is closed, its slot freed
    (trade,) = _trades(book)
    assert (trade.data.exit_reason, trade.data.exit_price) == ("stale_feed", D("100.9495"))  # 101 - 5 bps
    assert trade.data.exit_time == T0 + timedelta(minutes=130)
    assert [a.reason for a in book.changes.audits][-1] == Reason.STALE_FEED
    freed = book.decide(signal("BUSDT", 125, SignalState.BUY, BUY_PLAN), NOW)
    assert freed.reason is Reason.ENTRY


# ----------------------------------------------------------------- 8. orders the live feed overtook
def test_an_order_whose_first_bar_opens_far_later_expires_stale_instead_of_filling() -> None:
    """A replay signal decided, then the live feed's first bar of days later: no fill at that price."""
    book = Book.fresh(RiskLimits())
    book.decide(signal("AUSDT", 0, SignalState.BUY, BUY_PLAN), NOW)  # decided at minute 5
    book.decide(signal("BUSDT", 0, SignalState.BUY, BUY_PLAN), NOW)
    live_ms = datetime_to_ms(T0) + 3 * 24 * 60 * MINUTE_MS
    book.apply_bar(bar("AUSDT", 0, "150", "151", "149", "150", mode=Mode.LIVE, t0_ms=live_ms))
    book.apply_bar(bar("BUSDT", 5 + 15, "100", "100", "100", "100"))  # 15 min later: still fills
    assert "AUSDT" not in book.holdings and "BUSDT" in book.holdings
    assert book.changes.orders[f"{signal('AUSDT', 0, SignalState.BUY).event_id}:entry"].status == "expired"
    expired = [e.data for _, e in book.changes.events if isinstance(e, RejectionEvent)]
    assert [(r.symbol, r.reason) for r in expired] == [("AUSDT", "stale")]
    assert any(a.decision == "expired" and a.reason == Reason.STALE for a in book.changes.audits)


def test_an_asset_no_longer_funded_takes_no_entries_but_its_long_still_exits() -> None:
    book = Book.fresh(TWO)
    book.decide(signal("XRBBTC", 0, SignalState.BUY, plan("0.001", "0.00098", "0.00106", "3")), NOW)
    book.apply_bar(bar("XRBBTC", 5, "0.001", "0.001", "0.001", "0.001"))
    usdt_only = Book(book.accounts, book.holdings, {}, {}, dict(book.bar_applied), RiskLimits())  # BTC dropped
    entry = usdt_only.decide(signal("ICXBTC", 5, SignalState.BUY, plan("0.001", "0.00098", "0.00106", "3")), NOW)
    exit_ = usdt_only.decide(signal("XRBBTC", 5, SignalState.SELL), NOW)
    usdt_only.apply_bar(bar("XRBBTC", 10, "0.0011", "0.0011", "0.0011", "0.0011"))
    assert (entry.reason, exit_.reason) == (Reason.NO_QUOTE_BALANCE, Reason.EXIT)
    assert not usdt_only.holdings and usdt_only.accounts["BTC"].cash > D("0.5")


def _tabled(readme: Path, section: str) -> set[str]:
    """The codes in the first column of the table under `section`."""
    text = readme.read_text()
    table = text[text.index(section) :].split("\n## ")[0]
    return {
        code for line in table.splitlines() if line.startswith("| `") for code in line.split("|")[1].split("`")[1::2]
    }


def test_both_readmes_table_every_reason() -> None:
    reasons = {r.value for r in Reason} | {"manual_reset"}
    assert _tabled(Path(__file__).parents[1] / "README.md", "## Every rejection reason") == reasons
    assert _tabled(Path(__file__).parents[3] / "README.md", "## The paper account") == reasons
