"""Publisher on a real JetStream: a batch is stored in order with its `Nats-Msg-Id`s (a repeat is
dropped, not an error), concurrent batches each get their own acks, and what the server refuses
or never acknowledges raises instead of passing or hanging."""

from __future__ import annotations

import asyncio

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import DiscardPolicy, StreamConfig

from tradebus.bus import Publisher


@pytest.fixture
async def bus(private_nats_url: str):
    nc = await nats.connect(private_nats_url)
    await nc.jetstream().add_stream(StreamConfig(name="PUB", subjects=["pub.>"]))
    yield nc
    await nc.close()


async def _stored(nc: NatsClient, stream: str = "PUB") -> list[bytes]:
    js = nc.jetstream()
    last = (await js.stream_info(stream)).state.last_seq
    return [(await js.get_msg(stream, seq)).data or b"" for seq in range(1, last + 1)]


async def test_a_batch_is_stored_in_order_and_a_repeat_is_dropped(bus: NatsClient) -> None:
    publisher = Publisher(bus, "test")
    messages = [("pub.a", f"m{i}".encode(), f"id-{i}") for i in range(300)]
    await asyncio.gather(publisher.publish_encoded(messages[:150]), publisher.publish_encoded(messages[150:]))
    await publisher.publish_encoded(messages[:10])  # redelivered work publishing the same ids again
    assert await _stored(bus) == [payload for _, payload, _ in messages]


async def test_a_subject_no_stream_takes_raises(bus: NatsClient) -> None:
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await Publisher(bus, "test").publish_raw("nowhere.a", b"x", "id-1")


async def test_a_refused_message_raises_after_the_rest_of_its_batch_is_stored(bus: NatsClient) -> None:
    await bus.jetstream().add_stream(
        StreamConfig(name="FULL", subjects=["full.>"], max_msgs=2, discard=DiscardPolicy.NEW)
    )
    with pytest.raises(nats.js.errors.APIError, match="maximum messages"):
        await Publisher(bus, "test").publish_encoded([("full.a", f"m{i}".encode(), f"id-{i}") for i in range(3)])
    assert await _stored(bus, "FULL") == [b"m0", b"m1"]


async def test_acks_that_never_come_time_out(bus: NatsClient) -> None:
    silent = await bus.subscribe("silent.a")  # a responder that never answers: no 503, no ack
    with pytest.raises(nats.errors.TimeoutError):
        await Publisher(bus, "test", ack_timeout_s=0.3).publish_raw("silent.a", b"x", "id-1")
    await silent.unsubscribe()
