"""Row-level parsing of Binance kline CSV: good rows become bars, bad rows a reason."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradebus.events import Bar, BarSource
from tradebus.timeframes import datetime_to_ms
from tradebus_ingest.klines import Rejected, is_header, parse_row, symbol_from_name

GOOD = (
    "1637971200000,0.00002853,0.00002854,0.00002851,0.00002854,36304.20000000,"
    "1637971259999,1.03547608,79,19523.0,0.55,0"
)


def row(text: str) -> list[str]:
    return text.split(",")


def test_a_public_data_row_keeps_every_decimal_digit() -> None:
    bar = parse_row(row(GOOD), "ADABTC")
    assert isinstance(bar, Bar)
    assert datetime_to_ms(bar.open_time) == 1_637_971_200_000
    assert datetime_to_ms(bar.close_time) == 1_637_971_259_999
    assert str(bar.open) == "0.00002853"
    assert str(bar.volume) == "36304.20000000"
    assert bar.quote_volume == Decimal("1.03547608")
    assert bar.trades == 79
    assert bar.source is BarSource.REPLAY


def test_microsecond_times_are_read_as_such() -> None:
    micro = row(GOOD)
    micro[0], micro[6] = "1637971200000000", "1637971259999999"
    assert parse_row(micro, "ADABTC") == parse_row(row(GOOD), "ADABTC")


def test_empty_quote_volume_and_trades_count_as_zero() -> None:
    bar = parse_row(row("1531709520000,445.41,445.64,445.34,445.51,83.78394,1531709579999,,,,,"), "ETHUSDT")
    assert isinstance(bar, Bar)
    assert bar.quote_volume == 0 and bar.trades == 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1637971200000,1,2,0.5,1.5,10,1637971259999", "column_count"),
        ("1637971200000,1,2,0.5,1.5,10,1637971259999,15,3,0,0,0,extra", "column_count"),
        ("1637971200000,abc,2,0.5,1.5,10,1637971259999,15,3,0,0,0", "not_numeric"),
        ("1637971200000,NaN,2,0.5,1.5,10,1637971259999,15,3,0,0,0", "not_numeric"),
        ("1637971200000,1,2,0.5,1.5,10,1637971259999,15,3.5,0,0,0", "not_numeric"),
        ("yesterday,1,2,0.5,1.5,10,1637971259999,15,3,0,0,0", "not_numeric"),
        ("1637971200000,1,0.5,2,1.5,10,1637971259999,15,3,0,0,0", "high_below_low"),
        ("1637971200000,3,2,0.5,1.5,10,1637971259999,15,3,0,0,0", "price_outside_range"),
        ("1637971200000,1,2,0.5,0.4,10,1637971259999,15,3,0,0,0", "price_outside_range"),
        ("1637971200000,1,2,0,1.5,10,1637971259999,15,3,0,0,0", "non_positive_price"),
        ("1637971200000,1,2,0.5,1.5,-10,1637971259999,15,3,0,0,0", "negative_volume"),
        ("1637971200000,1,2,0.5,1.5,10,1637971259999,-15,3,0,0,0", "negative_volume"),
        ("1637971200000,1,2,0.5,1.5,10,1637971499999,15,3,0,0,0", "bad_interval"),
        ("1637971230000,1,2,0.5,1.5,10,1637971289999,15,3,0,0,0", "bad_interval"),
    ],
)
def test_bad_rows_are_rejected_with_a_reason(text: str, reason: str) -> None:
    result = parse_row(row(text), "ADABTC")
    assert isinstance(result, Rejected)
    assert result.reason == reason
    assert result.detail


def test_header_detection() -> None:
    assert is_header(row("open_time,open,high,low,close,volume,close_time,quote_volume,count,a,b,ignore"))
    assert not is_header(row(GOOD))


def test_symbol_from_public_data_names() -> None:
    assert symbol_from_name("/data/BTCUSDT-1m-2024-01-01.csv") == "BTCUSDT"
    assert symbol_from_name("ETHUSDT-1m-2024-01.zip") == "ETHUSDT"
    assert symbol_from_name("binance_ETH_USDT_20180716_131148.data.1m.binance.csv") is None
    with pytest.raises(ValueError, match="5m"):
        symbol_from_name("BTCUSDT-5m-2024-01-01.csv")
