"""Incremental technical indicators, O(1) per closed bar, numerically equal to TA-Lib's.

Each indicator replays TA-Lib's own arithmetic (same seeding, same running sums, same order of
operations) so that a value computed bar by bar equals `talib.<FUNC>` on the whole series to
float precision. Floats are fine here: indicators are features, not money; the domain converts
them to `Decimal` at its edge. A value is `None` until the indicator has its lookback.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


class Sma:
    """Simple moving average with TA-Lib's running total (add the new value, emit, drop the oldest)."""

    def __init__(self, period: int) -> None:
        self.period = period
        self._window: deque[float] = deque()
        self._total = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        self._window.append(x)
        self._total += x
        if len(self._window) == self.period:
            self.value = self._total / self.period
            self._total -= self._window.popleft()
        return self.value


class Ema:
    """Exponential moving average, k = 2/(N+1), seeded with the SMA of the first N values."""

    def __init__(self, period: int) -> None:
        self.period = period
        self._k = 2.0 / (period + 1)
        self._seed: list[float] = []
        self.value: float | None = None

    def seed(self, value: float) -> None:
        """Start from `value` (TA-Lib's MACD seeds its fast EMA late, from a different window)."""
        self._seed.clear()
        self.value = value

    def update(self, x: float) -> float | None:
        if self.value is not None:
            self.value = ((x - self.value) * self._k) + self.value
            return self.value
        self._seed.append(x)
        if len(self._seed) == self.period:
            self.seed(sum(self._seed) / self.period)
        return self.value


class Rsi:
    """Wilder's RSI as TA-Lib computes it: averages seeded with the mean of the first N moves."""

    def __init__(self, period: int) -> None:
        self.period = period
        self._prev: float | None = None
        self._moves = 0
        self._gain = 0.0
        self._loss = 0.0
        self.value: float | None = None

    @property
    def flat(self) -> bool:
        """True when the window had no price move at all (TA-Lib then reports RSI 0)."""
        return self.value is not None and self._gain + self._loss == 0.0

    def update(self, x: float) -> float | None:
        prev, self._prev = self._prev, x
        if prev is None:
            return None
        move = x - prev
        self._moves += 1
        n = self.period
        if self._moves <= n:
            if move < 0:
                self._loss -= move
            else:
                self._gain += move
            if self._moves < n:
                return None
            self._loss /= n
            self._gain /= n
        else:
            self._loss *= n - 1
            self._gain *= n - 1
            if move < 0:
                self._loss -= move
            else:
                self._gain += move
            self._loss /= n
            self._gain /= n
        total = self._gain + self._loss
        self.value = 100.0 * (self._gain / total) if total != 0.0 else 0.0
        return self.value


def true_range(high: float, low: float, prev_close: float) -> float:
    """TA-Lib's TRANGE: the largest of high-low, |prev close-high| and |prev close-low|."""
    greatest = high - low
    up = abs(prev_close - high)
    greatest = max(greatest, up)
    down = abs(prev_close - low)
    greatest = max(greatest, down)
    return greatest


class Atr:
    """Wilder's average true range: the SMA of the first N true ranges, then Wilder smoothing."""

    def __init__(self, period: int) -> None:
        self.period = period
        self._prev_close: float | None = None
        self._first = Sma(period)
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        prev_close, self._prev_close = self._prev_close, close
        if prev_close is None:
            return None
        tr = true_range(high, low, prev_close)
        if self.value is None:
            self.value = self._first.update(tr)
        else:
            self.value = (self.value * (self.period - 1) + tr) / self.period
        return self.value


@dataclass(frozen=True, slots=True)
class MacdValue:
    macd: float
    signal: float
    hist: float


class Macd:
    """TA-Lib's MACD, including its quirk: the fast EMA is seeded when the slow one is, with
    the SMA of the last `fast` values (not the first), so it differs from a plain EMA(fast)."""

    def __init__(self, fast: int, slow: int, signal: int) -> None:
        self._recent: deque[float] = deque(maxlen=fast)
        self._fast = Ema(fast)
        self._slow = Ema(slow)
        self._signal = Ema(signal)
        self.value: MacdValue | None = None

    def update(self, x: float) -> MacdValue | None:
        self._recent.append(x)
        if self._slow.value is None:
            if self._slow.update(x) is None:
                return None
            self._fast.seed(sum(self._recent) / len(self._recent))
        else:
            self._slow.update(x)
            self._fast.update(x)
        assert self._fast.value is not None and self._slow.value is not None
        line = self._fast.value - self._slow.value
        signal = self._signal.update(line)
        if signal is not None:
            self.value = MacdValue(line, signal, line - signal)
        return self.value


class RollingVariance:
    """Population variance over N values with TA-Lib's running sums (E[x²] - E[x]²)."""

    def __init__(self, period: int) -> None:
        self.period = period
        self._window: deque[float] = deque()
        self._sum = 0.0
        self._sum_sq = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        self._window.append(x)
        self._sum += x
        self._sum_sq += x * x
        if len(self._window) == self.period:
            mean = self._sum / self.period
            mean_sq = self._sum_sq / self.period
            old = self._window.popleft()
            self._sum -= old
            self._sum_sq -= old * old
            self.value = mean_sq - mean * mean
        return self.value


def _sqrt_or_zero(variance: float) -> float:
    return math.sqrt(variance) if variance > 0.0 else 0.0


@dataclass(frozen=True, slots=True)
class BandsValue:
    upper: float
    middle: float
    lower: float


class Bollinger:
    """TA-Lib's BBANDS with an SMA middle: population stdev from the running sum of squares
    minus the squared SMA, bands at middle ± k·stdev."""

    def __init__(self, period: int, width: float) -> None:
        self.period = period
        self.width = width
        self._middle = Sma(period)
        self._window: deque[float] = deque()
        self._sum_sq = 0.0
        self.value: BandsValue | None = None

    def update(self, x: float) -> BandsValue | None:
        middle = self._middle.update(x)
        self._window.append(x)
        self._sum_sq += x * x
        if middle is None:
            return None
        mean_sq = self._sum_sq / self.period
        old = self._window.popleft()
        self._sum_sq -= old * old
        offset = _sqrt_or_zero(mean_sq - middle * middle) * self.width
        self.value = BandsValue(middle + offset, middle, middle - offset)
        return self.value


class Volatility:
    """Population stdev of 1-bar returns (TA-Lib STDDEV over ROCP(1)); also keeps the last return."""

    def __init__(self, period: int) -> None:
        self._prev: float | None = None
        self._variance = RollingVariance(period)
        self.last_return: float | None = None
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        prev, self._prev = self._prev, x
        if prev is None:
            return None
        self.last_return = (x - prev) / prev if prev != 0.0 else 0.0
        variance = self._variance.update(self.last_return)
        if variance is not None:
            self.value = _sqrt_or_zero(variance)
        return self.value
