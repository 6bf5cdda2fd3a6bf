"""Paper-exchange trigger logic: when a bar triggers a stop or a target, and at what price.

Market orders fill at a bar's open moved against us by the slippage (`precision.MoneyPolicy.
fill_price`). A stop or target exit fills at its trigger price (with slippage), except when the
bar OPENS beyond it (a gap): the open is the first price there is, so a bar opening at or below
the stop fills the stop at the open, and one opening at or above the target fills the target at
the open, whatever the bar does next. Only when the open lies between the two and the bar then
touches both can we not know which came first: the stop wins (the conservative assumption).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from tradebus_risk.inbound import BarFacts


@dataclass(frozen=True, slots=True)
class ExitTrigger:
    reason: Literal["stop", "target"]
    price: Decimal
    """The price before slippage."""


def exit_trigger(bar: BarFacts, stop: Decimal | None, target: Decimal | None) -> ExitTrigger | None:
    """Whether `bar` hits the long position's stop or first target (see the module docstring)."""
    if stop is not None and bar.open <= stop:
        return ExitTrigger("stop", bar.open)
    if target is not None and bar.open >= target:
        return ExitTrigger("target", bar.open)
    if stop is not None and bar.low <= stop:
        return ExitTrigger("stop", stop)
    if target is not None and bar.high >= target:
        return ExitTrigger("target", target)
    return None
