"""Binance kline CSV rows to bars: the 12-column public-data layout, validated row by row.

Columns: open_time, open, high, low, close, volume, close_time, quote_volume, trades,
taker_buy_base, taker_buy_quote, ignore. Times are epoch milliseconds, or microseconds (as
data.binance.vision publishes spot data from 2025 on), told apart per value. A bad row is
not an exception but a `Rejected` with a stable reason code, so a replay counts it and goes on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import PurePath
from typing import Final

from pydantic import ValidationError

from tradebus.events import Bar, BarSource, make_bar
from tradebus.timeframes import MINUTE_MS, close_time_ms

COLUMNS: Final = 12
_MICROS_ABOVE: Final = 10**14
"""Epoch ms stay below 10^14 until the year 5138; epoch µs are above it since 1973."""

# BTCUSDT-1m-2024-01-01.csv, BTCUSDT-1m-2024-01.zip (data.binance.vision naming)
_PUBLIC_NAME: Final = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\d+[smhdwM])-\d{4}-\d{2}(?:-\d{2})?\.(?:csv|zip)$"
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a row is not a bar: `reason` is a metric label, `detail` says what was seen."""

    reason: str
    detail: str


def symbol_from_name(path: str | PurePath) -> str | None:
    """The symbol a data.binance.vision file name carries, or None when the name has none.

    Raises ValueError for a public-data file of another interval: ingest replays 1m only.
    """
    match = _PUBLIC_NAME.match(PurePath(path).name)
    if not match:
        return None
    if match["interval"] != "1m":
        raise ValueError(f"{PurePath(path).name} holds {match['interval']} klines; ingest replays 1m klines only")
    return match["symbol"]


def is_header(row: list[str]) -> bool:
    """A header row names its columns instead of starting with a timestamp."""
    return bool(row) and not row[0].strip().lstrip("-").isdigit() and "open" in row[0].lower()


def _epoch_ms(text: str) -> int:
    value = int(text.strip())
    return value // 1000 if value >= _MICROS_ABOVE else value


def _decimal(text: str, *, empty_as_zero: bool = False) -> Decimal:
    text = text.strip()
    if not text and empty_as_zero:
        return Decimal(0)
    value = Decimal(text)
    if not value.is_finite():
        raise InvalidOperation(text)
    return value


def _trades(text: str) -> int:
    if text.isdigit():  # the usual count; anything else (blank, `12.0`, junk) takes the Decimal rule
        return int(text)
    value = _decimal(text, empty_as_zero=True)
    if value != value.to_integral_value():
        raise InvalidOperation(text)
    return int(value)


def parse_row(row: list[str], symbol: str, source: BarSource = BarSource.REPLAY) -> Bar | Rejected:
    """The 1m bar in one row of the 12 kline columns (a CSV line, a REST array, a WebSocket kline), or why
    it is not one; `source` says where the row came from."""
    if len(row) != COLUMNS:
        return Rejected("column_count", f"{len(row)} columns, expected {COLUMNS}")
    try:
        open_ms = _epoch_ms(row[0])
        close_ms = _epoch_ms(row[6])
        open_, high, low, close, volume = map(_decimal, row[1:6])
        quote_volume = _decimal(row[7], empty_as_zero=True)
        trades = _trades(row[8])
    except (ValueError, InvalidOperation):
        return Rejected("not_numeric", f"unreadable number in {','.join(row[:9])!r}")
    if open_ms % MINUTE_MS or close_ms != close_time_ms(open_ms, "1m"):
        return Rejected("bad_interval", f"open {open_ms} / close {close_ms} is not one aligned minute")
    if min(open_, high, low, close) <= 0:
        return Rejected("non_positive_price", f"prices {open_} {high} {low} {close}")
    if high < low:
        return Rejected("high_below_low", f"high {high} < low {low}")
    if not (low <= open_ <= high and low <= close <= high):
        return Rejected("price_outside_range", f"open {open_} / close {close} outside [{low}, {high}]")
    if volume < 0 or quote_volume < 0 or trades < 0:
        return Rejected("negative_volume", f"volume {volume}, quote volume {quote_volume}, trades {trades}")
    try:
        return make_bar(symbol, "1m", open_ms, open_, high, low, close, volume, quote_volume, trades, source)
    except ValidationError as exc:
        return Rejected("invalid", str(exc.errors()[0]["msg"]))
