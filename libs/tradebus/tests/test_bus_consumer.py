"""BatchConsumer on a real JetStream: narrowed filter subjects (and the fallback for servers
before 2.10), ack-all settling, retries in place through an outage, and deliveries a handler
holds back until it releases them."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tradebus import subjects
from tradebus.bus import BatchConsumer, Publisher, consumer_lag, ensure_streams
from tradebus.events import BarEvent, BarSource, Envelope, Mode, make_bar
from tradebus.service import Service
from tradebus.settings import Settings
from tradebus.testing import wait_for
from tradebus.timeframes import interval_ms


def _true_when(check):  # type: ignore[no-untyped-def]
    async def predicate() -> bool:
        return bool(check())

    return predicate


def _event(interval: str, minute: int) -> BarEvent:
    bar = make_bar(
        "BTCUSDT",
        interval,  # type: ignore[arg-type]
        1_700_000_100_000 // 900_000 * 900_000 + minute * interval_ms(interval),
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
    await Publisher(nc, "test").publish_many((subjects.bars(e.data.interval, "BTCUSDT"), e) for e in events)
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
    consumer = _consumer(seen, name="hold", subject="bars.>", hold=kept, holds=True)
    task = asyncio.create_task(consumer.run(bus))
    await wait_for(_true_when(lambda: len(seen) == len(events)))
    js = bus.jetstream()
    assert consumer.held == 2
    assert (await js.consumer_info("BARS", consumer.durable)).num_ack_pending == 2
    assert await consumer_lag(js, consumer) == 2

    await consumer.release([events[0].event_id, "unknown"])
    assert consumer.held == 1
    await consumer.release(kept)
    consumer.stop()
    await task
    assert consumer.held == 0

    async def all_acked() -> bool:
        return (await js.consumer_info("BARS", consumer.durable)).num_ack_pending == 0

    await wait_for(all_acked, what="every delivery acked")


async def _ack_pending(nc: NatsClient, durable: str) -> int:
    return int((await nc.jetstream().consumer_info("BARS", durable)).num_ack_pending)


async def test_ack_all_settles_a_chunk_with_a_dead_letter_inside(bus: NatsClient):
    js = bus.jetstream()
    dlq = await js.subscribe("dlq.test", durable="t-dlq")
    good = [_event("1m", i) for i in range(5)]
    publisher = Publisher(bus, "test")
    await publisher.publish_many(("bars.1m.BTCUSDT", e) for e in good[:2])
    await js.publish("bars.1m.BTCUSDT", b"{not json", headers={"Nats-Msg-Id": "junk"})
    await publisher.publish_many(("bars.1m.BTCUSDT", e) for e in good[2:])
    seen: list[BarEvent] = []
    consumer = _consumer(seen, name="all", subject="bars.1m.*")
    consumer._publisher = lambda: publisher
    task = asyncio.create_task(consumer.run(bus))
    await wait_for(_true_when(lambda: len(seen) == len(good)))
    assert [e.event_id for e in seen] == [e.event_id for e in good]
    assert (await dlq.next_msg(timeout=5)).data.find(b'"reason":"malformed"') > 0
    await wait_for(_true_when_async(lambda: _ack_pending(bus, consumer.durable)), what="the chunk acked")
    consumer.stop()
    await task
    info = await js.consumer_info("BARS", consumer.durable)
    assert info.config.ack_policy == AckPolicy.ALL and info.ack_floor.stream_seq == len(good) + 1


async def test_a_chunk_handled_before_and_sent_again_is_acked_to_its_end(bus: NatsClient):
    """A nats-server restart can lose acks: the durable comes back (or is rewound) to an older ack
    floor and sends again what this process handled. Those deliveries are skipped, and the ack-all
    must cover the chunk's last of them: acking its first left the rest unacked for good (the
    chaos suite's kill-nats-server, 148 deliveries)."""
    js = bus.jetstream()
    events = [_event("1m", i) for i in range(10)]
    await Publisher(bus, "test").publish_many(("bars.1m.BTCUSDT", e) for e in events)
    seen: list[BarEvent] = []
    consumer = _consumer(seen, name="again", subject="bars.1m.*")
    task = asyncio.create_task(consumer.run(bus))
    await wait_for(_true_when(lambda: len(seen) == len(events)))
    consumer.stop()
    await task
    config = (await js.consumer_info("BARS", consumer.durable)).config
    await js.delete_consumer("BARS", consumer.durable)  # the server forgot the acks: all of it comes again
    await js.add_consumer(
        "BARS", dataclasses.replace(config, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=1)
    )
    consumer._deliveries.expected = 1
    consumer._stopping.clear()
    task = asyncio.create_task(consumer.run(bus))

    async def all_acked() -> bool:
        info = await js.consumer_info("BARS", consumer.durable)
        return info.num_pending == 0 and info.num_ack_pending == 0 and info.ack_floor.stream_seq == len(events)

    await wait_for(all_acked, what="the deliveries sent again acked to the last")
    assert len(seen) == len(events)  # none handled twice
    consumer.stop()
    await task


