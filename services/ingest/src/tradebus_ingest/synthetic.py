"""A seeded, reproducible 1m bar generator for demos, tests and offline runs.

Each bar is a pure function of `(seed, symbol, open_ms, previous close)`: its random numbers
come from a `random.Random` seeded with exactly those, so a restart that knows the last close
resumes the identical path. The path is a geometric random walk whose drift and volatility
follow slowly changing regimes (smoothly interpolated between random knots a few hours apart,
themselves functions of `(seed, symbol, time)` only), so trends last hours and a
trend-following strategy has something to trade. A weak pull towards the starting price keeps
a path that runs for months from wandering off to zero or infinity.

Every path starts at a UTC midnight (`close_before`), whatever minute a history begins at, so two
stacks started on the same day with the same seed (`INGEST_SEED`) show the same prices.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Final

from tradebus.events import Bar, BarSource, make_bar
from tradebus.timeframes import MINUTE_MS

TICK: Final = Decimal("0.01")
STEP: Final = Decimal("0.00001")
START_PRICES: Final[dict[str, Decimal]] = {"BTCUSDT": Decimal("30000"), "ETHUSDT": Decimal("2000")}
DEFAULT_START_PRICE: Final = Decimal("100")

_HOUR_MS: Final = 60 * MINUTE_MS
_DAY_MS: Final = 24 * _HOUR_MS
# Regime knots: drift changes over a few hours (trends), a slower drift component over a day,
# volatility over half a day.
_FAST_DRIFT_KNOT_MS: Final = 3 * _HOUR_MS
_SLOW_DRIFT_KNOT_MS: Final = 18 * _HOUR_MS
_VOL_KNOT_MS: Final = 8 * _HOUR_MS
_FAST_DRIFT_SD: Final = 4e-5  # per minute: ~1-3 % over a few hours of trend
_SLOW_DRIFT_SD: Final = 1.5e-5
_BASE_VOL: Final = 6e-4  # per-minute sigma, ~43 % annualised
_MEAN_REVERSION: Final = 1.0 / (20 * 1_440)  # pull towards the start price, ~20 day horizon
_SUBSTEPS: Final = 6  # intra-minute path points that shape high and low
_QUOTE_PER_MINUTE: Final = 400_000.0  # typical traded value per minute, in quote currency
_AVG_TRADE_QUOTE: Final = 600.0


def start_price(symbol: str) -> Decimal:
    """Where a symbol's synthetic path begins."""
    return START_PRICES.get(symbol, DEFAULT_START_PRICE)


@functools.lru_cache(maxsize=4096)
def _knot(seed: int, symbol: str, kind: str, index: int) -> float:
    """A standard normal draw fixed by (seed, symbol, kind, knot index)."""
    return random.Random(f"{seed}:{symbol}:{kind}:{index}").gauss(0.0, 1.0)


def _smooth(seed: int, symbol: str, kind: str, t_ms: int, spacing_ms: int) -> float:
    """Cosine interpolation between the knots around `t_ms`: a slowly varying N(0,1) process."""
    index, offset = divmod(t_ms, spacing_ms)
    weight = (1 - math.cos(math.pi * offset / spacing_ms)) / 2
    return (1 - weight) * _knot(seed, symbol, kind, index) + weight * _knot(seed, symbol, kind, index + 1)


@dataclass(frozen=True, slots=True)
class Regime:
    """Per-minute log drift and volatility in force at one minute."""

    drift: float
    volatility: float


def regime(seed: int, symbol: str, open_ms: int) -> Regime:
    """The drift/volatility regime at `open_ms` (independent of the price path)."""
    fast = _smooth(seed, symbol, "drift-fast", open_ms, _FAST_DRIFT_KNOT_MS)
    slow = _smooth(seed, symbol, "drift-slow", open_ms, _SLOW_DRIFT_KNOT_MS)
    vol = _smooth(seed, symbol, "vol", open_ms, _VOL_KNOT_MS)
    # Strong trends: cube the fast component (keeps the sign, fattens the tails).
    drift = _FAST_DRIFT_SD * fast * abs(fast) + _SLOW_DRIFT_SD * slow
    return Regime(drift=drift, volatility=_BASE_VOL * math.exp(0.4 * vol))


def _price(value: float, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    return max(TICK, Decimal(value).quantize(TICK, rounding=rounding))


def next_bar(seed: int, symbol: str, open_ms: int, prev_close: Decimal) -> Bar:
    """The 1m bar opening at `open_ms` that follows a bar closing at `prev_close`."""
    if open_ms % MINUTE_MS:
        raise ValueError(f"open time {open_ms} is not on a minute boundary")
    rng = random.Random(f"{seed}:{symbol}:{open_ms}:{prev_close}")
    reg = regime(seed, symbol, open_ms)
    anchor = math.log(float(start_price(symbol)))
    drift = reg.drift - _MEAN_REVERSION * (math.log(float(prev_close)) - anchor)
    step_sd = reg.volatility / math.sqrt(_SUBSTEPS)
    open_f = float(prev_close)
    log_price = math.log(open_f)
    path = [open_f]
    for _ in range(_SUBSTEPS):
        log_price += drift / _SUBSTEPS + rng.gauss(0.0, step_sd)
        path.append(math.exp(log_price))
    wick = reg.volatility * 0.3
    open_ = prev_close
    close = _price(path[-1])
    high = max(_price(max(path) * (1 + abs(rng.gauss(0.0, wick))), ROUND_CEILING), open_, close)
    low = min(_price(min(path) * (1 - abs(rng.gauss(0.0, wick))), ROUND_FLOOR), open_, close)
    move = abs(path[-1] / open_f - 1) / reg.volatility
    quote_target = _QUOTE_PER_MINUTE * (reg.volatility / _BASE_VOL) * (0.5 + move) * rng.lognormvariate(0.0, 0.5)
    volume = max(STEP, Decimal(quote_target / open_f).quantize(STEP, rounding=ROUND_DOWN))
    average_price = _price(float(low) + rng.random() * float(high - low))
    average_price = min(max(average_price, low), high)
    quote_volume = volume * average_price  # exact: 5 + 2 decimal places
    trades = max(1, int(float(quote_volume) / (_AVG_TRADE_QUOTE * rng.uniform(0.5, 1.5))))
    return make_bar(symbol, "1m", open_ms, open_, high, low, close, volume, quote_volume, trades, BarSource.SYNTHETIC)


def bars_between(seed: int, symbol: str, first_open_ms: int, last_open_ms: int, prev_close: Decimal) -> Iterator[Bar]:
    """Every bar from `first_open_ms` to `last_open_ms` inclusive, chaining the closes."""
    close = prev_close
    for open_ms in range(first_open_ms, last_open_ms + 1, MINUTE_MS):
        bar = next_bar(seed, symbol, open_ms, close)
        close = bar.close
        yield bar


def close_before(seed: int, symbol: str, first_open_ms: int) -> Decimal:
    """The close a history beginning at `first_open_ms` follows: its path starts at the symbol's
    start price at the UTC midnight on or before that minute (at most a day of bars to compute)."""
    close = start_price(symbol)
    for bar in bars_between(seed, symbol, first_open_ms - first_open_ms % _DAY_MS, first_open_ms - MINUTE_MS, close):
        close = bar.close
    return close
