"""All indicators of one (symbol, horizon) series, updated together on each closed bar."""

from __future__ import annotations

from tradebus_signal.indicators import Atr, Bollinger, Ema, Macd, Rsi, Sma, Volatility
from tradebus_signal.params import ModelParams

Features = dict[str, float]


class IndicatorBank:
    """The feature set of one series; `snapshot()` names every value that is defined."""

    def __init__(self, params: ModelParams) -> None:
        self.ema_fast = Ema(params.ema_fast)
        self.ema_slow = Ema(params.ema_slow)
        self.sma = Sma(params.sma)
        self.rsi = Rsi(params.rsi)
        self.macd = Macd(params.ema_fast, params.ema_slow, params.macd_signal)
        self.atr = Atr(params.atr)
        self.bands = Bollinger(params.bb_period, params.bb_width)
        self.volatility = Volatility(params.volatility)
        self.close: float | None = None

    def update(self, high: float, low: float, close: float) -> None:
        self.close = close
        self.ema_fast.update(close)
        self.ema_slow.update(close)
        self.sma.update(close)
        self.rsi.update(close)
        self.macd.update(close)
        self.atr.update(high, low, close)
        self.bands.update(close)
        self.volatility.update(close)

    def snapshot(self) -> Features:
        """Defined values only; RSI is left out over a window without any move (TA-Lib says 0,
        which would read as 'oversold' for a market that simply did not trade)."""
        values: dict[str, float | None] = {
            "close": self.close,
            "ema_fast": self.ema_fast.value,
            "ema_slow": self.ema_slow.value,
            "sma": self.sma.value,
            "rsi": None if self.rsi.flat else self.rsi.value,
            "atr": self.atr.value,
            "return": self.volatility.last_return,
            "volatility": self.volatility.value,
        }
        if (macd := self.macd.value) is not None:
            values |= {"macd": macd.macd, "macd_signal": macd.signal, "macd_hist": macd.hist}
        if (bands := self.bands.value) is not None:
            values |= {"bb_upper": bands.upper, "bb_middle": bands.middle, "bb_lower": bands.lower}
        return {name: value for name, value in values.items() if value is not None}
