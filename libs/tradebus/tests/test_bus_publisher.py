"""Publisher on a real JetStream: a batch is stored in order with its `Nats-Msg-Id`s (a repeat is
dropped, not an error), concurrent batches each get their own acks, and what the server refuses
or never acknowledges raises instead of passing or hanging."""

from __future__ import annotations

import asyncio
import time

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import DiscardPolicy, StreamConfig

from tradebus.bus import Publisher, PublishRefused, is_transient


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
    with pytest.raises(PublishRefused, match="no stream"):
        await Publisher(bus, "test").publish_raw("nowhere.a", b"x", "id-1")


async def test_a_refused_message_raises_after_the_rest_of_its_batch_is_stored(bus: NatsClient) -> None:
    await bus.jetstream().add_stream(
        StreamConfig(name="FULL", subjects=["full.>"], max_msgs=2, discard=DiscardPolicy.NEW)
    )
    with pytest.raises(PublishRefused, match="maximum messages"):
        await Publisher(bus, "test").publish_encoded([("full.a", f"m{i}".encode(), f"id-{i}") for i in range(3)])
    assert await _stored(bus, "FULL") == [b"m0", b"m1"]


async def test_acks_that_never_come_time_out(bus: NatsClient) -> None:
    silent = await bus.subscribe("silent.a")  # a responder that never answers: no 503, no ack
    with pytest.raises(nats.errors.TimeoutError):
        await Publisher(bus, "test", ack_timeout_s=0.3).publish_raw("silent.a", b"x", "id-1")
    await silent.unsubscribe()


@pytest.fixture
def permissioned_url(tmp_path):  # type: ignore[no-untyped-def]
    """A nats-server whose one user may publish only `pub.ok.>` (and use JetStream)."""
    import subprocess

    from tradebus.embedded import free_port, nats_answers, nats_server_binary

    config = tmp_path / "perm.conf"
    config.write_text(
        "authorization { users = [ { user: a, password: pw, permissions: {"
        ' publish: ["$JS.API.>", "pub.ok.>"], subscribe: ["_INBOX.>"] } } ] }\n'
    )
    port = free_port()
    args = [nats_server_binary(), "-c", str(config), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path)]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not nats_answers(f"nats://127.0.0.1:{port}"):
            assert time.monotonic() < deadline and server.poll() is None, "nats-server did not start"
            time.sleep(0.05)
        yield f"nats://a:pw@127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


async def test_a_publish_the_server_forbids_is_refused_not_an_outage(permissioned_url: str) -> None:
    """A subject outside the user's permissions: the server drops it and tells only the error
    callback; the publish fails as refused (dead-lettered after its attempts), not as a timeout
    that would be retried forever."""

    async def on_error(exc: Exception) -> None:
        del exc

    nc = await nats.connect(permissioned_url, error_cb=on_error)
    try:
        await nc.jetstream().add_stream(StreamConfig(name="PUB", subjects=["pub.>"]))
        publisher = Publisher(nc, "test", ack_timeout_s=1.0)
        await publisher.publish_raw("pub.ok.a", b"x", "id-1")
        with pytest.raises(PublishRefused, match=r"(?i)permissions violation") as refused:
            await publisher.publish_raw("pub.denied.BTCUSDT", b"x", "id-2")  # upper case, as symbols are
        assert not is_transient(refused.value)
    finally:
        await nc.close()


def test_outages_are_transient_and_refusals_are_not() -> None:
    import asyncpg

    assert is_transient(nats.errors.ConnectionClosedError())
    assert is_transient(nats.errors.TimeoutError())
    assert is_transient(asyncpg.exceptions.ConnectionDoesNotExistError("gone"))
    assert is_transient(asyncpg.exceptions.CannotConnectNowError("starting"))
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(PublishRefused("no stream"))
    assert not is_transient(nats.errors.MaxPayloadError())
    assert not is_transient(nats.errors.BadSubjectError())
    assert is_transient(FileNotFoundError(2, "No such file or directory"))  # PostgreSQL's socket, restarting
    assert is_transient(OSError(101, "Network is unreachable"))
    assert not is_transient(FileNotFoundError(2, "No such file or directory", "/etc/missing.conf"))
    assert not is_transient(PermissionError("not a network failure"))
    assert not is_transient(asyncpg.exceptions.UniqueViolationError("a bug"))
