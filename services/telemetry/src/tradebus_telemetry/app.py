"""The telemetry service: heartbeats, bar quality and dead letters in; quality issues and readiness out."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from faststream import AckPolicy, Context
from faststream.nats import DeliverPolicy, JStream

from tradebus.events import (
    BarEvent,
    FailurePoint,
    FeedStats,
    HeartbeatEvent,
    QualityIssueEvent,
    Readiness,
    ReadinessEvent,
)
from tradebus.feedhealth import FEEDS
from tradebus.logging import get_logger
from tradebus.service import Service
from tradebus_telemetry.jetstream import JetStreamObserver
from tradebus_telemetry.monitor import Monitor
from tradebus_telemetry.report import DataQualityReport, build_report
from tradebus_telemetry.settings import TelemetrySettings

log = get_logger(__name__)

RECENT_ISSUES = 100
COUNT_WINDOW = timedelta(hours=1)


async def _undecoded(_: Any) -> None:
    """Dead letters are read as raw bytes; skip FastStream's decoding."""
    return None


def build_service(settings: TelemetrySettings) -> Service:
    service = Service("telemetry", settings, migrations="tradebus_telemetry.migrations")
    monitor = Monitor(service, settings)

    @service.consumer(
        name="heartbeats",
        stream="TELEMETRY",
        subject="telemetry.heartbeat.*",
        model=HeartbeatEvent,
        batch_size=200,
        deliver_policy=DeliverPolicy.NEW,
    )
    async def on_heartbeats(events: list[HeartbeatEvent]) -> None:
        monitor.on_heartbeats(events)

    @service.consumer(
        name="bars-1m",
        stream="BARS",
        subject="bars.1m.*",
        model=BarEvent,
        batch_size=1000,
        deliver_policy=DeliverPolicy.NEW if settings.telemetry_bars_from == "new" else DeliverPolicy.ALL,
        linger_s=settings.telemetry_bars_linger_s,
    )
    async def on_bars(events: list[BarEvent]) -> None:
        await monitor.on_bars(events)

    # Each instance watches every dead letter from now on: an ephemeral consumer that acks on receipt.
    @service.broker.subscriber(
        "dlq.>",
        stream=JStream("DLQ", declare=False),
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.ACK_FIRST,
        decoder=_undecoded,
        title="telemetry:dlq",
        description="Dead letters of every service (raw JSON, not an envelope); any in the last hour degrades.",
    )
    async def on_dead_letter(message: Any = Context("message")) -> None:
        monitor.on_dead_letter(message.body)

    service.publishes("telemetry.quality.*", QualityIssueEvent, "Data-quality issues found in bars and feeds")
    service.publishes("telemetry.readiness", ReadinessEvent, "READY / DEGRADED / BLOCKED with failure points")

    @service.background
    async def evaluate_readiness() -> None:
        while True:
            await monitor.tick()
            await asyncio.sleep(settings.telemetry_evaluate_interval_s)

    observer = JetStreamObserver()

    @service.background
    async def observe_jetstream() -> None:
        while True:
            try:
                await observer.observe(service.broker.connection.jetstream())
            except Exception as exc:  # noqa: BLE001 - the bus may be down; the next look tries again
                log.warning("JetStream state not read", error=repr(exc))
            await asyncio.sleep(settings.telemetry_jetstream_interval_s)

    @service.router.get("/v1/readiness", response_model=Readiness, tags=["readiness"])
    async def get_readiness() -> Readiness:
        return await monitor.readiness()

    @service.router.get("/v1/failure-points", response_model=list[FailurePoint], tags=["readiness"])
    async def get_failure_points() -> list[FailurePoint]:
        return (await monitor.readiness()).failure_points

    @service.router.get("/v1/feeds", response_model=dict[str, dict[str, FeedStats]], tags=["readiness"])
    async def get_feeds() -> dict[str, dict[str, FeedStats]]:
        """Feed health (R-5.2) by feed, then service, from their latest heartbeats; the failure
        points `feed_health:<feed>` judge them."""
        seen = monitor.heartbeats.services
        return {feed: {s: seen[s].feeds[feed] for s in sorted(seen) if feed in seen[s].feeds} for feed in FEEDS}

    @service.router.get("/v1/data-quality", response_model=DataQualityReport, tags=["quality"])
    async def get_data_quality() -> DataQualityReport:
        now = monitor.clock()
        return build_report(
            now=now,
            feeds=monitor.feeds.feeds.values(),
            limits=monitor.thresholds,
            issues=await monitor.repository.recent_issues(RECENT_ISSUES),
            counts=await monitor.repository.counts_since(now - COUNT_WINDOW),
        )

    return service
