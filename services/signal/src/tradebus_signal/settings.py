"""The signal service's environment: its horizons, state window and model parameters."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Final

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from tradebus.settings import Settings
from tradebus.timeframes import Interval
from tradebus_signal.params import ModelParams

HORIZONS: Final[tuple[Interval, ...]] = ("5m", "15m", "1h", "4h", "1d")
MAX_BAR_LIMIT: Final = 1000
_DEFAULTS: Final = ModelParams()


def _split(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class SignalSettings(Settings):
    signal_horizons: Annotated[tuple[Interval, ...], NoDecode] = ("5m", "15m", "1h", "4h")
    """SIGNAL_HORIZONS: the first one is the base horizon, whose every closed bar gets a signal."""
    signal_window_bars: int = Field(default=MAX_BAR_LIMIT, ge=100, le=10_000)
    """Bars kept per (symbol, horizon), in memory and in the database, to rebuild indicators
    and to serve `POST /v1/signal` (whose bar_limit goes up to 1000)."""
    signal_buy_threshold: float = Field(default=_DEFAULTS.buy_threshold, gt=0, lt=1)
    signal_strong_threshold: float = Field(default=_DEFAULTS.strong_threshold, gt=0, lt=1)
    signal_strong_agreement: float = Field(default=_DEFAULTS.strong_agreement, ge=0, le=1)
    signal_stop_atr_multiple: Decimal = Field(default=_DEFAULTS.stop_atr_multiple, gt=0)
    signal_target_multiples: Annotated[tuple[Decimal, ...], NoDecode] = _DEFAULTS.target_multiples
    signal_swing_lookback: int = Field(default=_DEFAULTS.swing_lookback, ge=1, le=MAX_BAR_LIMIT)

    @field_validator("signal_horizons", mode="before")
    @classmethod
    def _horizons(cls, value: object) -> object:
        value = _split(value)
        if isinstance(value, tuple | list):
            bad = [h for h in value if h not in HORIZONS]
            if bad or not value or len(set(value)) != len(value):
                raise ValueError(f"SIGNAL_HORIZONS must be distinct horizons among {', '.join(HORIZONS)}; got {value}")
        return value

    @field_validator("signal_target_multiples", mode="before")
    @classmethod
    def _targets(cls, value: object) -> object:
        return _split(value)

    @field_validator("signal_target_multiples")
    @classmethod
    def _ascending(cls, value: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
        if not value or any(m <= 0 for m in value) or list(value) != sorted(set(value)):
            raise ValueError("SIGNAL_TARGET_MULTIPLES must be positive and strictly ascending, e.g. 1.5,2.5")
        return value

    def model_params(self) -> ModelParams:
        if self.signal_strong_threshold < self.signal_buy_threshold:
            raise ValueError("SIGNAL_STRONG_THRESHOLD must not be below SIGNAL_BUY_THRESHOLD")
        return ModelParams(
            buy_threshold=self.signal_buy_threshold,
            strong_threshold=self.signal_strong_threshold,
            strong_agreement=self.signal_strong_agreement,
            stop_atr_multiple=self.signal_stop_atr_multiple,
            target_multiples=self.signal_target_multiples,
            swing_lookback=self.signal_swing_lookback,
        )
