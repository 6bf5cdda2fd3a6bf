"""Performance figures from closed trades: pure, exact `Decimal` arithmetic, no I/O.

Every figure is a function of the *set* of trades: trades are put in exit order (exit time,
then trade id to break ties) before any order-dependent figure is taken, so the same trades
give the same figures whatever order they arrived in. Sums are exact; ratios are quantised to
`RATIO_PLACES` (half-even) so that a recomputation reproduces them digit for digit.

Formulas, over the trades T in exit order with net P&L x_1 … x_n:

- `trades` = n; `wins` = #{x_i > 0}; `win_rate` = wins / n (0 when n = 0)
- `gross_pnl`, `fees`, `net_pnl` = the sums of the trades' own gross P&L, fees and net P&L
- `profit_factor` = Σ{x_i > 0} / |Σ{x_i < 0}| — None when no trade lost (undefined, not ∞)
- `max_drawdown` = max over i ≤ j of (C_i − C_j) with C_0 = 0 and C_k = x_1 + … + x_k: the
  largest peak-to-trough fall of the cumulative net P&L curve, which starts at 0, as a
  positive amount (0 when the curve never falls)
- `sharpe` = mean(x) / s(x) × √n, with s the sample standard deviation (n − 1); a per-trade
  Sharpe ratio scaled by √n (no annualisation, no risk-free rate). None when n < 2 or s = 0.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Final
from zoneinfo import ZoneInfo

from tradebus.events import Mode, PerformanceFigures, Trade

RATIO_PLACES: Final = 8
_QUANTUM: Final = Decimal(1).scaleb(-RATIO_PLACES)
_CONTEXT: Final = Context(prec=60, rounding=ROUND_HALF_EVEN)
"""Wide enough that sums of realistic amounts are exact and ratios exact before quantising."""
_ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """The facts of a closed trade that performance depends on."""

    trade_id: str
    strategy: str
    exit_time: datetime
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    mode: Mode = Mode.LIVE

    @classmethod
    def of(cls, trade: Trade, mode: Mode = Mode.LIVE) -> ClosedTrade:
        return cls(trade.trade_id, trade.strategy, trade.exit_time, trade.gross_pnl, trade.fees, trade.net_pnl, mode)


def in_exit_order(trades: Iterable[ClosedTrade]) -> list[ClosedTrade]:
    """The trades sorted by exit time, ties broken by trade id (a total, stable order)."""
    return sorted(trades, key=lambda t: (t.exit_time, t.trade_id))


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    with localcontext(_CONTEXT):
        return (numerator / denominator).quantize(_QUANTUM)


def max_drawdown(net_pnls: Sequence[Decimal]) -> Decimal:
    """Largest fall of the cumulative curve from a running peak (the curve starts at 0)."""
    cumulative = peak = worst = _ZERO
    with localcontext(_CONTEXT):
        for pnl in net_pnls:
            cumulative += pnl
            peak = max(peak, cumulative)
            worst = max(worst, peak - cumulative)
    return worst


def sharpe(net_pnls: Sequence[Decimal]) -> Decimal | None:
    """mean / sample stdev × √n of per-trade net P&L; None when undefined (n < 2 or no spread)."""
    n = len(net_pnls)
    if n < 2:
        return None
    with localcontext(_CONTEXT):
        mean = sum(net_pnls, _ZERO) / n
        variance = sum(((x - mean) ** 2 for x in net_pnls), _ZERO) / (n - 1)
        if variance == 0:
            return None
        return (mean / variance.sqrt() * Decimal(n).sqrt()).quantize(_QUANTUM)


def figures(trades: Iterable[ClosedTrade]) -> PerformanceFigures:
    """All figures of the module docstring for `trades` (any order; empty gives zeros)."""
    ordered = in_exit_order(trades)
    nets = [t.net_pnl for t in ordered]
    with localcontext(_CONTEXT):
        profit = sum((x for x in nets if x > 0), _ZERO)
        loss = -sum((x for x in nets if x < 0), _ZERO)
        gross = sum((t.gross_pnl for t in ordered), _ZERO)
        fees = sum((t.fees for t in ordered), _ZERO)
        net = sum(nets, _ZERO)
    wins = sum(1 for x in nets if x > 0)
    return PerformanceFigures(
        trades=len(ordered),
        wins=wins,
        win_rate=_ratio(Decimal(wins), Decimal(len(ordered))) if ordered else _ZERO.quantize(_QUANTUM),
        gross_pnl=gross,
        net_pnl=net,
        fees=fees,
        profit_factor=_ratio(profit, loss) if loss > 0 else None,
        max_drawdown=max_drawdown(nets),
        sharpe=sharpe(nets),
    )


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar day of `moment` in `zone` (the day a trade counts for: its exit's)."""
    return moment.astimezone(zone).date()


def by_day(trades: Iterable[ClosedTrade], zone: ZoneInfo) -> dict[date, list[ClosedTrade]]:
    """Trades grouped by the local day of their exit."""
    days: dict[date, list[ClosedTrade]] = defaultdict(list)
    for trade in trades:
        days[local_day(trade.exit_time, zone)].append(trade)
    return dict(days)


def by_strategy(trades: Iterable[ClosedTrade]) -> dict[str, list[ClosedTrade]]:
    strategies: dict[str, list[ClosedTrade]] = defaultdict(list)
    for trade in trades:
        strategies[trade.strategy].append(trade)
    return dict(strategies)


def mode_of(trades: Iterable[ClosedTrade]) -> Mode:
    """`replay` when every trade was replayed, else `live` (a rollup is as live as its liveliest trade)."""
    modes = {t.mode for t in trades}
    return Mode.REPLAY if modes == {Mode.REPLAY} else Mode.LIVE


def fingerprint(result: PerformanceFigures) -> str:
    """A short hash of the figures alone (not the day or strategy), independent of decimal scale.

    It names a revision of a rollup: identical recomputations give the same event id, so
    JetStream and the tables recognise them as nothing new.
    """
    parts = []
    for name in PerformanceFigures.model_fields:
        value = getattr(result, name)
        parts.append(f"{name}={value.normalize() if isinstance(value, Decimal) else value}")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:16]


def giveback_ratio(peak: Decimal, current: Decimal) -> Decimal:
    """The share of the peak cumulative net P&L given back since, in [0, 1] (not an equity
    drawdown: the account's is risk's `drawdown`).

    (peak − current) / peak, where the peak includes the curve's start at 0. With no profit
    ever made (peak ≤ 0) there is nothing to draw down from, so the ratio is 0; a fall below
    zero after a positive peak is capped at 1 (the whole peak profit is gone).
    """
    if peak <= 0:
        return _ZERO.quantize(_QUANTUM)
    return min(Decimal(1), max(_ZERO, _ratio(peak - current, peak))).quantize(_QUANTUM)
