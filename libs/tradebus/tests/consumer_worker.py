"""A consumer process for the crash tests: handles bar events with `BatchConsumer` and appends
each handled event id to a log file (flushed before the chunk is acked, so what it says was
handled survives a kill -9), slowly enough that a kill lands inside a chunk.

usage: consumer_worker.py NATS_URL DURABLE LOG DELAY_S [BATCH_SIZE]
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import nats

from tradebus.bus import BatchConsumer, Publisher
from tradebus.events import BarEvent


async def main(url: str, durable: str, log_path: Path, delay_s: float, batch_size: int) -> None:
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    log = log_path.open("a", buffering=1)

    async def handler(events: list[BarEvent]) -> None:
        for event in events:
            await asyncio.sleep(delay_s)
            log.write(f"{event.event_id}\n")
        log.flush()

    consumer: BatchConsumer[BarEvent] = BatchConsumer(
        service="worker",
        name=durable,
        model=BarEvent,
        handler=handler,
        publisher=lambda: Publisher(nc, "worker"),
        stream="BARS",
        durable=durable,
        subject="bars.1m.*",
        batch_size=batch_size,
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, consumer.stop)
    print("ready", flush=True)
    await consumer.run(nc)
    await nc.drain()
    log.close()


if __name__ == "__main__":
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 50
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4]), batch))
