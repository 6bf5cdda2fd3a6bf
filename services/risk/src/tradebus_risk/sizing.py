"""Position sizing from the stop distance: risk a fixed fraction of equity on every trade."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradebus.events import Side
from tradebus_risk.limits import RiskLimits


@dataclass(frozen=True, slots=True)
class Size:
    quantity: Decimal
    """Zero when the trade cannot be sized; then `reason` says why."""
    reason: str | None
    detail: str


def size_entry(*, equity: Decimal, cash: Decimal, entry: Decimal, stop: Decimal, limits: RiskLimits) -> Size:
    """qty = equity x risk fraction / (entry - stop), capped by the position limit and the cash.

    The position cap shrinks an oversized trade rather than rejecting it; only a trade that ends
    below the minimum notional is refused (`position_size`, or `insufficient_balance` when the
    cash was the binding cap). The cash cap leaves room for slippage and the entry fee.
    """
    distance = entry - stop
    if distance <= 0 or entry <= 0:
        return Size(Decimal(0), "no_plan", f"stop {stop} is not below entry {entry}")
    quantity = equity * limits.per_trade / distance
    notes = [f"risk {limits.per_trade} of equity {equity} over stop distance {distance}"]
    position_cap = equity * limits.max_position_pct / entry
    if quantity > position_cap:
        quantity = position_cap
        notes.append(f"shrunk to {limits.max_position_pct} of equity")
    money = limits.money
    worst_cost = money.fill_price(entry, Side.BUY, limits.slippage_bps) * (1 + limits.fee_rate)
    cash_cap = max(cash, Decimal(0)) / worst_cost
    cash_bound = quantity > cash_cap
    if cash_bound:
        quantity = cash_cap
        notes.append(f"shrunk to the cash {cash}")
    quantity = money.quantity(quantity)
    notional = money.notional(quantity, entry, Side.BUY)
    detail = "; ".join(notes)
    if quantity <= 0 or notional < limits.min_notional:
        reason = "insufficient_balance" if cash_bound else "position_size"
        return Size(Decimal(0), reason, f"notional {notional} below minimum {limits.min_notional} ({detail})")
    return Size(quantity, None, f"{quantity} at {entry} = {notional} ({detail})")
