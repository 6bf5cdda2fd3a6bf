"""The ingest benchmark (called by `tradebus bench`): replay throughput next to raw nats-py.

- `ingest_replay`: N days x M symbols of Binance public-data 1m kline files (12-column CSV, one
  file per symbol and day; 30 x 10 in a full run) replayed with `replay_files(speed=max)` into the
  BARS stream: parsing, validation, events with `Nats-Msg-Id`, pipelined publishing, all
  acked — in 1m bars/s. The baseline publishes the same number of payloads of the same size with
  bare `publish_async` into a fresh file-backed stream on the same server, in the same run.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Final

import nats
from nats.js.api import StorageType, StreamConfig

from tradebus.bench import BenchEnv, Figure, stopwatch
from tradebus.bus import Publisher, encode, ensure_streams
from tradebus.events import BarEvent, Mode
from tradebus.timeframes import MINUTE_MS, ms_to_datetime
from tradebus_ingest.klines import Rejected, parse_row
from tradebus_ingest.replay import replay_files

_START_MS: Final = 1_704_067_200_000  # 2024-01-01 00:00 UTC
_DAY_MINUTES: Final = 1_440
_RAW_STREAM: Final = "INGESTRAWBENCH"


def write_kline_files(directory: Path, symbols: list[str], days: int, seed: int = 1) -> list[Path]:
    """One data.binance.vision-style CSV per symbol and day: a seeded random walk in cents."""
    directory.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for symbol in symbols:
        rng = random.Random(f"{seed}:{symbol}")
        cents = 3_000_000
        for day in range(days):
            day_ms = _START_MS + day * _DAY_MINUTES * MINUTE_MS
            path = directory / f"{symbol}-1m-{ms_to_datetime(day_ms):%Y-%m-%d}.csv"
            lines = []
            for minute in range(_DAY_MINUTES):
                open_ms = day_ms + minute * MINUTE_MS
                close = max(100, cents + rng.randint(-900, 900))
                high, low = max(cents, close) + rng.randint(0, 400), min(cents, close) - rng.randint(0, 99)
                volume = rng.randint(1, 10**9)
                lines.append(
                    f"{open_ms},{cents / 100:.2f},{high / 100:.2f},{low / 100:.2f},{close / 100:.2f},"
                    f"{volume / 10**5:.5f},{open_ms + MINUTE_MS - 1},{volume * close / 10**7:.7f},"
                    f"{rng.randint(1, 900)},0,0,0\n"
                )
                cents = close
            path.write_text("".join(lines))
            files.append(path)
    return files


def _payload_size(path: Path) -> int:
    """Bytes of one replayed event of this data, the baseline's payload size."""
    row = path.read_text().split("\n", 1)[0].split(",")
    bar = parse_row(row, path.name.split("-", 1)[0])
    if isinstance(bar, Rejected):
        raise RuntimeError(f"bench data is not a valid kline: {bar.detail}")
    return len(encode(BarEvent.of(bar, source="ingest", mode=Mode.REPLAY)))


async def bench(env: BenchEnv) -> list[Figure]:
    days, symbols = (1, 2) if env.smoke else (30, 10)
    files = write_kline_files(env.work_dir / "ingest-replay", [f"BENCH{i}USDT" for i in range(symbols)], days)
    count = days * _DAY_MINUTES * symbols
    size = _payload_size(files[0])
    nc = await nats.connect(env.nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)  # `tradebus bench` hands every benchmark an empty bus
        with stopwatch() as replayed:
            report = await replay_files(files, Publisher(nc, "bench"), speed=None)
        if report.bars_published != count:
            raise RuntimeError(f"replay published {report.bars_published} of {count} bars")

        await js.add_stream(StreamConfig(name=_RAW_STREAM, subjects=["ingestraw.>"], storage=StorageType.FILE))
        raw = nc.jetstream(publish_async_max_pending=4000)
        payload = b"x" * size
        with stopwatch() as published:
            for i in range(count):
                await raw.publish_async(f"ingestraw.{i % symbols}", payload)
            await raw.publish_async_completed()
        await js.delete_stream(_RAW_STREAM)
    finally:
        await nc.close()
    return [
        Figure(
            key="ingest_replay",
            label="ingest replay: 1m bars/s from kline CSV files into JetStream (acked)",
            value=count / replayed(),
            baseline=count / published(),
            baseline_label="bare nats-py publish_async of as many same-sized payloads",
            unit="bars/s",
            notes={"bars": count, "files": len(files), "days": days, "symbols": symbols, "payload_bytes": size},
        )
    ]
