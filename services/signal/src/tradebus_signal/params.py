"""The signal model's parameters: one frozen value, hashed into every signal it produces."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

MODEL_VERSION: Final = "consensus-v1"


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Everything that shapes a signal; change any of it and `model_hash` changes too."""

    # indicator periods (TA-Lib's conventional defaults)
    ema_fast: int = 12
    ema_slow: int = 26
    sma: int = 20
    rsi: int = 14
    macd_signal: int = 9
    atr: int = 14
    bb_period: int = 20
    bb_width: float = 2.0
    volatility: int = 20
    # per-horizon scoring: weights of the four components and how they are normalised
    weight_trend: float = 0.35
    weight_momentum: float = 0.25
    weight_rsi: float = 0.2
    weight_bollinger: float = 0.2
    trend_scale: float = 1.0
    """EMA fast - slow, in ATRs, that gives a trend component of tanh(1)."""
    momentum_scale: float = 0.25
    """MACD histogram, in ATRs, that gives a momentum component of tanh(1)."""
    rsi_span: float = 20.0
    """RSI points from 50 that saturate the RSI component (50 ± 20 = 30/70)."""
    rsi_overbought: float = 70.0
    rsi_oversold: float = 30.0
    direction_threshold: float = 0.15
    incomplete_penalty: float = 0.5
    """Quality lost when every bar in the warm-up window had missing minutes."""
    # consensus and state
    buy_threshold: float = 0.15
    strong_threshold: float = 0.45
    strong_agreement: float = 0.75
    # trade plan
    stop_atr_multiple: Decimal = Decimal("2")
    target_multiples: tuple[Decimal, ...] = (Decimal("1.5"), Decimal("2.5"))
    swing_lookback: int = 20
    swing_max_multiple: Decimal = Decimal("3")

    @property
    def warmup(self) -> int:
        """Bars a horizon needs before every indicator has a value (MACD's lookback + 1)."""
        return max(
            self.ema_slow + self.macd_signal - 1,
            self.ema_fast,
            self.sma,
            self.rsi + 1,
            self.atr + 1,
            self.bb_period,
            self.volatility + 1,
        )

    def canonical_json(self) -> str:
        """Sorted keys, no spaces, decimals as strings: the same parameters give the same bytes."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"), default=str)

    @property
    def model_hash(self) -> str:
        return _hash_of(self)


@functools.cache
def _hash_of(params: ModelParams) -> str:
    """Computed once per parameter set: it was 9-13% of signal's time when done per signal."""
    return hashlib.sha256(params.canonical_json().encode()).hexdigest()
