"""Position sizing from the stop distance: risk a fixed fraction of equity on every trade."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradebus.events import Side
from tradebus_risk.limits import RiskLimits
from tradebus_risk.precision import plain


@dataclass(frozen=True, slots=True)
class Size:
    quantity: Decimal
    """Zero when the trade cannot be sized; then `reason` says why."""
    reason: str | None
    detail: str


def size_entry(
    *,
    equity: Decimal,
    cash: Decimal,
    entry: Decimal,
    stop: Decimal,
    limits: RiskLimits,
    min_notional: Decimal | None = None,
) -> Size:
    """qty = equity x risk fraction / (entry - stop), capped by the position limit and the cash.

    The position cap shrinks an oversized trade rather than rejecting it; only a trade that ends
    below the minimum notional is refused (`position_size`, or `insufficient_balance` when the
    cash was the binding cap). The cash cap leaves room for slippage and the entry fee.
    """
    distance = entry - stop
    if distance <= 0 or entry <= 0:
        return Size(Decimal(0), "no_plan", f"stop {plain(stop)} is not below entry {plain(entry)}")
    quantity = equity * limits.per_trade / distance
    notes = [f"risk {plain(limits.per_trade)} of equity {plain(equity)} over stop distance {plain(distance)}"]
    position_cap = equity * limits.max_position_pct / entry
    if quantity > position_cap:
        quantity = position_cap
        notes.append(f"shrunk to {plain(limits.max_position_pct)} of equity")
    money = limits.money
    worst_cost = money.fill_price(entry, Side.BUY, limits.slippage_bps) * (1 + limits.fee_rate)
    cash_cap = max(cash, Decimal(0)) / worst_cost
    cash_bound = quantity > cash_cap
    if cash_bound:
        quantity = cash_cap
        notes.append(f"shrunk to the cash {plain(cash)}")
    quantity = money.quantity(quantity)
    notional = money.notional(quantity, entry, Side.BUY)
    detail = "; ".join(notes)
    minimum = limits.min_notional if min_notional is None else min_notional
    if quantity <= 0 or notional < minimum:
        reason = "insufficient_balance" if cash_bound else "position_size"
        below = f"notional {plain(notional)} below minimum {plain(minimum)}"
        return Size(Decimal(0), reason, f"{below} ({detail})")
    return Size(quantity, None, f"{plain(quantity)} at {plain(entry)} = {plain(notional)} ({detail})")
