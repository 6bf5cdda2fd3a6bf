"""Risk limits and trading costs as one immutable value, so pure modules need no settings."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradebus_risk.precision import MoneyPolicy


@dataclass(frozen=True, slots=True)
class RiskLimits:
    initial_balance: Decimal = Decimal("10000")
    per_trade: Decimal = Decimal("0.01")
    max_position_pct: Decimal = Decimal("0.2")
    max_open_positions: int = 5
    max_daily_loss_pct: Decimal = Decimal("0.05")
    max_drawdown_pct: Decimal = Decimal("0.2")
    min_rr: Decimal = Decimal("1.5")
    fee_rate: Decimal = Decimal("0.001")
    slippage_bps: Decimal = Decimal("5")
    stale_after_s: float = 600.0
    qty_step: Decimal = Decimal("0.00001")
    min_notional: Decimal = Decimal("10")
    price_decimals: int = 8
    quote_decimals: int = 8

    @property
    def money(self) -> MoneyPolicy:
        """How prices, quantities and quote amounts are rounded (see `precision`)."""
        return MoneyPolicy(self.price_decimals, self.quote_decimals, self.qty_step)
