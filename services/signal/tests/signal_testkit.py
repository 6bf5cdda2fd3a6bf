"""Real Binance klines from the repository's test data, as floats or as tradebus bars."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

from tradebus.events import Bar, BarSource, make_bar
from tradebus.timeframes import Interval

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"


def csv_files(interval: str) -> list[Path]:
    return sorted(DATA.glob(f"*.data.{interval}.binance.csv"))


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return [row for row in csv.reader(f) if row]


def read_bars(path: Path, symbol: str, interval: Interval) -> list[Bar]:
    """The file's bars, as the aggregator would publish them."""
    return [
        make_bar(
            symbol,
            interval,
            int(row[0]),
            Decimal(row[1]),
            Decimal(row[2]),
            Decimal(row[3]),
            Decimal(row[4]),
            Decimal(row[5]),
            Decimal(row[7] or "0"),
            int(row[8] or 0),
            BarSource.AGGREGATED,
        )
        for row in read_rows(path)
    ]
