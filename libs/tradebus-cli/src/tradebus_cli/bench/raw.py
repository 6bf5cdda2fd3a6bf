"""Baselines on bare nats-py, in the same run and on the same server as the pipeline.

- `jetstream_throughput`: publish N messages with `publish_async` into a file-backed stream,
  then drain them with a pull consumer that acks each one: the cost of moving N messages
  through JetStream once, in and out, with nothing else done to them.
- `relay_latency`: three relay processes forward core-NATS messages hop0 → hop1 → hop2 → hop3
  while a sender paces messages at a fixed rate; latency is send → receive after three hops.
  With `durable=True` every hop is a JetStream one, as in the pipeline: the sender and each
  relay publish into a file stream and await the ack, each relay takes its messages from a
  durable push consumer and acks each one after forwarding it; the receiver still listens on a
  core subscription (as the bench listens for signals).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig

from tradebus.bench import stopwatch

STREAM = "RAWBENCH"
RELAY_STREAM = "RAWRELAY"
FETCH_BATCH = 1000
HOPS = 3


@dataclass(frozen=True, slots=True)
class Throughput:
    count: int
    publish_s: float
    consume_s: float

    @property
    def per_s(self) -> float:
        """Messages per second through publish and consume together."""
        return self.count / (self.publish_s + self.consume_s)


async def jetstream_throughput(nats_url: str, count: int, payload: bytes) -> Throughput:
    nc = await nats.connect(nats_url)
    js = nc.jetstream(publish_async_max_pending=4000)
    await js.add_stream(StreamConfig(name=STREAM, subjects=["rawbench.>"], storage=StorageType.FILE))
    try:
        with stopwatch() as publish:
            for i in range(count):
                await js.publish_async(f"rawbench.{i % 10}", payload)
            await js.publish_async_completed()
        sub = await js.pull_subscribe("rawbench.>", durable="rawbench")
        received = 0
        with stopwatch() as consume:
            while received < count:
                for msg in await sub.fetch(FETCH_BATCH, timeout=10):
                    await msg.ack()
                    received += 1
        return Throughput(count, publish(), consume())
    finally:
        await js.delete_stream(STREAM)
        await nc.close()


async def _relay(nats_url: str, source: str, target: str) -> None:
    """One core hop: forward every message on `source` to `target` unchanged."""
    nc = await nats.connect(nats_url)

    async def forward(msg: Msg) -> None:
        await nc.publish(target, msg.data)

    await nc.subscribe(source, cb=forward)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def _durable_relay(nats_url: str, source: str, target: str) -> None:
    """One JetStream hop: a durable consumer of `source` publishes each message to `target`,
    awaits the stream's ack, then acks the message."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()

    async def forward(msg: Msg) -> None:
        await js.publish(target, msg.data)
        await msg.ack()

    await js.subscribe(source, durable=source.replace(".", "-"), cb=forward, manual_ack=True)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def relay_latency(
    nats_url: str, rate: float, duration_s: float, *, warmup_s: float = 0.0, durable: bool = False
) -> list[float]:
    """Latencies in ms of messages paced at `rate`/s for `duration_s` through three relay processes,
    after `warmup_s` of the same traffic that is not counted."""
    prefix = f"{RELAY_STREAM.lower()}." if durable else ""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    if durable:
        await js.add_stream(StreamConfig(name=RELAY_STREAM, subjects=[f"{prefix}>"], storage=StorageType.FILE))
    relays = [
        subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
            [sys.executable, "-m", "tradebus_cli.bench.raw", nats_url, f"{prefix}hop{i}", f"{prefix}hop{i + 1}"]
            + (["durable"] if durable else []),
            stdout=subprocess.PIPE,
            env={**os.environ},
        )
        for i in range(HOPS)
    ]
    try:
        for relay in relays:
            assert relay.stdout is not None
            await asyncio.to_thread(relay.stdout.readline)
        return await _paced_round_trips(nc, prefix, rate, warmup_s, duration_s, durable)
    finally:
        for relay in relays:
            relay.terminate()
            relay.wait(10)
        if durable:
            await js.delete_stream(RELAY_STREAM)
        await nc.close()


async def _paced_round_trips(
    nc: NatsClient, prefix: str, rate: float, warmup_s: float, duration_s: float, durable: bool
) -> list[float]:
    latencies: list[float] = []
    js = nc.jetstream()
    measured_from_ns = time.time_ns() + int(warmup_s * 1e9)

    async def arrived(msg: Msg) -> None:
        sent_ns = int(msg.data[:19])
        if sent_ns >= measured_from_ns:
            latencies.append((time.time_ns() - sent_ns) / 1e6)

    await nc.subscribe(f"{prefix}hop{HOPS}", cb=arrived)
    await nc.flush()
    padding = b" " * 480  # about the size of a bar event
    total = int(rate * (warmup_s + duration_s))
    acks = []
    start = time.monotonic()
    for i in range(total):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        payload = b"%019d" % time.time_ns() + padding
        if durable:
            acks.append(await js.publish_async(f"{prefix}hop0", payload))
        else:
            await nc.publish(f"{prefix}hop0", payload)
    await asyncio.gather(*acks)
    await asyncio.sleep(1.0)
    return latencies


if __name__ == "__main__":
    url, source, target, *mode = sys.argv[1:]
    asyncio.run((_durable_relay if mode == ["durable"] else _relay)(url, source, target))
