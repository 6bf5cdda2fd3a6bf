"""A service process for the lease tests: the shell with one consumer that appends each handled
event id to a log; prints its readiness lease detail when it changes.

usage: lease_worker.py NATS_URL DATABASE_URL INSTANCE LOG
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from tradebus.events import BarEvent
from tradebus.natsauth import ADMIN
from tradebus.service import Service
from tradebus.settings import Settings


async def main(nats_url: str, database_url: str, instance: str, log_path: Path) -> None:
    settings = Settings(  # a service outside the permission table logs in as admin
        nats_url=nats_url,
        database_url=database_url,
        instance=instance,
        heartbeat_interval_s=0.5,
        nats_user=ADMIN,
        symbols=("LEASEUSDT",),
    )
    service = Service("leasetest", settings)
    log = log_path.open("a", buffering=1)

    @service.consumer(name="bars", stream="BARS", subject="bars.1m.*", model=BarEvent)
    async def on_bars(events: list[BarEvent]) -> None:
        for event in events:
            log.write(f"{event.event_id}\n")
        log.flush()

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await service.start()
    said = ""
    while not stop.is_set():
        _, checks = await service.readiness()
        detail = checks["lease"].detail
        if detail != said:
            print(detail, flush=True)
            said = detail
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
    await service.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))
