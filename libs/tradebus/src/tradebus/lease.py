"""One active instance per service, until scale-out partitions the work: a PostgreSQL lease.

Durables ack all and a starting consumer rewinds its durable to the ack floor: both are sound
only while one process consumes each durable. A second instance therefore waits as a standby
instead of corrupting the first's work (two aggregators split the 1m bars and stored hundreds of
incomplete higher bars), and takes over when the active one stops or dies.

The lease is a session advisory lock on a connection of its own (PostgreSQL frees it the moment
that connection ends, a kill -9 included), plus a row in the service's own schema naming the
holder and an `epoch` bumped at every take-over. An active instance that loses its connection
stops handling (its consumers wait on `held`) until it has the lock again; if the epoch moved
meanwhile, another instance was active in between and this one's memory is stale: it is fenced
(`LeaseLost`) and must exit rather than write anything more.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from tradebus.logging import get_logger

log = get_logger(__name__)

LEASE_POLL_S: Final = 1.0
"""How often a standby tries the lock, and an active instance checks it still holds it."""


UNAVAILABLE: Final = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
"""What the lease's connection raises while PostgreSQL cannot be reached (or has ended it)."""


class LeaseLost(Exception):
    """Another instance was active while this one was cut off: this one must stop."""


@dataclass(frozen=True, slots=True)
class Holder:
    instance: str
    epoch: int
    acquired_at: datetime

    def describe(self) -> str:
        return f"instance {self.instance} (since {self.acquired_at.isoformat()}, epoch {self.epoch})"


class InstanceLease:
    """The lease of service `service` in the database at `dsn`, for `instance`."""

    def __init__(self, dsn: str, *, service: str, schema: str, instance: str, poll_s: float = LEASE_POLL_S) -> None:
        self._dsn = dsn
        self.service = service
        self._schema = schema
        self._table = f'"{schema}".instance_lease'
        self.instance = instance
        self.poll_s = poll_s
        self._conn: asyncpg.Connection | None = None
        self._using = asyncio.Lock()
        """One query at a time on the lease's one connection (readiness asks while a standby polls)."""
        self.epoch = 0
        self.held = asyncio.Event()
        """Set while this instance holds the lease; consumers wait on it before each chunk."""
        self.interruptions = 0
        """Times the lease's connection was lost while active."""

    async def try_acquire(self) -> bool:
        """Take the lease if it is free (recording this instance as its holder)."""
        async with self._using:
            conn = await self._connection()
            if not await self._try_lock(conn):
                return False
            self.epoch = await self._record(conn)
        self.held.set()
        log.info("instance lease taken", service=self.service, instance=self.instance, epoch=self.epoch)
        return True

    async def _record(self, conn: asyncpg.Connection) -> int:
        epoch: int = await conn.fetchval(
            f"""INSERT INTO {self._table} (service, instance, epoch, acquired_at) VALUES ($1, $2, 1, now())
                ON CONFLICT (service) DO UPDATE
                SET instance = EXCLUDED.instance, epoch = {self._table}.epoch + 1, acquired_at = now()
                RETURNING epoch""",
            self.service,
            self.instance,
        )
        return epoch

    async def acquire(self) -> None:
        """Wait as a standby until the lease is free, then take it."""
        told = False
        while True:
            try:
                if await self.try_acquire():
                    return
                if not told:
                    holder = await self.holder()
                    log.warning(
                        "another instance is active; waiting as a standby",
                        service=self.service,
                        holder=holder.describe() if holder else "unknown",
                    )
                    told = True
            except UNAVAILABLE as exc:
                log.warning("instance lease unavailable; retrying", error=repr(exc))
                await self._drop_connection()
            await asyncio.sleep(self.poll_s)

    async def holder(self) -> Holder | None:
        """Who holds (or last held) the lease."""
        async with self._using:
            return await self._holder(await self._connection())

    async def _holder(self, conn: asyncpg.Connection) -> Holder | None:
        row = await conn.fetchrow(
            f"SELECT instance, epoch, acquired_at FROM {self._table} WHERE service = $1", self.service
        )
        return Holder(row["instance"], row["epoch"], row["acquired_at"]) if row else None

    async def watch(self) -> None:
        """While active: check the lock's connection every `poll_s`; when it is gone, clear `held`
        and take the lock again; raise `LeaseLost` if another instance was active in between."""
        while True:
            await asyncio.sleep(self.poll_s)
            conn = self._conn  # this very session holds the lock: never a new one here
            try:
                if conn is None or conn.is_closed():
                    raise ConnectionError("the lease's connection is closed")
                async with self._using:
                    await conn.fetchval("SELECT 1", timeout=self.poll_s * 5)
                continue
            except (*UNAVAILABLE, TimeoutError) as exc:
                self.held.clear()
                self.interruptions += 1
                log.warning("instance lease connection lost; handling paused", error=repr(exc))
                await self._drop_connection()
            await self._take_back()

    async def _take_back(self) -> None:
        mine = self.epoch
        while True:
            try:
                async with self._using:
                    conn = await self._connection()
                    taken = await self._try_lock(conn)
                    holder = await self._holder(conn) if taken else None
                if taken:
                    if holder is None or holder.epoch != mine or holder.instance != self.instance:
                        raise LeaseLost(
                            f"{self.service}: another instance was active while this one was cut off "
                            f"({holder.describe() if holder else 'no holder recorded'})"
                        )
                    self.held.set()
                    log.info("instance lease held again; handling resumes", epoch=mine)
                    return
                raise LeaseLost(f"{self.service}: another instance took the lease while this one was cut off")
            except UNAVAILABLE as exc:
                log.debug("instance lease still unavailable", error=repr(exc))
                await self._drop_connection()
            await asyncio.sleep(self.poll_s)

    async def release(self) -> None:
        """Give the lease up (closing its connection frees the lock)."""
        self.held.clear()
        await self._drop_connection()

    async def _try_lock(self, conn: asyncpg.Connection) -> bool:
        """The session advisory lock of this service's lease, if it is free."""
        return bool(
            await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", f"tradebus:instance:{self.service}")
        )

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            conn = await asyncpg.connect(self._dsn, timeout=5.0)
            with contextlib.suppress(asyncpg.UniqueViolationError):  # another instance made it meanwhile
                await conn.execute(
                    f"""CREATE SCHEMA IF NOT EXISTS "{self._schema}";
                        CREATE TABLE IF NOT EXISTS {self._table} (
                          service text PRIMARY KEY, instance text NOT NULL,
                          epoch bigint NOT NULL, acquired_at timestamptz NOT NULL)"""
                )
            self._conn = conn
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2.0)
            except Exception:  # noqa: BLE001 - the server may be gone; the lock goes with the session
                conn.terminate()
