"""Binance payloads to bars, and the reconnect delays, without any I/O."""

from __future__ import annotations

import random
from decimal import Decimal

import orjson
import pytest

from tradebus.events import Bar, BarSource
from tradebus_ingest.binance.backoff import backoff_delay
from tradebus_ingest.binance.schemas import parse_frame, parse_rest_row
from tradebus_ingest.klines import Rejected

REST_ROW = [
    1_499_040_000_000, "0.01634790", "0.80000000", "0.01575800", "0.01577100", "148976.11427815",
    1_499_040_059_999, "2434.19055334", 308, "1756.87402397", "28.46694368", "0",
]  # fmt: skip
KLINE = {
    "t": 1_672_515_780_000, "T": 1_672_515_839_999, "s": "BNBBTC", "i": "1m", "f": 100, "L": 200,
    "o": "0.0016", "c": "0.0020", "h": "0.0025", "l": "0.0015", "v": "1000", "n": 100, "x": True,
    "q": "1.0000", "V": "500", "Q": "0.500", "B": "123456",
}  # fmt: skip


def frame(*, drop: str = "", **changes: object) -> str:
    kline = {k: v for k, v in {**KLINE, **changes}.items() if k != drop}
    data = {"e": "kline", "E": 1_672_515_840_001, "s": kline["s"], "k": kline}
    return orjson.dumps({"stream": "bnbbtc@kline_1m", "data": data}).decode()


def test_a_rest_row_keeps_the_exchange_digits() -> None:
    bar = parse_rest_row(REST_ROW, "BNBBTC")
    assert isinstance(bar, Bar)
    assert bar.open_ms == 1_499_040_000_000 and bar.source is BarSource.BINANCE_REST
    assert str(bar.open) == "0.01634790" and bar.quote_volume == Decimal("2434.19055334") and bar.trades == 308


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"t": 1}, "malformed"),
        (REST_ROW[:11], "malformed"),
        ([*REST_ROW[:2], None, *REST_ROW[3:]], "not_numeric"),
        ([*REST_ROW[:2], "0.01", "0.02", *REST_ROW[4:]], "high_below_low"),
    ],
)
def test_bad_rest_rows_are_rejected(row: object, reason: str) -> None:
    result = parse_rest_row(row, "BNBBTC")
    assert isinstance(result, Rejected) and result.reason == reason


def test_a_closed_kline_frame_is_a_bar_and_an_open_one_is_not() -> None:
    bar = parse_frame(frame(), {"BNBBTC"})
    assert isinstance(bar, Bar)
    assert bar.open_ms == KLINE["t"] and bar.close == Decimal("0.0020") and bar.source is BarSource.BINANCE_WS
    assert parse_frame(frame(x=False), {"BNBBTC"}) is None
    assert parse_frame(orjson.dumps({"result": None, "id": 1}), {"BNBBTC"}) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hello", "not_json"),
        (frame()[:40], "not_json"),
        (b"\xff\x00", "not_json"),
        ("[1, 2]", "malformed"),
        ('{"stream": "x", "data": {"e": "trade"}}', "malformed"),
        (frame(x="yes"), "malformed"),
        (frame(o=None).replace('"o":null,', ""), "malformed"),
        (frame(s="ETHBTC"), "unknown_symbol"),
        (frame(i="5m"), "bad_interval"),
        (frame(h="0.0015", l="0.0025"), "high_below_low"),
        (frame(T=1_672_515_899_999), "bad_interval"),
    ],
)
def test_bad_frames_are_rejected_with_a_reason(text: str | bytes, reason: str) -> None:
    result = parse_frame(text, {"BNBBTC"})
    assert isinstance(result, Rejected) and result.reason == reason
    assert result.detail


def test_backoff_doubles_from_five_seconds_to_a_sixty_second_cap_with_jitter() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, base_s=5, cap_s=60, rng=rng) for n in range(7)]
    for delay, nominal in zip(delays, (5, 10, 20, 40, 60, 60, 60), strict=True):
        assert nominal <= delay <= nominal * 1.2
    assert len({round(d / n, 6) for d, n in zip(delays, (5, 10, 20, 40, 60, 60, 60), strict=True)}) > 1
