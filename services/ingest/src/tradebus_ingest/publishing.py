"""Publishing a batch of 1m bars: one pipelined JetStream round, then the ingest metrics."""

from __future__ import annotations

from collections.abc import Sequence

from tradebus import subjects
from tradebus.bus import Publisher
from tradebus.events import Bar, Mode, encode_bar_event
from tradebus.timeframes import ms_to_datetime, now_ms
from tradebus_ingest import metrics


async def publish_bars(
    publisher: Publisher, bars: Sequence[Bar], *, mode: Mode, latency_from_ms: int | None = None
) -> None:
    """Publish `bars` on `bars.1m.<SYMBOL>` and wait for every ack (raises if one failed).

    Feed latency is observed for live bars that closed at or after `latency_from_ms` (all live
    bars when None), so that history fetched late does not read as a slow feed.

    Event ids are deterministic, so re-publishing a batch after a crash is dropped by
    JetStream's duplicate window and by every consumer's idempotent writes.
    """
    if not bars:
        return
    emitted_at = ms_to_datetime(now_ms())  # a batch is emitted at one moment (a clock read per bar cost ~2 %)
    await publisher.publish_encoded(
        [
            (subjects.bars("1m", bar.symbol), *encode_bar_event(bar, source="ingest", mode=mode, emitted_at=emitted_at))
            for bar in bars
        ]
    )
    metrics.record_published(bars, live=mode is Mode.LIVE, now_ms=now_ms(), latency_from_ms=latency_from_ms)
