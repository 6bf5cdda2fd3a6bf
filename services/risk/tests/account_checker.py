"""A checker for any run's trades: walks entries and exits in event time, per quote asset, and
lists every breach of the account limits (max open positions, daily loss, exposure caps).

It knows only the trades (and the positions still open), so the equities it checks against are
the cash ones: starting balance plus the net P&L closed so far, the open longs at their entry
cost. The desk uses marked equity; the difference is the open longs' unrealised P&L, which the
checker allows for with `slack` (a fraction of the equity)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tradebus_risk.limits import RiskLimits


@dataclass(frozen=True, slots=True)
class Held:
    symbol: str
    asset: str
    quantity: Decimal
    entry_price: Decimal
    entry_time: datetime
    exit_time: datetime | None
    net_pnl: Decimal


def _rows(trades: Sequence[Any], positions: Sequence[Any], quote_of: Callable[[str], str | None]) -> list[Held]:
    out = [
        Held(
            t["symbol"],
            quote_of(t["symbol"]) or "?",
            t["quantity"],
            t["entry_price"],
            t["entry_time"],
            t["exit_time"],
            t["net_pnl"],
        )
        for t in trades
    ]
    out += [
        Held(
            p["symbol"], quote_of(p["symbol"]) or "?", p["quantity"], p["entry_price"], p["opened_at"], None, Decimal(0)
        )
        for p in positions
    ]
    return out


def breaches(
    trades: Sequence[Any], positions: Sequence[Any], limits: RiskLimits, slack: Decimal = Decimal("0.05")
) -> list[str]:
    """Every breach found walking the trade list in event-time order (a close at t before an open at t)."""
    rows = _rows(trades, positions, limits.quote_of)
    steps: list[tuple[datetime, int, int]] = []
    for n, row in enumerate(rows):
        steps.append((row.entry_time, 1, n))
        if row.exit_time is not None:
            steps.append((row.exit_time, 0, n))
    steps.sort()
    cash = dict(limits.funded)
    """Per asset: the starting balance plus the net P&L closed so far."""
    day_start: dict[str, Decimal] = dict(cash)
    day_net: dict[str, Decimal] = dict.fromkeys(cash, Decimal(0))
    day: date | None = None
    open_now: dict[int, Held] = {}
    found: list[str] = []
    for at, opening, n in steps:
        row = rows[n]
        if day is None or at.date() > day:
            day = at.date()
            day_start = dict(cash)
            day_net = dict.fromkeys(cash, Decimal(0))
        if not opening:
            del open_now[n]
            cash[row.asset] += row.net_pnl
            day_net[row.asset] += row.net_pnl
            continue
        if row.asset not in cash:
            found.append(f"{row.symbol} entered at {at} without a balance in {row.asset}")
            continue
        if len(open_now) >= limits.max_open_positions:
            found.append(f"{row.symbol} entered at {at} with {len(open_now)} open (limit {limits.max_open_positions})")
        if -day_net[row.asset] >= day_start[row.asset] * limits.max_daily_loss_pct * (1 + slack):
            found.append(f"{row.symbol} entered at {at} after {row.asset} lost {-day_net[row.asset]} that day")
        same = [h for h in open_now.values() if h.asset == row.asset]
        equity = cash[row.asset]  # the open longs at their cost: the starting balance plus what closed
        exposure = sum((h.quantity * h.entry_price for h in same), Decimal(0)) + row.quantity * row.entry_price
        if exposure > equity * limits.max_exposure_pct * (1 + slack):
            found.append(f"{row.symbol} entered at {at}: {row.asset} exposure {exposure} of equity {equity}")
        if row.quantity * row.entry_price > equity * limits.max_position_pct * (1 + slack):
            found.append(f"{row.symbol} entered at {at} above the position cap at its fill price")
        open_now[n] = row
    return found
