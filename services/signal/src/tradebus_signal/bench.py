"""Figure 4 of `tradebus bench`: the engine's incremental indicator update against TA-Lib batch.

The service updates every indicator of a (symbol, horizon) series in O(1) when a bar closes;
the alternative is recomputing them with TA-Lib over the series. Both are timed on the same
seeded series: tradebus per bar update for 4 horizons (one `IndicatorBank` per horizon, as the
engine keeps them), TA-Lib as the whole-series batch cost divided by its length (its best case:
a live recompute would pay a window's worth on every bar, see `talib_window_us`).
"""

from __future__ import annotations

import math
import random

import numpy as np
import talib

from tradebus.bench import BenchEnv, Figure, stopwatch
from tradebus_signal.features import IndicatorBank
from tradebus_signal.params import ModelParams

HORIZONS = 4
FULL_BARS = 200_000
SMOKE_BARS = 5_000
WINDOW = 500
"""Bars a live TA-Lib recompute would take on each close (the engine's default window)."""


def _series(count: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random walk: high, low, close (float64, as TA-Lib wants them)."""
    rng = random.Random(seed)
    close = np.empty(count)
    high = np.empty(count)
    low = np.empty(count)
    price = 100.0
    for i in range(count):
        price *= math.exp(rng.gauss(0.0, 0.002))
        close[i] = price
        high[i] = price * (1 + abs(rng.gauss(0.0, 0.001)))
        low[i] = price * (1 - abs(rng.gauss(0.0, 0.001)))
    return high, low, close


def _talib_all(params: ModelParams, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> None:
    """The same indicator set the bank keeps, computed by TA-Lib's batch functions."""
    talib.EMA(close, params.ema_fast)
    talib.EMA(close, params.ema_slow)
    talib.SMA(close, params.sma)
    talib.RSI(close, params.rsi)
    talib.MACD(close, params.ema_fast, params.ema_slow, params.macd_signal)
    talib.ATR(high, low, close, params.atr)
    talib.BBANDS(close, params.bb_period, params.bb_width, params.bb_width)
    talib.STDDEV(talib.ROCP(close, 1), params.volatility)


async def bench(env: BenchEnv) -> list[Figure]:
    params = ModelParams()
    count = SMOKE_BARS if env.smoke else FULL_BARS
    high, low, close = _series(count)
    rows = list(zip(high.tolist(), low.tolist(), close.tolist(), strict=True))
    banks = [IndicatorBank(params) for _ in range(HORIZONS)]
    with stopwatch() as incremental:
        for h, lo, c in rows:
            for bank in banks:
                bank.update(h, lo, c)
            for bank in banks:
                bank.snapshot()
    with stopwatch() as batch:
        for _ in range(HORIZONS):
            _talib_all(params, high, low, close)
    window = (high[-WINDOW:], low[-WINDOW:], close[-WINDOW:])
    repeats = 200
    with stopwatch() as windowed:
        for _ in range(repeats):
            for _ in range(HORIZONS):
                _talib_all(params, *window)
    tradebus_us = incremental() / count * 1e6
    talib_us = batch() / count * 1e6
    return [
        Figure(
            key="indicators",
            label=f"Indicators: per-bar update, {HORIZONS} horizons",
            value=tradebus_us,
            baseline=talib_us,
            baseline_label="TA-Lib batch over the series, per bar",
            unit="µs/bar",
            higher_is_better=False,
            goal="report both",
            notes={
                "bars": count,
                "talib_window_us": round(windowed() / repeats * 1e6, 1),
                "talib_window_bars": WINDOW,
            },
        )
    ]
