"""The risk service's environment: account size, risk limits, costs and the API token."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from tradebus.settings import Settings
from tradebus_risk.breaker import BreakerLimits
from tradebus_risk.limits import DEFAULT_MIN_NOTIONALS, RiskLimits

Balances = tuple[tuple[str, Decimal], ...]


class RiskSettings(Settings):
    """`RISK_*` variables (fractions are of equity, e.g. 0.2 = 20 %) and `TRADEBUS_API_TOKEN`.

    The limits are only typed here: a zero, negative or out-of-range limit is a preflight
    finding (`preflight.check`, one line naming the variable), not a validation traceback."""

    risk_initial_balance: Decimal = Decimal("10000")
    risk_balances: Annotated[Balances, NoDecode] = ()
    """`USDT=10000,BTC=0.5`: one account per quote asset with its starting balance; empty: USDT
    with `RISK_INITIAL_BALANCE`. The first listed is the home asset (the single-account fields)."""
    risk_min_notionals: Annotated[Balances, NoDecode] = DEFAULT_MIN_NOTIONALS
    """Per quote asset minimum notional (Binance's); an asset not listed uses `RISK_MIN_NOTIONAL`."""
    risk_per_trade: Decimal = Decimal("0.01")
    risk_max_position_pct: Decimal = Decimal("0.2")
    risk_max_open_positions: int = 5
    risk_max_daily_loss_pct: Decimal = Decimal("0.05")
    risk_max_drawdown_pct: Decimal = Decimal("0.2")
    risk_max_exposure_pct: Decimal = Decimal("1")
    """Open and pending longs of one quote asset, at most this fraction of its equity."""
    risk_max_correlated_pct: Decimal = Decimal("0.4")
    """A group of correlated symbols of one quote asset, at most this fraction of its equity."""
    risk_correlation_threshold: Decimal = Decimal("0.8")
    risk_correlation_step_m: int = 5
    risk_correlation_window: int = 48
    """Returns of closes sampled every step minutes that the correlation is computed over."""
    risk_stale_feed_h: Decimal = Decimal("24")
    """An open long whose symbol has had no bar this many hours (event time) is closed `stale_feed`."""
    risk_order_expiry_s: float = 900.0
    """An order whose first bar opens this long after it was submitted expires unfilled (`stale`)."""
    risk_min_rr: Decimal = Decimal("1.5")
    risk_fee_rate: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    risk_slippage_bps: Decimal = Field(default=Decimal("5"), ge=0, lt=10000)
    risk_stale_after_s: float = Field(default=600.0, gt=0)
    risk_qty_step: Decimal = Field(default=Decimal("0.00001"), gt=0)
    risk_min_notional: Decimal = Field(default=Decimal("10"), ge=0)
    risk_price_decimals: int = Field(default=8, ge=0, le=18)
    """Fill prices are rounded to 10^-n (8 suits USDT and BTC quotes alike)."""
    risk_quote_decimals: int = Field(default=8, ge=0, le=18)
    """Notionals, fees, cash and P&L are rounded to 10^-n (see precision.py)."""
    risk_deliver_policy: Literal["all", "new"] = "all"
    """Where a brand-new risk consumer starts: the whole stream, or only what arrives after it."""
    risk_bars_batch: int = Field(default=1000, ge=1)
    """1m bars per consumed batch; a new durable lets 20 times as many wait unacked, which bounds
    the bars the replay merge can hold back (the server stops sending until some are applied)."""
    risk_watermark_hold_s: float = Field(default=60.0, gt=0)
    """How long a silent stream (a symbol's bars or signals) may hold the global event-time order
    back; then it is excused, the others go on, and what it delivers behind them is late (see
    `merge`). Readiness names the streams holding or excused."""
    risk_breaker_fill_failures: int = Field(default=3, ge=1)
    """Consecutive paper-fill failures of a symbol that trip its circuit breaker (`breaker`)."""
    risk_breaker_cooldown_s: float = Field(default=1800.0, gt=0)
    """Event-time seconds a tripped breaker stays open before it lets one probe entry through."""
    risk_breaker_equity_drop_pct: Decimal = Field(default=Decimal("0.05"), gt=0, le=1)
    """A fall of equity by this fraction from its last high, within the window, trips ACCOUNT."""
    risk_breaker_equity_window_s: float = Field(default=3600.0, gt=0)
    risk_readiness_degraded: Literal["trade", "block"] = "trade"
    """What a live entry does while telemetry's readiness is DEGRADED (`gate`): trade (flagged) or not."""
    risk_readiness_max_age_s: float = Field(default=180.0, gt=0)
    """A readiness report older than this is no longer believed (telemetry publishes every 60 s)."""
    tradebus_api_token: SecretStr | None = None

    @field_validator("risk_balances", "risk_min_notionals", mode="before")
    @classmethod
    def _asset_amounts(cls, value: object) -> object:
        """`ASSET=amount,...` as ((asset, amount), ...) in the order given."""
        if not isinstance(value, str):
            return value
        pairs = []
        for part in (p.strip() for p in value.split(",") if p.strip()):
            asset, _, amount = part.partition("=")
            asset = asset.strip().upper()
            try:
                number = Decimal(amount.strip())
            except InvalidOperation:
                number = None
            if not asset.isalnum() or number is None or not number.is_finite():
                raise ValueError(f"expected ASSET=amount like USDT=10000, got {part!r}")
            pairs.append((asset, number))
        return tuple(pairs)

    def limits(self) -> RiskLimits:
        """The limits the pure modules work with (no I/O, no environment)."""
        return RiskLimits(
            initial_balance=self.risk_initial_balance,
            per_trade=self.risk_per_trade,
            max_position_pct=self.risk_max_position_pct,
            max_open_positions=self.risk_max_open_positions,
            max_daily_loss_pct=self.risk_max_daily_loss_pct,
            max_drawdown_pct=self.risk_max_drawdown_pct,
            min_rr=self.risk_min_rr,
            fee_rate=self.risk_fee_rate,
            slippage_bps=self.risk_slippage_bps,
            stale_after_s=self.risk_stale_after_s,
            qty_step=self.risk_qty_step,
            min_notional=self.risk_min_notional,
            price_decimals=self.risk_price_decimals,
            quote_decimals=self.risk_quote_decimals,
            balances=self.risk_balances,
            min_notionals=self.risk_min_notionals,
            max_exposure_pct=self.risk_max_exposure_pct,
            max_correlated_pct=self.risk_max_correlated_pct,
            correlation_threshold=self.risk_correlation_threshold,
            correlation_step_m=self.risk_correlation_step_m,
            correlation_window=self.risk_correlation_window,
            stale_feed_h=self.risk_stale_feed_h,
            order_expiry_s=self.risk_order_expiry_s,
        )

    def breaker_limits(self) -> BreakerLimits:
        return BreakerLimits(
            fill_failures=self.risk_breaker_fill_failures,
            cooldown=timedelta(seconds=self.risk_breaker_cooldown_s),
            equity_drop_pct=self.risk_breaker_equity_drop_pct,
            equity_window=timedelta(seconds=self.risk_breaker_equity_window_s),
        )
