"""The latest heartbeat of each service, as telemetry last saw it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tradebus.events import FeedStats, HeartbeatEvent


@dataclass(frozen=True, slots=True)
class Seen:
    """One service's latest heartbeat; `at` is when it was emitted, never later than its arrival."""

    service: str
    instance: str
    status: str
    checks: dict[str, bool]
    at: datetime
    feeds: dict[str, FeedStats] = field(default_factory=dict)

    def age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.at).total_seconds())


class HeartbeatBook:
    """Heartbeats by service; a delayed backlog (after a restart) never looks fresher than it is."""

    def __init__(self) -> None:
        self.services: dict[str, Seen] = {}

    def record(self, event: HeartbeatEvent, arrived: datetime) -> None:
        beat = event.data
        at = min(arrived, event.emitted_at)
        previous = self.services.get(beat.service)
        if previous is not None and previous.at > at:
            return
        self.services[beat.service] = Seen(
            beat.service, beat.instance, beat.status, dict(beat.checks), at, dict(beat.feeds)
        )
