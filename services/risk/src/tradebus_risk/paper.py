"""Paper-exchange trigger logic: when a bar triggers a stop or a target, and at what price.

Market orders fill at a bar's open moved against us by the slippage (`precision.MoneyPolicy.
fill_price`). A stop or target exit fills at its trigger price (with slippage) — except when the
bar *opens* beyond it (a gap): a stop then fills at the worse open and a target at the better
open, which is what a resting stop-market / limit order would get. When one bar touches both the
stop and the first target we cannot know which came first, so the stop wins (the conservative
assumption).
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
    """Whether `bar` hits the long position's stop or first target; the stop first when both."""
    if stop is not None and bar.low <= stop:
        return ExitTrigger("stop", min(stop, bar.open))
    if target is not None and bar.high >= target:
        return ExitTrigger("target", max(target, bar.open))
    return None
