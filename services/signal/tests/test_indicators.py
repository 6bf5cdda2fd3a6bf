"""Incremental indicators equal TA-Lib's on real Binance closes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import talib
from signal_testkit import csv_files, read_rows

from tradebus_signal.indicators import Atr, Bollinger, Ema, Macd, Rsi, Sma, Volatility

FILES = csv_files("1m") + csv_files("1h")


def _ohlc(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = read_rows(path)
    high, low, close = (np.array([float(r[i]) for r in rows]) for i in (2, 3, 4))
    return high, low, close


def _assert_same(ours: list[float | None], theirs: np.ndarray) -> None:
    expected = [None if np.isnan(v) else float(v) for v in theirs]
    assert [v is None for v in ours] == [v is None for v in expected]
    got = np.array([v for v in ours if v is not None])
    want = np.array([v for v in expected if v is not None])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * float(np.max(np.abs(want)) or 1))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name[:24])
def test_indicators_equal_talib(path: Path) -> None:
    high, low, close = _ohlc(path)
    assert len(close) > 100
    ema12, ema26, sma20, rsi, atr = Ema(12), Ema(26), Sma(20), Rsi(14), Atr(14)
    macd, bands, vol = Macd(12, 26, 9), Bollinger(20, 2.0), Volatility(20)
    got: dict[str, list[float | None]] = {k: [] for k in ("ema12", "ema26", "sma", "rsi", "atr", "vol")}
    got_macd: list[tuple[float, float, float] | None] = []
    got_bands: list[tuple[float, float, float] | None] = []
    for h, lo, c in zip(high, low, close, strict=True):
        got["ema12"].append(ema12.update(c))
        got["ema26"].append(ema26.update(c))
        got["sma"].append(sma20.update(c))
        got["rsi"].append(rsi.update(c))
        got["atr"].append(atr.update(h, lo, c))
        got["vol"].append(vol.update(c))
        m = macd.update(c)
        got_macd.append(None if m is None else (m.macd, m.signal, m.hist))
        b = bands.update(c)
        got_bands.append(None if b is None else (b.upper, b.middle, b.lower))

    _assert_same(got["ema12"], talib.EMA(close, 12))
    _assert_same(got["ema26"], talib.EMA(close, 26))
    _assert_same(got["sma"], talib.SMA(close, 20))
    _assert_same(got["rsi"], talib.RSI(close, 14))
    _assert_same(got["atr"], talib.ATR(high, low, close, 14))
    _assert_same(got["vol"], talib.STDDEV(talib.ROCP(close, 1), 20, 1))
    for i, series in enumerate(talib.MACD(close, 12, 26, 9)):
        _assert_same([None if m is None else m[i] for m in got_macd], series)
    for i, series in enumerate(talib.BBANDS(close, 20, 2.0, 2.0, 0)):
        _assert_same([None if b is None else b[i] for b in got_bands], series)


def test_flat_window_rsi_is_flagged() -> None:
    rsi = Rsi(3)
    for _ in range(5):
        rsi.update(7.0)
    assert rsi.value == float(talib.RSI(np.array([7.0] * 5), 3)[-1]) == 0.0
    assert rsi.flat
