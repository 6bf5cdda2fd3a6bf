"""Paper-exchange price arithmetic: slippage, fees and when a bar triggers a stop or a target.

Market orders fill at a bar's open moved against us by the slippage. A stop or target exit
fills at its trigger price (with slippage) — except when the bar *opens* beyond it (a gap): a
stop then fills at the worse open and a target at the better open, which is what a resting
stop-market / limit order would get. When one bar touches both the stop and the first target
we cannot know which came first, so the stop wins (the conservative assumption).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from tradebus.events import Bar, Side

_BPS = Decimal(10_000)


def slipped(price: Decimal, side: Side, slippage_bps: Decimal) -> Decimal:
    """`price` moved against the taker: up for a buy, down for a sell."""
    move = price * slippage_bps / _BPS
    return price + move if side is Side.BUY else price - move


def fee(quantity: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    """The exchange fee on one fill: a fraction of its notional."""
    return quantity * price * rate


def quantise_down(quantity: Decimal, step: Decimal) -> Decimal:
    """`quantity` rounded down to a whole number of `step`s (never buy more than sized)."""
    return (quantity / step).to_integral_value(rounding=ROUND_DOWN) * step


@dataclass(frozen=True, slots=True)
class ExitTrigger:
    reason: Literal["stop", "target"]
    price: Decimal
    """The price before slippage."""


def exit_trigger(bar: Bar, stop: Decimal | None, target: Decimal | None) -> ExitTrigger | None:
    """Whether `bar` hits the long position's stop or first target; the stop first when both."""
    if stop is not None and bar.low <= stop:
        return ExitTrigger("stop", min(stop, bar.open))
    if target is not None and bar.high >= target:
        return ExitTrigger("target", max(target, bar.open))
    return None