async def test_outage_is_retried_in_place_in_order_and_a_stop_acks_nothing(bus: NatsClient):
    events = [_event("1m", i) for i in range(4)]
    await Publisher(bus, "test").publish_many(("bars.1m.BTCUSDT", e) for e in events)
    handled: list[str] = []
    outage = {"of": events[1].event_id, "left": 3}

    async def handler(batch: list[BarEvent]) -> None:
        if any(e.event_id == outage["of"] for e in batch) and outage["left"]:
            outage["left"] -= 1
            raise OSError("database unreachable")
        handled.extend(e.event_id for e in batch)

    def instance() -> BatchConsumer[BarEvent]:
        return BatchConsumer(
            service="test", name="outage", model=BarEvent, handler=handler, publisher=lambda: None,  # type: ignore[arg-type,return-value]
            stream="BARS", durable="test-outage", subject="bars.1m.*",
        )  # fmt: skip

    consumer = instance()
    task = asyncio.create_task(consumer.run(bus))
    await wait_for(_true_when(lambda: events[-1].event_id in handled))
    consumer.stop()
    await task
    assert handled == [e.event_id for e in events], "after the outage the same order, nothing skipped"
    assert await _ack_pending(bus, consumer.durable) == 0

    more = [_event("1m", i) for i in range(10, 12)]
    outage.update({"of": more[0].event_id, "left": 10**6})  # an outage that outlasts this instance
    await Publisher(bus, "test").publish_many(("bars.1m.BTCUSDT", e) for e in more)
    consumer = instance()
    task = asyncio.create_task(consumer.run(bus))
    await wait_for(_true_when(lambda: outage["left"] < 10**6 - 1))
    consumer.stop()
    await asyncio.wait_for(task, 5)
    assert handled == [e.event_id for e in events]
    assert await _ack_pending(bus, consumer.durable) == 2, "stopping acked nothing"

    outage["left"] = 0  # the outage is over: the next instance gets both, in order, first
    consumer = instance()
    task = asyncio.create_task(consumer.run(bus))
    await wait_for(_true_when(lambda: more[-1].event_id in handled), what="both come to the next instance")
    consumer.stop()
    await task
    assert handled == [e.event_id for e in events + more]
    assert await _ack_pending(bus, consumer.durable) == 0


async def test_an_existing_explicit_durable_keeps_acking_each(bus: NatsClient):
    await bus.jetstream().add_consumer(
        "BARS", ConsumerConfig(durable_name="test-old", filter_subject="bars.1m.*", ack_policy=AckPolicy.EXPLICIT)
    )
    events = [_event("1m", i) for i in range(3)]
    await Publisher(bus, "test").publish_many(("bars.1m.BTCUSDT", e) for e in events)
    seen: list[BarEvent] = []
    consumer = _consumer(seen, name="old", subject="bars.1m.*")
    task = asyncio.create_task(consumer.run(bus))
    await wait_for(_true_when(lambda: len(seen) == 3))
    await wait_for(_true_when_async(lambda: _ack_pending(bus, consumer.durable)), what="each delivery acked")
    consumer.stop()
    await task


async def test_a_holding_consumer_refuses_an_ack_all_durable(bus: NatsClient):
    await bus.jetstream().add_consumer(
        "BARS", ConsumerConfig(durable_name="test-h", filter_subject="bars.1m.*", ack_policy=AckPolicy.ALL)
    )
    consumer = _consumer([], name="h", subject="bars.1m.*", holds=True)
    with pytest.raises(RuntimeError, match="acks all"):
        await consumer.ensure(bus.jetstream())


def _lingering_event(minute: int, mode: Mode = Mode.LIVE) -> BarEvent:
    bar = make_bar("LINGERUSDT", "1m", 1_700_000_040_000 + minute * 60_000, Decimal("10"), Decimal("11"),
                   Decimal("9"), Decimal("10.5"), Decimal("1"), Decimal("10"), 3, BarSource.REPLAY)  # fmt: skip
    return BarEvent.of(bar, source="ingest", mode=mode)


