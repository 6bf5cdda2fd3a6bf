"""Replay of Binance public-data kline files (plain or zipped CSV) onto `bars.1m.<SYMBOL>`.

Files of many symbols are merged in open-time order and published either as fast as the bus
acks them (in batches) or paced at a multiple of real time. Bad rows are skipped and counted by
reason, each reason logged once per run, so a corrupt line never stops a replay. `replay_files`
is shared by the service (INGEST_SOURCE=replay) and the `tradebus replay` command.
"""

from __future__ import annotations

import asyncio
import glob
import heapq
import io
import zipfile
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Final

from tradebus.bus import Publisher
from tradebus.events import Bar, Mode
from tradebus.logging import get_logger
from tradebus_ingest import metrics
from tradebus_ingest.klines import Rejected, is_header, parse_row, symbol_from_name
from tradebus_ingest.publishing import publish_bars

log = get_logger(__name__)

BATCH_SIZE: Final = 1000
_GLOB_CHARS: Final = frozenset("*?[")


def parse_speed(text: str) -> float | None:
    """`max` (None: as fast as possible) or a positive multiple of real time such as `60` or `60x`."""
    cleaned = text.strip().lower()
    if cleaned == "max":
        return None
    speed = float(cleaned.removesuffix("x"))
    if not speed > 0 or speed == float("inf"):
        raise ValueError(f"replay speed must be 'max' or a positive number, got {text!r}")
    return speed


@dataclass(slots=True)
class ReplayReport:
    """Running totals of one replay; handed to `on_progress` after every published batch."""

    files: int = 0
    bars_published: int = 0
    bars_skipped: int = 0
    """Bars at or before the caller's checkpoint (`after`): published by an earlier run."""
    rejected: Counter[str] = field(default_factory=Counter)
    by_symbol: Counter[str] = field(default_factory=Counter)
    last_open_time: datetime | None = None

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def reject(self, reason: str, where: str, detail: str) -> None:
        """Count a skipped row; the first row of each reason is logged, the rest only counted."""
        if not self.rejected[reason]:
            log.warning(
                "replay row rejected (further rows with this reason are only counted)",
                reason=reason,
                where=where,
                detail=detail,
            )
        self.rejected[reason] += 1
        metrics.REJECTED_ROWS.labels(reason).inc()


