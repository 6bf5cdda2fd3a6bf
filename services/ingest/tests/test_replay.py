"""Replaying Binance kline files onto the real bus: exact bars, every file flavour, bad rows."""

from __future__ import annotations

import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from ingest_support import bus_events
from nats.aio.client import Client
from structlog.testing import capture_logs

from tradebus.bus import Publisher
from tradebus.events import Bar, BarEvent, BarSource, Mode
from tradebus.timeframes import datetime_to_ms
from tradebus_ingest import metrics
from tradebus_ingest.replay import ReplayReport, parse_speed, replay_files

ETH_FILE = "binance_ETH_USDT_20180716_131148.data.1m.binance.csv"
ADA_FILE = "ADABTC-1m-2021-11-27.csv"
DECIMAL_COLUMNS = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}


def file_rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines() if line.strip()]


def assert_bars_match_rows(events: list[BarEvent], rows: list[list[str]], symbol: str) -> None:
    """Each event carries its row's values with the file's own decimal digits (same string)."""
    assert len(events) == len(rows)
    for event, cells in zip(events, rows, strict=True):
        bar = event.data
        wire = event.model_dump(mode="json")["data"]
        assert bar.symbol == symbol and bar.source is BarSource.REPLAY and event.mode is Mode.REPLAY
        assert datetime_to_ms(bar.open_time) == int(cells[0])
        assert datetime_to_ms(bar.close_time) == int(cells[6])
        for name, column in DECIMAL_COLUMNS.items():
            assert Decimal(wire[name]).as_tuple() == Decimal(cells[column]).as_tuple(), (name, wire[name], cells)
        assert Decimal(wire["quote_volume"]) == Decimal(cells[7] or "0")
        assert bar.trades == int(cells[8] or "0")


async def test_real_octobot_capture_replays_exactly(nc: Client, publisher: Publisher, data_dir: Path) -> None:
    report = await replay_files([data_dir / ETH_FILE], publisher, symbol="RPLETHUSDT")
    assert report.bars_published == 500 and report.rows_rejected == 0
    assert_bars_match_rows(await bus_events(nc, "bars.1m.RPLETHUSDT"), file_rows(data_dir / ETH_FILE), "RPLETHUSDT")


def _variants(source: Path, tmp_path: Path) -> dict[str, Path]:
    """The public-data file as µs times, with a header, and zipped, each under its own symbol."""
    rows = file_rows(source)
    micro = tmp_path / "RPLMICRO-1m-2021-11-27.csv"
    micro.write_text("".join(",".join([f"{r[0]}000", *r[1:6], f"{r[6]}999", *r[7:]]) + "\n" for r in rows))
    header = tmp_path / "RPLHEADER-1m-2021-11-27.csv"
    names = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote,ignore"
    header.write_text(names + "\n" + source.read_text())
    zipped = tmp_path / "RPLZIP-1m-2021-11-27.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(source, "RPLZIP-1m-2021-11-27.csv")
    return {"RPLMICRO": micro, "RPLHEADER": header, "RPLZIP": zipped}


async def test_microsecond_header_and_zip_variants_replay_the_same_bars(
    nc: Client, publisher: Publisher, data_dir: Path, tmp_path: Path
) -> None:
    variants = _variants(data_dir / ADA_FILE, tmp_path)
    batches: list[list[Bar]] = []

    async def capture(batch: list[Bar]) -> None:
        batches.append(batch)

    report = await replay_files([str(tmp_path / "RPL*-1m-*")], publisher, on_batch=capture)
    rows = file_rows(data_dir / ADA_FILE)
    assert report.rows_rejected == 0
    assert report.by_symbol == {symbol: len(rows) for symbol in variants}
    merged = [bar for batch in batches for bar in batch]
    assert [(b.open_ms, b.symbol) for b in merged] == sorted((b.open_ms, b.symbol) for b in merged)
    for symbol in variants:
        assert_bars_match_rows(await bus_events(nc, f"bars.1m.{symbol}"), rows, symbol)


async def test_bad_rows_are_skipped_counted_and_logged_once_per_reason(
    nc: Client, publisher: Publisher, tmp_path: Path
) -> None:
    good = "1637971200000,1,2,0.5,1.5,10,1637971259999,15,3,0,0,0"
    lines = [
        good,
        "1637971260000,1,2,0.5,1.5,10,1637971319999",  # column_count
        "1637971260000,x,2,0.5,1.5,10,1637971319999,15,3,0,0,0",  # not_numeric
        "1637971260000,y,2,0.5,1.5,10,1637971319999,15,3,0,0,0",  # not_numeric
        "1637971260000,1,0.5,2,1.5,10,1637971319999,15,3,0,0,0",  # high_below_low
        "1637971260000,1,2,0.5,1.5,10,1637971319999,15,3,0,0,0",
        "1637971260000,1,2,0.5,1.5,10,1637971319999,15,3,0,0,0",  # duplicate
        "1637971200000,1,2,0.5,1.5,10,1637971259999,15,3,0,0,0",  # out_of_order
        "\xff\xfe garbage",  # column_count
        "1637971320000,1,2,0.5,1.5,10,1637971379999,,,,,",
    ]
    path = tmp_path / "RPLBAD-1m-2021-11-27.csv"
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    before = metrics.REJECTED_ROWS.labels("not_numeric")._value.get()
    with capture_logs() as logs:
        report = await replay_files([path], publisher)
    assert report.bars_published == 3
    assert report.rejected == {
        "column_count": 2,
        "not_numeric": 2,
        "high_below_low": 1,
        "duplicate": 1,
        "out_of_order": 1,
    }
    assert metrics.REJECTED_ROWS.labels("not_numeric")._value.get() == before + 2
    warned = [entry["reason"] for entry in logs if entry["log_level"] == "warning"]
    assert sorted(warned) == sorted(report.rejected)
    events = await bus_events(nc, "bars.1m.RPLBAD")
    assert [datetime_to_ms(e.data.open_time) for e in events] == [1637971200000, 1637971260000, 1637971320000]


async def test_paced_replay_publishes_every_bar_with_progress(nc: Client, publisher: Publisher, data_dir: Path) -> None:
    seen: list[int] = []

    def progress(report: ReplayReport) -> None:
        seen.append(report.bars_published)

    # 60 s between bars at 6000x real time: 10 ms apart
    report = await replay_files([data_dir / ADA_FILE], publisher, symbol="RPLPACED", speed=6000, on_progress=progress)
    assert report.bars_published == 10
    assert seen == list(range(1, 11))
    assert len(await bus_events(nc, "bars.1m.RPLPACED")) == 10


async def test_unusable_inputs_fail_before_anything_is_published(
    nc: Client, publisher: Publisher, data_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="cannot tell the symbol"):
        await replay_files([data_dir / ETH_FILE], publisher)
    with pytest.raises(FileNotFoundError):
        await replay_files([tmp_path / "nothing-*.csv"], publisher)
    five = tmp_path / "BTCUSDT-5m-2024-01-01.csv"
    five.write_text("")
    with pytest.raises(ValueError, match="1m klines only"):
        await replay_files([five], publisher)


def test_speed_parsing() -> None:
    assert parse_speed("max") is None
    assert parse_speed("60") == 60.0
    assert parse_speed("2.5x") == 2.5
    for bad in ("0", "-1", "fast", "inf"):
        with pytest.raises(ValueError):
            parse_speed(bad)
