"""Risk limits and trading costs as one immutable value, so pure modules need no settings."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from tradebus_risk.precision import MoneyPolicy

HOME_ASSET: Final = "USDT"
"""The quote asset of the single balance `RISK_INITIAL_BALANCE` funds when `RISK_BALANCES` is unset."""
KNOWN_QUOTES: Final = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL")
"""Quote assets Binance lists, only to NAME the quote of a symbol no balance covers (rejections)."""


DEFAULT_MIN_NOTIONALS: Final = (("BTC", Decimal("0.0001")), ("ETH", Decimal("0.001")), ("BNB", Decimal("0.01")))
"""Binance's minimum order values of the common non-USD quote assets (the others use `min_notional`)."""


def quote_asset(symbol: str, assets: tuple[str, ...]) -> str | None:
    """The quote asset of `symbol`: the longest of `assets` (the funded ones) that ends it and
    leaves a base, else the longest known quote that does (a symbol nothing funds), else None."""
    for candidates in (assets, KNOWN_QUOTES):
        fits = [a for a in candidates if len(symbol) > len(a) and symbol.endswith(a)]
        if fits:
            return max(fits, key=lambda a: (len(a), a))
    return None


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
    balances: tuple[tuple[str, Decimal], ...] = ()
    """(quote asset, starting balance) of every funded asset; empty: `HOME_ASSET` = `initial_balance`."""
    min_notionals: tuple[tuple[str, Decimal], ...] = DEFAULT_MIN_NOTIONALS
    """Per quote asset minimum notional; an asset not listed uses `min_notional`."""
    max_exposure_pct: Decimal = Decimal("1")
    """Open and pending longs of one quote asset, at most this fraction of that asset's equity."""
    max_correlated_pct: Decimal = Decimal("0.4")
    """A group of correlated symbols (same quote asset), at most this fraction of its equity."""
    correlation_threshold: Decimal = Decimal("0.8")
    correlation_step_m: int = 5
    """Closes sampled every this many minutes (the close of the 1m bar ending on the step)."""
    correlation_window: int = 48
    """Returns per symbol the correlation is computed over (48 x 5m = 4 h)."""
    stale_feed_h: Decimal = Decimal("24")
    """An open long whose symbol delivered no bar for this long (event time) is closed `stale_feed`."""
    order_expiry_s: float = 900.0
    """A market order whose first bar opens this long after it was submitted expires (`stale`)."""

    @property
    def money(self) -> MoneyPolicy:
        """How prices, quantities and quote amounts are rounded (see `precision`)."""
        return MoneyPolicy(self.price_decimals, self.quote_decimals, self.qty_step)

    @property
    def funded(self) -> dict[str, Decimal]:
        """Starting balance per quote asset."""
        return dict(self.balances) if self.balances else {HOME_ASSET: self.initial_balance}

    @property
    def home_asset(self) -> str:
        """The first funded asset: the one the legacy single-account fields show."""
        return next(iter(self.funded))

    def quote_of(self, symbol: str) -> str | None:
        return quote_asset(symbol, tuple(self.funded))

    def min_notional_of(self, asset: str) -> Decimal:
        return dict(self.min_notionals).get(asset, self.min_notional)
