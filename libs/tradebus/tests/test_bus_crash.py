"""No delivery is lost, whatever stops the consumer: real consumer processes on a real JetStream,
stopped gracefully while traffic arrives, killed with SIGKILL inside a chunk, and cut off by a
nats-server killed and restarted inside a chunk. After each, a consumer handles every published
event, the first handling of each in stream order (redelivered leftovers are handled again,
which services recognise by event id)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from tradebus import subjects
from tradebus.bus import BatchConsumer, Publisher, ensure_streams
from tradebus.embedded import EmbeddedNats
from tradebus.events import BarEvent, BarSource, make_bar
from tradebus.testing import wait_for

WORKER = Path(__file__).with_name("consumer_worker.py")
MINUTE_MS = 60_000
START_MS = 1_700_000_040_000


def _events(first: int, count: int) -> list[BarEvent]:
    def bar(minute: int) -> BarEvent:
        made = make_bar("CRASHUSDT", "1m", START_MS + minute * MINUTE_MS, Decimal("10"), Decimal("11"),
                        Decimal("9"), Decimal("10.5"), Decimal("1"), Decimal("10"), 3, BarSource.REPLAY)  # fmt: skip
        return BarEvent.of(made, source="ingest")

    return [bar(m) for m in range(first, first + count)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    nats_server = EmbeddedNats(tmp_path / "nats").start()
    yield nats_server
    nats_server.stop()


@pytest.fixture
async def bus(server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    await ensure_streams(nc.jetstream())
    yield nc
    await nc.close()


class Worker:
    """One consumer process and the ids it says it handled."""

    def __init__(self, url: str, log: Path, *, delay_s: float = 0.0, batch_size: int = 50) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), url, "crash", str(log), str(delay_s), str(batch_size)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == b"ready"

    def handled(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []

    async def until_handled(self, count: int, what: str) -> None:
        async def enough() -> bool:
            return len(self.handled()) >= count

        await wait_for(enough, what=what)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(30) == 0


async def _publish(nc: NatsClient, events: list[BarEvent]) -> None:
    await Publisher(nc, "test").publish_many((subjects.bars("1m", "CRASHUSDT"), e) for e in events)


def _first_handlings(*logs: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for log in logs:
        for event_id in log:
            seen.setdefault(event_id)
    return list(seen)


async def _all_handled(worker: Worker, events: list[BarEvent], what: str) -> None:
    last = events[-1].event_id

    async def done() -> bool:
        return last in worker.handled()

    await wait_for(done, timeout=60, what=what)


def _assert_nothing_lost(events: list[BarEvent], *logs: list[str]) -> None:
    wanted = [e.event_id for e in events]
    first = _first_handlings(*logs)
    missing = sorted(set(wanted) - set(first))
    assert not missing, f"{len(missing)} of {len(wanted)} events never handled, e.g. {missing[:3]}"
    assert first == wanted, "each event first handled in stream order"
    later = logs[-1]
    assert later == sorted(later, key=wanted.index), "the restarted consumer handles in stream order"


async def test_a_consumer_killed_inside_a_chunk_loses_nothing(bus: NatsClient, server: EmbeddedNats, tmp_path: Path):
    events = _events(0, 400)
    await _publish(bus, events)
    first = Worker(server.url, tmp_path / "first.log", delay_s=0.002)
    await first.until_handled(120, "the first consumer inside its chunks")
    first.kill()
    killed_after = len(first.handled())
    assert killed_after < len(events), "killed before the end"
    second = Worker(server.url, tmp_path / "second.log")
    await _all_handled(second, events, "every event handled after the kill")
    second.stop()
    _assert_nothing_lost(events, first.handled(), second.handled())
    redone = set(first.handled()) & set(second.handled())
    assert len(redone) <= 50, f"only the killed chunk comes again, not {len(redone)} events"


async def test_a_graceful_stop_while_traffic_arrives_loses_nothing(
    bus: NatsClient, server: EmbeddedNats, tmp_path: Path
):
    events = _events(1000, 300)
    first = Worker(server.url, tmp_path / "first.log", delay_s=0.01, batch_size=500)  # a pull spans chunks
    publishing = asyncio.create_task(_trickle(bus, events))

    await first.until_handled(30, "the first consumer handling traffic")
    first.stop()  # with deliveries queued behind the chunk in hand
    info = await bus.jetstream().consumer_info("BARS", "crash")
    assert info.num_ack_pending, "the stop left deliveries queued (else this test proves nothing)"
    await publishing
    second = Worker(server.url, tmp_path / "second.log")
    await _all_handled(second, events, "every event handled after the stop")
    second.stop()
    _assert_nothing_lost(events, first.handled(), second.handled())


async def _trickle(nc: NatsClient, events: list[BarEvent]) -> None:
    for start in range(0, len(events), 10):
        await _publish(nc, events[start : start + 10])
        await asyncio.sleep(0.01)


async def test_a_nats_server_killed_and_restarted_inside_a_chunk_loses_nothing(
    bus: NatsClient, server: EmbeddedNats, tmp_path: Path
):
    events = _events(2000, 400)
    await _publish(bus, events)
    worker = Worker(server.url, tmp_path / "worker.log", delay_s=0.002)
    await worker.until_handled(100, "the consumer inside its chunks")
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    restarted = EmbeddedNats(server.store_dir, port=server.port).start()
    server.process = restarted.process
    await _all_handled(worker, events, "every event handled after the server's restart")
    worker.stop()
    _assert_nothing_lost(events, worker.handled())


class _Lossy(BatchConsumer[BarEvent]):
    """Drops one delivery on its way in, as a connection cut would."""

    lose_stream_seq = 0

    async def consume(self, batch: list[Msg]) -> bool:  # type: ignore[override]
        kept = [m for m in batch if m.metadata.sequence.stream != self.lose_stream_seq]
        if len(kept) < len(batch):
            self.lose_stream_seq = 0  # only its first delivery is lost
        return await super().consume(kept) if kept else True


async def test_a_delivery_lost_in_flight_is_pulled_again_before_anything_after_it(bus: NatsClient):
    events = _events(3000, 30)
    handled: list[str] = []

    async def handler(batch: list[BarEvent]) -> None:
        handled.extend(e.event_id for e in batch)

    consumer = _Lossy(service="test", name="lossy", model=BarEvent, handler=handler, publisher=lambda: None,  # type: ignore[arg-type,return-value]
                      stream="BARS", durable="test-lossy", subject="bars.1m.CRASHUSDT", batch_size=5)  # fmt: skip
    stream_first = (await bus.jetstream().stream_info("BARS")).state.last_seq + 1
    consumer.lose_stream_seq = stream_first + 7
    await _publish(bus, events)
    task = asyncio.create_task(consumer.run(bus))

    async def done() -> bool:
        return events[-1].event_id in handled

    await wait_for(done, what="the last event handled")
    consumer.stop()
    await asyncio.wait_for(task, 10)
    assert handled == [e.event_id for e in events], "the lost delivery came again, in its place"
    info = await bus.jetstream().consumer_info("BARS", "test-lossy")
    assert info.num_ack_pending == 0 and info.num_pending == 0
