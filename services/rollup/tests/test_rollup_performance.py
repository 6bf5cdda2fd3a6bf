"""The pure performance math, the schedule and the settings (no bus, no database)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tradebus.events import Mode, PerformanceFigures
from tradebus_rollup import performance, schedule
from tradebus_rollup.performance import ClosedTrade
from tradebus_rollup.settings import RollupSettings

T0 = datetime(2019, 3, 4, 9, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")


def closed(net: str, minute: int, *, fee: str = "1", trade_id: str | None = None, strategy: str = "s") -> ClosedTrade:
    fees = Decimal(fee)
    return ClosedTrade(
        trade_id=trade_id or f"t{minute:04d}",
        strategy=strategy,
        exit_time=T0 + timedelta(minutes=minute),
        gross_pnl=Decimal(net) + fees,
        fees=fees,
        net_pnl=Decimal(net),
    )


def test_hand_computed_figures() -> None:
    # net 10, -4, 6, -2: curve 10, 6, 12, 10 -> worst fall 10 -> 6
    trades = [closed("10", 1), closed("-4", 2), closed("6", 3), closed("-2", 4)]
    result = performance.figures(trades)
    assert result == PerformanceFigures(
        trades=4,
        wins=2,
        win_rate=Decimal("0.50000000"),
        gross_pnl=Decimal("14"),
        net_pnl=Decimal("10"),
        fees=Decimal("4"),
        profit_factor=Decimal("2.66666667"),  # 16 / 6
        max_drawdown=Decimal("4"),
        sharpe=Decimal("0.75664991"),  # mean 2.5, s = sqrt(131/3): 2.5 / s * 2 = 5 * sqrt(3/131)
    )
    assert str(result.win_rate) == "0.50000000"


def test_profit_factor_is_none_without_a_loss_and_sharpe_exact() -> None:
    result = performance.figures([closed("1", 1), closed("2", 2)])
    assert result.profit_factor is None
    assert result.sharpe == Decimal("3.00000000")  # mean 1.5 / sqrt(0.5) * sqrt(2)
    assert result.max_drawdown == 0


def test_sharpe_is_none_for_one_trade_or_no_spread() -> None:
    assert performance.figures([closed("5", 1)]).sharpe is None
    assert performance.figures([closed("2", 1), closed("2", 2)]).sharpe is None
    assert performance.sharpe([Decimal(1), Decimal(3)]) == Decimal("2.00000000")


def test_drawdown_counts_from_the_start_of_the_curve() -> None:
    assert performance.max_drawdown([Decimal(-5), Decimal(3)]) == Decimal(5)
    assert performance.max_drawdown([Decimal(3), Decimal(-1), Decimal(4), Decimal("-6.5")]) == Decimal("6.5")
    result = performance.figures([closed("-5", 1), closed("3", 2)])
    assert result.profit_factor == Decimal("0.60000000")
    assert result.wins == 1 and result.win_rate == Decimal("0.5")


def test_no_trades_gives_zero_figures() -> None:
    result = performance.figures([])
    assert (result.trades, result.wins, result.win_rate, result.net_pnl, result.max_drawdown) == (0, 0, 0, 0, 0)
    assert result.profit_factor is None and result.sharpe is None


def test_exit_order_breaks_ties_by_trade_id() -> None:
    a = closed("-3", 1, trade_id="b")
    b = closed("3", 1, trade_id="a")
    assert performance.in_exit_order([a, b]) == [b, a]
    assert performance.figures([a, b]).max_drawdown == Decimal(3)


def test_days_follow_the_zone_of_the_rollup() -> None:
    late = ClosedTrade("x", "s", datetime(2024, 1, 1, 23, 30, tzinfo=UTC), Decimal(1), Decimal(0), Decimal(1))
    assert list(performance.by_day([late], UTC_ZONE)) == [date(2024, 1, 1)]
    assert list(performance.by_day([late], ZoneInfo("Europe/Paris"))) == [date(2024, 1, 2)]


def test_mode_is_replay_only_when_every_trade_was_replayed() -> None:
    replayed = ClosedTrade("r", "s", T0, Decimal(1), Decimal(0), Decimal(1), Mode.REPLAY)
    live = ClosedTrade("l", "s", T0, Decimal(1), Decimal(0), Decimal(1), Mode.LIVE)
    assert performance.mode_of([replayed]) is Mode.REPLAY
    assert performance.mode_of([replayed, live]) is Mode.LIVE
    assert performance.mode_of([]) is Mode.LIVE


def test_fingerprint_ignores_decimal_scale_but_not_values() -> None:
    base = performance.figures([closed("10", 1), closed("-4", 2)])
    rescaled = base.model_copy(update={"net_pnl": Decimal("6.000")})
    changed = base.model_copy(update={"net_pnl": Decimal("6.01")})
    assert performance.fingerprint(base) == performance.fingerprint(rescaled)
    assert performance.fingerprint(base) != performance.fingerprint(changed)


@pytest.mark.parametrize(
    ("peak", "current", "expected"),
    [("0", "-5", "0"), ("-2", "-5", "0"), ("10", "10", "0"), ("10", "7.5", "0.25"), ("10", "-3", "1")],
)
def test_giveback_ratio(peak: str, current: str, expected: str) -> None:
    assert performance.giveback_ratio(Decimal(peak), Decimal(current)) == Decimal(expected)


# ----------------------------------------------------------------------- properties
_amounts = st.integers(min_value=-(10**9), max_value=10**9).map(lambda cents: Decimal(cents).scaleb(-4))
_trade_lists = st.lists(
    st.tuples(_amounts, st.integers(0, 3 * 24 * 60), st.integers(0, 500), st.sampled_from("ab")),
    max_size=40,
    unique_by=lambda t: t[1],
)


def _trades(raw: list[tuple[Decimal, int, int, str]]) -> list[ClosedTrade]:
    return [
        closed(str(net), minute, fee=str(Decimal(fee).scaleb(-2)), strategy=strategy)
        for net, minute, fee, strategy in raw
    ]


@settings(max_examples=60, deadline=None)
@given(_trade_lists, st.randoms(use_true_random=False))
def test_figures_do_not_depend_on_arrival_order(raw: list[tuple[Decimal, int, int, str]], rnd: random.Random) -> None:
    trades = _trades(raw)
    shuffled = list(trades)
    rnd.shuffle(shuffled)
    assert performance.figures(shuffled) == performance.figures(performance.in_exit_order(trades))


@settings(max_examples=60, deadline=None)
@given(_trade_lists)
def test_daily_rows_add_up_to_the_totals(raw: list[tuple[Decimal, int, int, str]]) -> None:
    trades = _trades(raw)
    overall = performance.figures(trades)
    days = [performance.figures(group) for group in performance.by_day(trades, ZoneInfo("Asia/Tokyo")).values()]
    for name in ("trades", "wins", "gross_pnl", "fees", "net_pnl"):
        assert sum((getattr(d, name) for d in days), 0) == getattr(overall, name)
    per_strategy = [performance.figures(group) for group in performance.by_strategy(trades).values()]
    assert sum((s.net_pnl for s in per_strategy), Decimal(0)) == overall.net_pnl


# ----------------------------------------------------------------------- schedule and settings
def test_schedule_in_a_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    at = time(0, 5)
    before = datetime(2024, 7, 9, 22, 0, tzinfo=UTC)  # 00:00 on the 10th in Paris (UTC+2)
    after = datetime(2024, 7, 9, 22, 10, tzinfo=UTC)  # 00:10 on the 10th in Paris
    assert schedule.next_run(before, at, paris) == datetime(2024, 7, 9, 22, 5, tzinfo=UTC)
    assert schedule.next_run(after, at, paris) == datetime(2024, 7, 10, 22, 5, tzinfo=UTC)
    assert schedule.due_day(before, at, paris) == date(2024, 7, 8)
    assert schedule.due_day(after, at, paris) == date(2024, 7, 9)


def test_settings_defaults_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ROLLUP_EOD_TIME", "ROLLUP_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    defaults = RollupSettings()
    assert defaults.rollup_eod_time == time(0, 5) and defaults.rollup_timezone == "UTC"
    monkeypatch.setenv("ROLLUP_EOD_TIME", "23:30")
    monkeypatch.setenv("ROLLUP_TIMEZONE", "America/New_York")
    configured = RollupSettings()
    assert configured.rollup_eod_time == time(23, 30) and configured.zone == ZoneInfo("America/New_York")
    with pytest.raises(ValidationError, match="unknown time zone"):
        RollupSettings(rollup_timezone="Mars/Olympus")