async def test_a_lingering_consumer_gathers_messages_and_pulls_a_backlog_at_once(bus: NatsClient):
    """Telemetry lingers: a backlog comes in full chunks one after another, and messages that
    trickle in are handled together after the linger, not one wake-up each."""
    publisher = Publisher(bus, "test")
    backlog = [_lingering_event(i) for i in range(12)]
    await publisher.publish_many(("bars.1m.LINGERUSDT", e) for e in backlog)
    chunks: list[list[str]] = []

    async def handler(events: list[BarEvent]) -> None:
        chunks.append([e.event_id for e in events])

    consumer = BatchConsumer(
        service="test", name="linger", model=BarEvent, handler=handler, publisher=lambda: None,  # type: ignore[arg-type,return-value]
        stream="BARS", durable="test-linger", subject="bars.1m.LINGERUSDT", batch_size=5, linger_s=3.0,
    )  # fmt: skip
    task = asyncio.create_task(consumer.run(bus))
    await wait_for(_true_when(lambda: sum(map(len, chunks)) == 12), timeout=2.5)  # full requests: no linger between
    assert [i for c in chunks for i in c] == [e.event_id for e in backlog] and all(len(c) <= 5 for c in chunks)
    # (a request's deliveries may reach the queue in parts, [4, 1, 5, 2]: each part is handled as it
    # comes, and a gathered request handled whole lost deliveries after a nats-server restart)

    trickle = [_lingering_event(i) for i in range(12, 18)]
    for event in trickle:
        await publisher.publish("bars.1m.LINGERUSDT", event)
        await asyncio.sleep(0.05)
    await wait_for(_true_when(lambda: sum(map(len, chunks)) == 18))
    assert len(chunks) <= 5, f"6 messages over 0.3 s in at most two chunks, got {[len(c) for c in chunks]}"
    assert [i for c in chunks for i in c] == [e.event_id for e in backlog + trickle]
    await wait_for(_true_when_async(lambda: _ack_pending(bus, consumer.durable)), what="every chunk acked")
    consumer.stop()
    await asyncio.wait_for(task, 2)  # a stop ends the linger at once
    info = await bus.jetstream().consumer_info("BARS", consumer.durable)
    assert info.num_pending == 0 and info.ack_floor.stream_seq == info.delivered.stream_seq


async def test_a_consumer_lingers_only_while_its_events_are_replayed(bus: NatsClient):
    """Risk's signals: replayed ones that trickle in are gathered, live ones handled as they come."""
    publisher = Publisher(bus, "test")
    chunks: list[list[BarEvent]] = []

    async def handler(events: list[BarEvent]) -> None:
        chunks.append(events)

    consumer = BatchConsumer(
        service="test", name="replay-linger", model=BarEvent, handler=handler, publisher=lambda: None,  # type: ignore[arg-type,return-value]
        stream="BARS", durable="test-replay-linger", subject="bars.1m.LINGERUSDT", batch_size=50, linger_s=1.0,
        linger_while=lambda events: events[-1].mode is Mode.REPLAY,
    )  # fmt: skip
    task = asyncio.create_task(consumer.run(bus))

    async def trickle(minutes: range, mode: Mode) -> None:
        for minute in minutes:
            await publisher.publish("bars.1m.LINGERUSDT", _lingering_event(minute, mode))
            await asyncio.sleep(0.05)

    await trickle(range(4), Mode.LIVE)  # not lingering: each one as it arrives
    await wait_for(_true_when(lambda: sum(map(len, chunks)) == 4))
    assert [len(c) for c in chunks] == [1, 1, 1, 1]
    await trickle(range(4, 12), Mode.REPLAY)  # the first replayed chunk starts the lingering
    await wait_for(_true_when(lambda: sum(map(len, chunks)) == 12))
    assert len(chunks) <= 4 + 3, (
        f"8 replayed messages over 0.4 s in at most three chunks, got {[len(c) for c in chunks]}"
    )
    lingered = len(chunks)
    await trickle(range(12, 13), Mode.LIVE)  # may wait out the linger it finds, and ends it
    await wait_for(_true_when(lambda: sum(map(len, chunks)) == 13))
    await trickle(range(13, 17), Mode.LIVE)
    await wait_for(_true_when(lambda: sum(map(len, chunks)) == 17))
    assert [len(c) for c in chunks[lingered + 1 :]] == [1, 1, 1, 1]
    assert [e.data.open_ms for c in chunks for e in c] == [_lingering_event(m).data.open_ms for m in range(17)]
    consumer.stop()
    await asyncio.wait_for(task, 2)


def _true_when_async(count):  # type: ignore[no-untyped-def]
    """True once the awaited count is zero."""

    async def predicate() -> bool:
        return await count() == 0

    return predicate


def test_a_consumer_reading_part_of_an_event_documents_the_contract_schema() -> None:
    class BarIdOnly(Envelope):
        """A consumer's own reading of `BarEvent`: the envelope only."""

    service = Service("demo", Settings(nats_url="nats://127.0.0.1:1", database_url="postgresql://x@127.0.0.1/x"))

    @service.consumer(name="ids", stream="BARS", subject="bars.1m.*", model=BarIdOnly, documented_as=BarEvent)
    async def on_ids(events: list[BarIdOnly]) -> None:
        del events

    schemas = service._asyncapi().to_jsonable()["components"]["schemas"]
    assert any("BarEvent" in name for name in schemas) and not any("BarIdOnly" in name for name in schemas)
