"""The trade plan: entry at the close, an ATR stop, targets in multiples of the stop distance,
the first one moved to a recent swing high (long) or low (short) when one lies in reach.

Orders are placed on the symbol's tick, so the plan is too: the stop and the targets are rounded
to the nearest tick of the one the entry (a close) is quoted on, never onto the entry itself.
The risk/reward is the model's ratio (its target multiple, or the swing's), to 4 decimals: the
rounding moves a level by half a tick at most, and a ratio nudged under its multiple by it would
turn away every plan at a minimum equal to that multiple (risk's default 1.5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from tradebus.display import tick_of
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
    risk_reward = (sign * (targets[0] - entry) / risk).quantize(RR_STEP, rounding=ROUND_HALF_EVEN)
    tick = tick_of(entry)
    stop = _on_tick(stop, tick, entry)
    if stop <= 0:
        return None
    targets = list(dict.fromkeys(_on_tick(t, tick, entry) for t in targets))  # rounding may merge two
    return Plan(TradePlan.model_construct(entry=entry, stop=stop, targets=targets, risk_reward=risk_reward), used_swing)


RR_STEP = Decimal("0.0001")


def _on_tick(level: Decimal, tick: Decimal, entry: Decimal) -> Decimal:
    """`level` on the nearest tick, but at least one tick from the entry (on its side)."""
    rounded = level.quantize(tick, rounding=ROUND_HALF_EVEN)
    return max(rounded, entry + tick) if level > entry else min(rounded, entry - tick)


def _swing_level(direction: Direction, bars: Sequence[Bar]) -> Decimal | None:
    """The resistance (highest high) or support (lowest low) of the recent bars."""
    if not bars:
        return None
    if direction is Direction.LONG:
        return max(b.high for b in bars)
    return min(b.low for b in bars)
