"""`tradebus replay FILES...`: publish Binance kline files as 1m bars, with a progress bar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from rich.console import Console

from tradebus.bus import Publisher, ensure_streams
from tradebus.embedded import nats_answers
from tradebus.natsauth import LoginRefused
from tradebus_cli import buslogin
from tradebus_cli.render import progress_bar
from tradebus_ingest.replay import KlineFile, ReplayReport, kline_files, replay_files

REPLAY_USER: Final = "ingest"
"""Replayed klines become 1m bars, which only ingest may publish: the replay acts as ingest."""


class ReplayError(Exception):
    """The replay could not start (bus unreachable or refusing the login, unreadable file, unknown symbol)."""


def _rows(files: Sequence[KlineFile]) -> int:
    """Lines to replay (a header line included): the progress bar's total, cheap next to publishing."""
    total = 0
    for source in files:
        with source.open() as text:
            total += sum(1 for line in text if line.strip())
    return total


async def replay(
    url: str, paths: Sequence[str], *, speed: float | None, symbol: str | None, console: Console
) -> ReplayReport:
    try:
        files = kline_files(paths, symbol)
    except (OSError, ValueError) as exc:
        raise ReplayError(str(exc)) from exc
    if not nats_answers(url):
        raise ReplayError(buslogin.unreachable(url))
    total = _rows(files)
    try:
        client = await buslogin.connect(REPLAY_USER, url)
    except LoginRefused as exc:
        raise ReplayError(str(exc)) from None
    try:
        js = client.jetstream()
        await ensure_streams(js)
        with progress_bar(console) as progress:
            task = progress.add_task(f"replaying {len(files)} file(s)", total=total)

            def advance(report: ReplayReport) -> None:
                done = report.bars_published + report.bars_skipped + report.rows_rejected
                last = report.last_open_time.isoformat() if report.last_open_time else "-"
                progress.update(task, completed=done, description=f"replaying, up to {last}")

            report = await replay_files(
                paths, Publisher(client, "cli"), speed=speed, symbol=symbol, on_progress=advance
            )
            progress.update(task, completed=total, description="replayed")
    finally:
        await client.drain()
    return report
