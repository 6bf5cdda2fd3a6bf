"""Feed freshness per symbol: when the last live 1m bar arrived (wall clock) and its event time.

Replay bars are recorded for the feed-health report but never count as a live feed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tradebus.events import Bar, Mode, Severity


@dataclass(slots=True)
class Feed:
    """What arrived last on one symbol's 1m feed."""

    symbol: str
    last_bar_time: datetime
    last_mode: Mode
    last_arrival: datetime
    live_bar_time: datetime | None = None
    live_arrival: datetime | None = None
    live_trace_id: str = ""
    stale_reported_for: datetime | None = None
    """The live bar after which a stale issue was already raised (one issue per silence)."""

    def live_age_s(self, now: datetime) -> float | None:
        """Seconds since a new live bar arrived, or None when the symbol never had one."""
        return None if self.live_arrival is None else max(0.0, (now - self.live_arrival).total_seconds())


@dataclass(frozen=True, slots=True)
class Thresholds:
    warning_s: float
    critical_s: float

    def severity(self, age_s: float) -> Severity:
        if age_s > self.critical_s:
            return Severity.CRITICAL
        if age_s > self.warning_s:
            return Severity.WARNING
        return Severity.INFO


class FeedBook:
    """Feeds by symbol; only 1m bars that move a symbol's feed forward count as new."""

    def __init__(self) -> None:
        self.feeds: dict[str, Feed] = {}

    def record(self, bar: Bar, mode: Mode, trace_id: str, arrived: datetime) -> None:
        if bar.interval != "1m":
            return
        feed = self.feeds.get(bar.symbol)
        if feed is None:
            feed = self.feeds[bar.symbol] = Feed(bar.symbol, bar.open_time, mode, arrived)
        elif bar.open_time >= feed.last_bar_time or mode != feed.last_mode:
            feed.last_bar_time, feed.last_mode, feed.last_arrival = bar.open_time, mode, arrived
        if mode is Mode.LIVE and (feed.live_bar_time is None or bar.open_time > feed.live_bar_time):
            feed.live_bar_time, feed.live_arrival, feed.live_trace_id = bar.open_time, arrived, trace_id

    def live(self) -> list[Feed]:
        return [f for f in self.feeds.values() if f.live_arrival is not None]
