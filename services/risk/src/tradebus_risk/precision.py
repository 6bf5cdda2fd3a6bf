"""The money policy: every price, quantity and quote amount the book stores or publishes is
quantised here, each rounded in a stated direction, so that the books balance exactly.

- Fill prices: a whole number of price ticks (`RISK_PRICE_DECIMALS`, default 8 — fine enough
  for symbols quoted in BTC such as ADABTC); the slippage is rounded against the trader (a buy
  up, a sell down).
- Quantities: rounded down to `RISK_QTY_STEP` (never buy more than sized or affordable).
- Quote amounts (`RISK_QUOTE_DECIMALS`, default 8): a buy's notional is rounded up and a sell's
  down (against the trader), a fee up (in the exchange's favour); a mark-to-market value to
  the nearest (half even). Gross P&L is exit notional minus entry notional, so with every term
  already on the quote grid the identities hold to the last digit:
  cash = initial + realised - fees - entry notional of the open positions, and
  net = gross - fees for every trade.
- `accounting()` is the context the book adds and subtracts amounts in: it traps any rounding,
  so an amount that would silently lose a digit (Python's default context keeps 28) fails loudly.
"""

from __future__ import annotations

import decimal
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from tradebus.events import Side

_BPS = Decimal(10_000)
_ROUNDING = decimal.Context(prec=60)
"""Where quantisation itself rounds (on purpose, in the stated direction; no traps)."""
_EXACT = decimal.Context(
    prec=60,
    traps=[decimal.Inexact, decimal.Rounded, decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


def accounting() -> AbstractContextManager[decimal.Context]:
    """Decimal arithmetic that may not round: amounts already on the grid add up exactly.

    The context manager itself, not a generator around it: the book enters one per bar."""
    return decimal.localcontext(_EXACT)


@dataclass(frozen=True, slots=True)
class MoneyPolicy:
    """The grids of one account: price tick, quantity step and quote step."""

    price_decimals: int = 8
    quote_decimals: int = 8
    qty_step: Decimal = Decimal("0.00001")

    @property
    def price_tick(self) -> Decimal:
        return Decimal(1).scaleb(-self.price_decimals)

    @property
    def quote_step(self) -> Decimal:
        return Decimal(1).scaleb(-self.quote_decimals)

    def fill_price(self, price: Decimal, side: Side, slippage_bps: Decimal) -> Decimal:
        """`price` moved against the taker by the slippage, rounded to a tick against the taker too."""
        move = _ROUNDING.divide(_ROUNDING.multiply(price, slippage_bps), _BPS)
        if side is Side.BUY:
            return _quantise(price + move, self.price_tick, ROUND_CEILING)
        return _quantise(price - move, self.price_tick, ROUND_FLOOR)

    def quantity(self, quantity: Decimal) -> Decimal:
        """`quantity` rounded down to a whole number of steps."""
        return _quantise(_ROUNDING.divide(quantity, self.qty_step), Decimal(1), ROUND_FLOOR) * self.qty_step

    def notional(self, quantity: Decimal, price: Decimal, side: Side) -> Decimal:
        """What a fill costs (buy, rounded up) or brings (sell, rounded down), in quote units."""
        rounding = ROUND_CEILING if side is Side.BUY else ROUND_FLOOR
        return _quantise(_ROUNDING.multiply(quantity, price), self.quote_step, rounding)

    def fee(self, notional: Decimal, rate: Decimal) -> Decimal:
        """The exchange fee on a notional, rounded up (the exchange's favour)."""
        return _quantise(_ROUNDING.multiply(notional, rate), self.quote_step, ROUND_CEILING)

    def value(self, quantity: Decimal, price: Decimal) -> Decimal:
        """A holding marked at `price`, to the nearest quote step (a valuation, not a cash flow)."""
        return _quantise(_ROUNDING.multiply(quantity, price), self.quote_step, ROUND_HALF_EVEN)


def plain(value: Decimal) -> str:
    """`value` as text that does not depend on its exponent: 10000 loaded from PostgreSQL is
    `1E+4`, 10000 x 0.004 is `40.000`; an audit detail must read the same before and after a
    restart (`plain` gives `10000` and `40`)."""
    return format(value.normalize(), "f")


def _quantise(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    """`value` on the grid of `step`, without trailing zeros (published as "100.05", not "100.05000000")."""
    on_grid = value.quantize(step, rounding=rounding, context=_ROUNDING)
    tidy = on_grid.normalize(_ROUNDING)
    exponent = tidy.as_tuple().exponent
    return tidy.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else tidy
