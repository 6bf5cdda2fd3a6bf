"""One active instance per service: a second process of the same service waits as a standby,
says who is active, handles nothing, and takes over (nothing lost) when the active one is
killed; a standby's own routes answer 503 while its health endpoints answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import httpx
import nats

from tradebus import subjects
from tradebus.bus import Publisher, ensure_streams
from tradebus.events import BarEvent, BarSource, Mode, make_bar
from tradebus.natsauth import ADMIN
from tradebus.service import Service
from tradebus.settings import Settings
from tradebus.testing import wait_for

WORKER = Path(__file__).with_name("lease_worker.py")


def _events(first: int, count: int) -> list[BarEvent]:
    def bar(minute: int) -> BarEvent:
        made = make_bar("LEASEUSDT", "1m", 1_700_000_040_000 + minute * 60_000, Decimal("10"), Decimal("11"),
                        Decimal("9"), Decimal("10.5"), Decimal("1"), Decimal("10"), 3, BarSource.REPLAY)  # fmt: skip
        return BarEvent.of(made, source="ingest", mode=Mode.REPLAY)

    return [bar(m) for m in range(first, first + count)]


class Instance:
    """A service process; collects what it prints (its lease detail as it changes)."""

    def __init__(self, nats_url: str, database_url: str, name: str, log: Path) -> None:
        self.log = log
        self.said: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), nats_url, database_url, name, str(log)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING"},
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.said.append(line.strip())

    def handled(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []

    def says(self, text: str):  # type: ignore[no-untyped-def]
        async def predicate() -> bool:
            return any(text in line for line in self.said)

        return predicate

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


async def test_a_second_instance_stands_by_and_takes_over_when_the_first_is_killed(
    private_nats_url: str, database_url: str, tmp_path: Path
):
    nc = await nats.connect(private_nats_url)
    await ensure_streams(nc.jetstream())
    publisher = Publisher(nc, "test")
    first = Instance(private_nats_url, database_url, "first", tmp_path / "first.log")
    second: Instance | None = None
    try:
        await wait_for(first.says("active instance first"), what="the first instance active")
        second = Instance(private_nats_url, database_url, "second", tmp_path / "second.log")
        await wait_for(second.says("standby: instance first"), what="the second says who is active")

        before = _events(0, 50)
        await publisher.publish_many((subjects.bars("1m", "LEASEUSDT"), e) for e in before)

        async def first_has_all() -> bool:
            return len(first.handled()) == len(before)

        await wait_for(first_has_all, what="the active instance handles everything")
        assert second.handled() == [], "a standby handles nothing"

        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        await wait_for(second.says("active instance second"), what="the standby takes over")
        after = _events(50, 50)
        await publisher.publish_many((subjects.bars("1m", "LEASEUSDT"), e) for e in after)

        async def second_has_the_rest() -> bool:
            return after[-1].event_id in second.handled()

        await wait_for(second_has_the_rest, what="the new active instance handles what follows")
        handled = first.handled() + [i for i in second.handled() if i not in set(first.handled())]
        assert handled == [e.event_id for e in before + after]
    finally:
        first.stop()
        if second is not None:
            second.stop()
        await nc.close()


async def test_a_standby_serves_health_but_not_its_routes(private_nats_url: str, database_url: str):
    def build(instance: str) -> Service:
        service = Service(
            "leaseapi",
            Settings(nats_url=private_nats_url, database_url=database_url, instance=instance, nats_user=ADMIN),
        )

        @service.router.get("/v1/thing")
        async def thing() -> dict[str, str]:
            return {"from": instance}

        return service

    active, standby = build("a"), build("b")
    await active.start()
    try:
        await standby.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=standby.app()), base_url="http://s") as c:
                thing = await c.get("/v1/thing")
                ready = await c.get("/health/ready")
                live = await c.get("/health/live")
            assert thing.status_code == 503 and "standby: instance a" in thing.json()["detail"]
            assert ready.status_code == 503 and ready.json()["checks"]["lease"]["ok"] is False
            assert live.status_code == 200
            await active.stop()

            async def taken_over() -> bool:
                return (await standby.readiness())[1]["lease"].ok

            await wait_for(taken_over, what="the standby takes over after a clean stop")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=standby.app()), base_url="http://s") as c:
                assert (await c.get("/v1/thing")).json() == {"from": "b"}
        finally:
            await standby.stop()
    finally:
        if not active.stopping.is_set():
            await active.stop()


async def test_an_active_instance_cut_off_from_the_database_pauses_then_resumes(
    private_nats_url: str, database_url: str, pg_admin_dsn: str
):
    """Its lease connection killed by the server (as a restart would): handling pauses, the lock is
    taken back with the same epoch, handling resumes — nothing else was active meanwhile."""

    service = Service(
        "leasecut", Settings(nats_url=private_nats_url, database_url=database_url, instance="solo", nats_user=ADMIN)
    )
    await service.start()
    try:
        assert service._lease is not None
        epoch = service._lease.epoch
        killed = await _terminate_lease_sessions(pg_admin_dsn, database_url)
        assert killed == 1

        async def paused() -> bool:
            return service._lease.interruptions == 1 if service._lease else False

        async def resumed() -> bool:
            return (await service.readiness())[1]["lease"].ok

        await wait_for(paused, what="handling paused", timeout=5)
        await wait_for(resumed, what="the lease held again")
        assert service._lease.epoch == epoch
    finally:
        await service.stop()


async def _terminate_lease_sessions(pg_admin_dsn: str, database_url: str) -> int:
    import asyncpg

    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        return int(
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                " WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = $1)",
                database_url.rsplit("/", 1)[1],
            )
        )
    finally:
        await admin.close()


async def test_an_instance_another_took_over_from_is_fenced_off(
    private_nats_url: str, database_url: str, pg_admin_dsn: str
):
    """Cut off from the database while another instance takes the lease: when it comes back it
    stops consuming for good and says so, instead of writing on stale memory."""
    from tradebus.lease import InstanceLease

    service = Service(
        "leasefence", Settings(nats_url=private_nats_url, database_url=database_url, instance="old", nats_user=ADMIN)
    )
    handled: list[str] = []

    @service.consumer(name="bars", stream="BARS", subject="bars.1m.*", model=BarEvent)
    async def on_bars(events: list[BarEvent]) -> None:
        handled.extend(e.event_id for e in events)

    await service.start()
    usurper = InstanceLease(database_url, service="leasefence", schema="leasefence", instance="new")
    try:
        while not await usurper.try_acquire():  # the old one may win a round back: cut it off again
            await _terminate_lease_sessions(pg_admin_dsn, database_url)

        async def fenced() -> bool:
            return "fenced off" in (await service.readiness())[1]["lease"].detail

        await wait_for(fenced, what="the old instance fenced off")
        status, checks = await service.readiness()
        assert status == "down" and "another instance" in checks["lease"].detail
        assert usurper.epoch == 2

        async def consumers_stopped() -> bool:
            return all(t.done() for t in service._consumer_tasks)

        await wait_for(consumers_stopped, what="the fenced instance's consumers stopped")
    finally:
        await usurper.release()
        await service.stop()