@dataclass(frozen=True, slots=True)
class KlineFile:
    """One CSV to replay: a plain file, or a member of a zip archive, and the symbol it holds."""

    path: Path
    member: str | None
    symbol: str

    @property
    def name(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    @contextmanager
    def open(self) -> Iterator[IO[str]]:
        """Text lines; undecodable bytes become U+FFFD so the row is rejected, not the file."""
        if self.member is None:
            with open(self.path, encoding="utf-8", errors="replace", newline="") as text:
                yield text
            return
        with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as raw:
            yield io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def expand_paths(patterns: Iterable[str | Path]) -> list[Path]:
    """Paths and globs to existing files, in the order given (globs sorted); refuses a miss."""
    found: list[Path] = []
    for pattern in patterns:
        text = str(Path(pattern).expanduser())
        if _GLOB_CHARS & set(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise FileNotFoundError(f"no kline file matches {text}")
            found.extend(matches)
        elif Path(text).is_file():
            found.append(Path(text))
        else:
            raise FileNotFoundError(f"kline file not found: {text}")
    return list(dict.fromkeys(found))


def kline_files(paths: Iterable[str | Path], symbol: str | None = None) -> list[KlineFile]:
    """Every CSV to replay with its symbol; raises before anything is published if one is unknown."""
    if symbol is not None and not (symbol.isalnum() and symbol == symbol.upper()):
        raise ValueError(f"symbol must be upper-case alphanumeric like BTCUSDT, got {symbol!r}")
    files: list[KlineFile] = []
    for path in expand_paths(paths):
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if m.lower().endswith(".csv")]
            if not members:
                raise ValueError(f"{path}: the archive holds no .csv file")
            files.extend(KlineFile(path, m, _symbol_of(path, m, symbol)) for m in members)
        else:
            files.append(KlineFile(path, None, _symbol_of(path, None, symbol)))
    return files


def _symbol_of(path: Path, member: str | None, given: str | None) -> str:
    if given is not None:
        return given
    found = (member and symbol_from_name(member)) or symbol_from_name(path)
    if found is None:
        raise ValueError(
            f"cannot tell the symbol of {path.name}: name it like BTCUSDT-1m-2024-01-01.csv or pass the symbol"
        )
    return found


def read_bars(source: KlineFile, report: ReplayReport) -> Iterator[Bar]:
    """The valid bars of one file in file order; an optional header on the first line is skipped."""
    with source.open() as text:
        for line_no, line in enumerate(text, start=1):
            stripped = line.strip()
            if not stripped:
                continue
            row = stripped.split(",")
            if line_no == 1 and is_header(row):
                continue
            parsed = parse_row(row, source.symbol)
            if isinstance(parsed, Rejected):
                report.reject(parsed.reason, f"{source.name}:{line_no}", parsed.detail)
            else:
                yield parsed


def merged_bars(files: Iterable[KlineFile], report: ReplayReport) -> Iterator[Bar]:
    """All files' bars in (open time, symbol) order; a row repeating or preceding its symbol's
    previous bar is rejected (`duplicate`, `out_of_order`): Binance files are sorted."""
    last: dict[str, int] = {}
    for bar in heapq.merge(*(read_bars(f, report) for f in files), key=lambda b: (b.open_ms, b.symbol)):
        previous = last.get(bar.symbol)
        if previous is not None and bar.open_ms <= previous:
            reason = "duplicate" if bar.open_ms == previous else "out_of_order"
            report.reject(reason, bar.symbol, f"open time {bar.open_ms} ms not after the previous {previous} ms")
            continue
        last[bar.symbol] = bar.open_ms
        yield bar


BatchSink = Callable[[list[Bar]], Awaitable[None]]


async def replay_files(
    paths: Iterable[str | Path],
    publisher: Publisher,
    *,
    speed: float | None = None,
    symbol: str | None = None,
    on_progress: Callable[[ReplayReport], None] | None = None,
    after: Mapping[str, int] | None = None,
    on_batch: BatchSink | None = None,
) -> ReplayReport:
    """Publish the 1m bars of `paths` (files or globs) as `mode=replay` events.

    `speed` None means as fast as possible, else a multiple of real time. `symbol` overrides the
    symbol read from the file names. Bars at or before `after[symbol]` (epoch ms) are skipped.
    `on_batch` is awaited with each batch once JetStream acked it (the service stores and
    checkpoints there); `on_progress` then gets the running report.
    """
    files = kline_files(paths, symbol)
    report = ReplayReport(files=len(files))
    after = after or {}
    batch: list[Bar] = []

    async def flush() -> None:
        if not batch:
            return
        await publish_bars(publisher, batch, mode=Mode.REPLAY)
        if on_batch is not None:
            await on_batch(list(batch))
        report.bars_published += len(batch)
        report.by_symbol.update(bar.symbol for bar in batch)
        report.last_open_time = batch[-1].open_time
        batch.clear()
        if on_progress is not None:
            on_progress(report)

    previous_ms: int | None = None
    for bar in merged_bars(files, report):
        if bar.open_ms <= after.get(bar.symbol, -1):
            report.bars_skipped += 1
            continue
        if speed is not None and previous_ms is not None and bar.open_ms > previous_ms:
            await flush()  # everything of the previous minute goes out before the pause
            await asyncio.sleep((bar.open_ms - previous_ms) / 1000 / speed)
        previous_ms = bar.open_ms
        batch.append(bar)
        if len(batch) >= BATCH_SIZE:
            await flush()
    await flush()
    log.info(
        "replay finished",
        files=report.files,
        bars=report.bars_published,
        skipped=report.bars_skipped,
        rejected=dict(report.rejected),
    )
    return report
