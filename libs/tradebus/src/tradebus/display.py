"""Numbers as a trader reads them, for text meant for people (the CLI, a signal's explanation):
prices on the symbol's tick, ratios to a few decimals. Display only: the structured fields of
events and APIs keep the exact decimals money is computed with (a stop of 33568.45472040090
sizes the position; `33568.45` is what a person reads)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

MIN_PRICE_PLACES: Final = 2
RATIO_PLACES: Final = 4


def _decimal(value: object) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def tick_of(reference_price: object) -> Decimal:
    """The tick a symbol's prices are quoted on, as its bar prices show it (trailing zeros, as
    Binance pads them, do not count), and never coarser than a cent."""
    number = _decimal(reference_price)
    exponent = number.normalize().as_tuple().exponent if number is not None else -MIN_PRICE_PLACES
    places = max(MIN_PRICE_PLACES, -exponent if isinstance(exponent, int) else MIN_PRICE_PLACES)
    return Decimal(1).scaleb(-places)


def price(value: object, tick: Decimal) -> str:
    """`value` rounded to `tick` (half to even); anything not a number is shown as it is."""
    number = _decimal(value)
    return str(value) if number is None else str(number.quantize(tick, rounding=ROUND_HALF_EVEN))


def ratio(value: object, places: int = RATIO_PLACES) -> str:
    """A ratio (confidence, agreement, risk/reward, win rate) to `places` decimals."""
    number = _decimal(value)
    return str(value) if number is None else str(number.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN))
