"""Feed health (R-5.2): every call a service makes to what it depends on, per feed.

A feed is one dependency as this process uses it: `database` (every query, and the readiness
ping, which also counts a pool that cannot hand out a connection), `bus` (every publish until its
acks), `binance_rest` (every REST request), `binance_ws` (every connection attempt and frame).
Each keeps the totals, the last `WINDOW` calls (failure rate, average and p95 latency) and when
it last succeeded and failed. Services send the snapshots in their heartbeats; telemetry judges
them against the thresholds and makes a failure point of each feed.

Recording is a deque append and two counter increments: cheap enough for every query.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Final

from prometheus_client import Counter, Histogram

from tradebus.events import FeedStats
from tradebus.metrics import LATENCY_BUCKETS

WINDOW: Final = 1000
"""Calls the failure rate and latencies are taken over."""
FEEDS: Final = ("database", "bus", "binance_rest", "binance_ws")

CALLS = Counter(
    "tradebus_feed_calls_total", "Calls to a feed (a dependency), by outcome.", ["service", "feed", "outcome"]
)
LATENCY = Histogram(
    "tradebus_feed_latency_seconds", "Time a feed took to answer a call.", ["service", "feed"], buckets=LATENCY_BUCKETS
)


class FeedHealth:
    """One feed's calls in this process."""

    def __init__(self, service: str, feed: str) -> None:
        self.calls = 0
        self.failures = 0
        self._window: deque[tuple[bool, float | None]] = deque(maxlen=WINDOW)
        self.last_success: datetime | None = None
        self.last_failure: datetime | None = None
        self.last_error = ""
        self._ok = CALLS.labels(service, feed, "ok")
        self._failed = CALLS.labels(service, feed, "failure")
        self._latency = LATENCY.labels(service, feed)

    def record(self, ok: bool, latency_s: float | None = None, error: str = "") -> None:
        """One call: whether it succeeded and, when it means something, how long it took."""
        self.calls += 1
        self._window.append((ok, latency_s))
        now = datetime.now(tz=UTC)
        if ok:
            self._ok.inc()
            self.last_success = now
        else:
            self.failures += 1
            self._failed.inc()
            self.last_failure = now
            self.last_error = error[:200]
        if latency_s is not None:
            self._latency.observe(latency_s)

    def snapshot(self) -> FeedStats:
        latencies = sorted(latency for _, latency in self._window if latency is not None)
        failed = sum(1 for ok, _ in self._window if not ok)
        return FeedStats(
            calls=self.calls,
            failures=self.failures,
            window=len(self._window),
            failure_rate=round(failed / len(self._window), 4) if self._window else 0.0,
            avg_latency_s=round(sum(latencies) / len(latencies), 6) if latencies else None,
            p95_latency_s=round(latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)], 6) if latencies else None,
            last_success=self.last_success,
            last_failure=self.last_failure,
            last_error=self.last_error,
        )


class FeedBook:
    """The feeds of one process, created on first use."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._feeds: dict[str, FeedHealth] = {}

    def __getitem__(self, feed: str) -> FeedHealth:
        if (health := self._feeds.get(feed)) is None:
            health = self._feeds[feed] = FeedHealth(self.service, feed)
        return health

    def snapshots(self) -> dict[str, FeedStats]:
        return {name: health.snapshot() for name, health in sorted(self._feeds.items())}

    @contextmanager
    def call(self, feed: str) -> Iterator[None]:
        """Time the block as one call of `feed`: a failure if it raises (and the error goes on)."""
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:  # a cancellation is nobody's failure, and records nothing
            self[feed].record(False, time.perf_counter() - started, repr(exc))
            raise
        self[feed].record(True, time.perf_counter() - started)


_BOOKS: dict[str, FeedBook] = {}


def feeds(service: str) -> FeedBook:
    """The feed book of `service` in this process (tests run several services in one)."""
    if (book := _BOOKS.get(service)) is None:
        book = _BOOKS[service] = FeedBook(service)
    return book
