"""Binance kline payloads to bars: REST `/api/v3/klines` rows and combined-stream WebSocket frames.

Both carry the same 12 kline fields as the public-data CSV files, so they go through the same
row validation (`klines.parse_row`). Anything else — a non-JSON frame, a truncated message, a
kline with high < low, a symbol nobody subscribed to — is a `Rejected`, counted by `Rejects`
and logged once per kind; it never becomes a bar and never raises.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

import orjson

from tradebus.events import Bar, BarSource
from tradebus.logging import get_logger
from tradebus_ingest import metrics
from tradebus_ingest.klines import COLUMNS, Rejected, parse_row

log = get_logger(__name__)

WS_KLINE_FIELDS: Final = ("t", "o", "h", "l", "c", "v", "T", "q", "n", "V", "Q", "B")
"""The WebSocket kline's keys in the order of the REST/CSV columns."""


def parse_rest_row(row: object, symbol: str) -> Bar | Rejected:
    """One element of a `/api/v3/klines` answer (`[open_ms, "open", …, "ignore"]`) as a bar."""
    if not isinstance(row, list) or len(row) != COLUMNS:
        return Rejected("malformed", f"kline is not a {COLUMNS}-item array: {str(row)[:120]}")
    return parse_row([str(cell) for cell in row], symbol, BarSource.BINANCE_REST)


def parse_frame(frame: str | bytes, symbols: Collection[str]) -> Bar | Rejected | None:
    """The closed kline in one combined-stream frame; None for a valid frame that closes nothing
    (the running minute's update, a subscription reply)."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return Rejected("not_json", f"frame is not JSON: {str(frame)[:120]!r}")
    if isinstance(message, dict) and "result" in message and "id" in message:
        return None
    data = message.get("data", message) if isinstance(message, dict) else None
    kline = data.get("k") if isinstance(data, dict) and data.get("e") == "kline" else None
    if not isinstance(kline, dict):
        return Rejected("malformed", f"not a kline event: {str(message)[:120]}")
    symbol = kline.get("s")
    if symbol not in symbols:
        return Rejected("unknown_symbol", f"kline for {symbol!r}, subscribed to {sorted(symbols)}")
    if kline.get("i") != "1m":
        return Rejected("bad_interval", f"kline interval {kline.get('i')!r}, expected '1m'")
    closed = kline.get("x")
    if not isinstance(closed, bool):
        return Rejected("malformed", f"kline without a closed flag: {str(kline)[:120]}")
    if not closed:
        return None
    missing = [key for key in WS_KLINE_FIELDS if key not in kline]
    if missing:
        return Rejected("malformed", f"kline lacks {missing}")
    return parse_row([str(kline[key]) for key in WS_KLINE_FIELDS], str(symbol), BarSource.BINANCE_WS)


class Rejects:
    """Counts rejected exchange messages by reason; the first of each reason is logged, the rest only counted."""

    def __init__(self, transport: str) -> None:
        self._transport = transport
        self._seen: set[str] = set()

    def add(self, rejected: Rejected) -> None:
        metrics.REJECTED_MESSAGES.labels(self._transport, rejected.reason).inc()
        if rejected.reason not in self._seen:
            self._seen.add(rejected.reason)
            log.warning(
                "exchange message rejected (further ones of this kind are only counted)",
                transport=self._transport,
                reason=rejected.reason,
                detail=rejected.detail,
            )
