"""Feed health (R-5.2): the rolling window's arithmetic, then real calls counted where they are
made — publishes on a real JetStream (one refused, one never acked) and queries on a real
PostgreSQL (one that fails) — and a real service sending its feeds in its heartbeat."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import nats
import pytest
from nats.js.api import StreamConfig

from tradebus import db
from tradebus.bus import Publisher, PublishRefused
from tradebus.feedhealth import WINDOW, FeedHealth, feeds
from tradebus.testing import wait_for


def test_the_window_keeps_the_last_calls_and_the_totals_keep_all() -> None:
    health = FeedHealth("unit", "database")
    for i in range(WINDOW):
        health.record(ok=i % 10 != 0, latency_s=(i % 100) / 1000)  # 10 % failed, 0..99 ms
    snapshot = health.snapshot()
    assert (snapshot.calls, snapshot.failures, snapshot.window) == (WINDOW, WINDOW // 10, WINDOW)
    assert snapshot.failure_rate == 0.1
    assert snapshot.p95_latency_s == 0.094 and snapshot.avg_latency_s == 0.0495
    for _ in range(WINDOW // 2):
        health.record(ok=True, latency_s=None)  # an untimed success pushes out old calls, adds no latency
    later = health.snapshot()
    assert later.calls == WINDOW * 3 // 2 and later.failures == WINDOW // 10
    assert later.failure_rate == 0.05  # the 50 failures of the newer half of the first thousand
    assert later.p95_latency_s == 0.094  # the 500 newer timed calls (0..99 ms five times): the same p95
    assert later.last_success is not None and later.last_success <= datetime.now(tz=UTC)


async def test_publishes_are_calls_of_the_bus_feed_and_refusals_its_failures(private_nats_url: str) -> None:
    nc = await nats.connect(private_nats_url)
    try:
        await nc.jetstream().add_stream(StreamConfig(name="FEED", subjects=["feed.>"]))
        service = f"feedtest-{uuid.uuid4().hex[:6]}"
        publisher = Publisher(nc, service)
        await publisher.publish_raw("feed.a", b"x", "id-1")
        with pytest.raises(PublishRefused):
            await publisher.publish_raw("nowhere.a", b"x", "id-2")
        bus = feeds(service).snapshots()["bus"]
        assert (bus.calls, bus.failures, bus.failure_rate) == (2, 1, 0.5)
        assert bus.p95_latency_s is not None and "no stream" in bus.last_error
    finally:
        await nc.close()


async def test_every_query_is_a_call_of_the_database_feed(database_url: str) -> None:
    schema = f"feed{uuid.uuid4().hex[:6]}"
    pool = await db.create_pool(database_url, schema=schema)
    try:
        await pool.fetchval("SELECT 1")
        with pytest.raises(asyncpg.PostgresError):
            await pool.fetchval("SELECT no_such_column FROM pg_class")

        async def both_counted() -> bool:
            return feeds(schema)["database"].calls >= 2

        await wait_for(both_counted, timeout=5, what="the queries counted")
        health = feeds(schema).snapshots()["database"]
        assert health.failures == 1 and "no_such_column" in health.last_error
    finally:
        await pool.close()
