"""The trade plan: entry at the close, an ATR stop, targets in multiples of the stop distance,
the first one moved to a recent swing high (long) or low (short) when one lies in reach."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tradebus.events import Bar, Direction, TradePlan
from tradebus_signal.params import ModelParams


@dataclass(frozen=True, slots=True)
class Plan:
    plan: TradePlan
    swing_target: bool


def trade_plan(
    direction: Direction, entry: Decimal, atr: Decimal, recent: Sequence[Bar], params: ModelParams
) -> Plan | None:
    """None for a flat direction, a missing ATR, or a long stop that would fall to zero."""
    if direction is Direction.FLAT or atr <= 0:
        return None
    sign = 1 if direction is Direction.LONG else -1
    risk = params.stop_atr_multiple * atr
    stop = entry - sign * risk
    if stop <= 0:
        return None
    targets = [entry + sign * m * risk for m in params.target_multiples]
    swing = _swing_level(direction, recent[-params.swing_lookback :])
    reach = entry + sign * params.swing_max_multiple * risk
    used_swing = swing is not None and sign * (swing - targets[0]) >= 0 and sign * (reach - swing) >= 0
    if used_swing:
        assert swing is not None
        targets = [swing, *(t for t in targets if sign * (t - swing) > 0)]
    risk_reward = sign * (targets[0] - entry) / risk
    return Plan(TradePlan.model_construct(entry=entry, stop=stop, targets=targets, risk_reward=risk_reward), used_swing)


def _swing_level(direction: Direction, bars: Sequence[Bar]) -> Decimal | None:
    """The resistance (highest high) or support (lowest low) of the recent bars."""
    if not bars:
        return None
    if direction is Direction.LONG:
        return max(b.high for b in bars)
    return min(b.low for b in bars)
