"""BatchConsumer on a real JetStream: narrowed filter subjects (and the fallback for servers
before 2.10), and deliveries a handler holds back until it releases them."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import nats
import pytest
from nats.aio.client import Client as NatsClient

from tradebus import subjects
from tradebus.bus import BatchConsumer, Publisher, consumer_lag, ensure_streams
from tradebus.events import BarEvent, BarSource, make_bar
from tradebus.testing import wait_for


def _true_when(check):  # type: ignore[no-untyped-def]
    async def predicate() -> bool:
        return bool(check())

    return predicate


def _event(interval: str, minute: int) -> BarEvent:
    bar = make_bar(
        "BTCUSDT",
        interval,  # type: ignore[arg-type]
        1_700_000_100_000 // 300_000 * 300_000 + minute * 300_000,
        Decimal("100"),
        Decimal("101"),
        Decimal("99"),
        Decimal("100.5"),
        Decimal("2.5"),
        Decimal("250"),
        7,
        BarSource.AGGREGATED,
    )
    return BarEvent.of(bar, source="aggregator")


@pytest.fixture
async def bus(private_nats_url: str):
    nc = await nats.connect(private_nats_url)
    await ensure_streams(nc.jetstream())
    yield nc
    await nc.close()


def _consumer(seen: list[BarEvent], *, name: str, hold: set[str] | None = None, **kwargs: object) -> BatchConsumer:
    async def handler(events: list[BarEvent]) -> set[str] | None:
        seen.extend(events)
        return {e.event_id for e in events if e.event_id in hold} if hold else None

    return BatchConsumer(
        service="test",
        name=name,
        model=BarEvent,
        handler=handler,
        publisher=lambda: None,  # type: ignore[arg-type,return-value]
        stream="BARS",
        durable=f"test-{name}",
        **kwargs,  # type: ignore[arg-type]
    )


async def _publish_mixed(nc: NatsClient) -> list[BarEvent]:
    events = [_event(interval, i) for i in range(3) for interval in ("1m", "5m", "15m")]
    await Publisher(nc.jetstream(), "test").publish_many((subjects.bars(e.data.interval, "BTCUSDT"), e) for e in events)
    return events


@pytest.mark.parametrize("narrowed", [True, False], ids=["filter-subjects", "accept-only"])
async def test_filter_subjects_deliver_only_those_in_stream_order(bus: NatsClient, narrowed: bool):
    """Narrowed by the server (2.10+) or dropped on arrival (older servers): the same events."""
    seen: list[BarEvent] = []
    consumer = _consumer(
        seen,
        name=f"narrow-{narrowed}",
        subject="bars.>",
        filter_subjects=("bars.5m.*", "bars.15m.*") if narrowed else (),
        accept=lambda subject: subject.split(".")[1] in ("5m", "15m"),
    )
    events = await _publish_mixed(bus)
    task = asyncio.create_task(consumer.run(bus))
    want = [e.event_id for e in events if e.data.interval != "1m"]
    await wait_for(_true_when(lambda: len(seen) == len(want)))
    consumer.stop()
    await task
    assert [e.event_id for e in seen] == want
    info = await bus.jetstream().consumer_info("BARS", consumer.durable)
    assert info.num_ack_pending == 0
    if narrowed:
        assert info.config.filter_subjects == ["bars.5m.*", "bars.15m.*"]
        assert info.num_pending == 0 and info.delivered.consumer_seq == len(want)  # 1m bars never sent


async def test_servers_before_2_10_get_the_covering_subject(bus: NatsClient):
    consumer = _consumer([], name="old", subject="bars.>", filter_subjects=("bars.5m.*",))
    await consumer.ensure(bus.jetstream(), (2, 9))
    info = await bus.jetstream().consumer_info("BARS", consumer.durable)
    assert info.config.filter_subject == "bars.>" and not info.config.filter_subjects


async def test_held_deliveries_stay_unacked_until_released(bus: NatsClient):
    events = await _publish_mixed(bus)
    kept = {events[0].event_id, events[4].event_id}
    seen: list[BarEvent] = []
    consumer = _consumer(seen, name="hold", subject="bars.>", hold=kept)
    task = asyncio.create_task(consumer.run(bus))
    await wait_for(_true_when(lambda: len(seen) == len(events)))
    js = bus.jetstream()
    assert consumer.held == 2
    assert (await js.consumer_info("BARS", consumer.durable)).num_ack_pending == 2
    assert await consumer_lag(js, consumer) == 2

    await consumer.redeliver_held()  # the handler lost them: they come again, and are held again
    await wait_for(_true_when(lambda: len(seen) == len(events) + 2))
    assert {e.event_id for e in seen[len(events) :]} == kept
    assert consumer.held == 2

    await consumer.release([events[0].event_id, "unknown"])
    assert consumer.held == 1
    await consumer.release(kept)
    consumer.stop()
    await task
    assert consumer.held == 0

    async def all_acked() -> bool:
        return (await js.consumer_info("BARS", consumer.durable)).num_ack_pending == 0

    await wait_for(all_acked, what="every delivery acked")
