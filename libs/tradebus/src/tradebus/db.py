"""asyncpg pool and the versioned-SQL migration runner (one schema per service)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg
from asyncpg.connection import LoggedQuery

from tradebus.feedhealth import feeds
from tradebus.logging import get_logger

log = get_logger(__name__)

_MIGRATION_NAME = re.compile(r"^V(\d{3,})__([a-z0-9_]+)\.sql$")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> list[Migration]:
    """Every `V###__name.sql` in `package`, in version order; refuses duplicate versions."""
    found: dict[int, Migration] = {}
    for entry in resources.files(package).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"{package}: two migrations with version {version}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def _connection_setup(service: str) -> Callable[[asyncpg.Connection], Coroutine[Any, Any, None]]:
    """UTC, and every query counted in `service`'s `database` feed (R-5.2)."""
    health = feeds(service)["database"]

    def record(query: LoggedQuery) -> None:
        failed = query.exception
        health.record(failed is None, query.elapsed, "" if failed is None else repr(failed))

    async def setup(conn: asyncpg.Connection) -> None:
        await conn.execute("SET TIME ZONE 'UTC'")
        conn.add_query_logger(record)

    return setup


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A released connection keeps its session as it is.

    asyncpg's default reset sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`
    on every release: a round trip and four statements per transaction, a few percent of a
    replay's CPU on both sides. Nothing here leaves session state behind (advisory locks are
    transaction-scoped or unlocked by their holder, no LISTEN, no cursor outlives its
    transaction, no SET beyond the pool's own), and asyncpg still rolls back a transaction left
    open before this runs."""


async def create_pool(
    dsn: str, *, schema: str, min_size: int = 1, max_size: int = 5, wait_s: float = 60.0
) -> asyncpg.Pool:
    """A pool whose connections default to `schema` and UTC, waiting for the server to answer."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"bad schema name {schema!r}")
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=_connection_setup(schema),
                reset=_keep_session,
                server_settings={"search_path": f"{schema},public", "application_name": f"tradebus-{schema}"},
            )
            assert pool is not None
            return pool
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.PostgresConnectionError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("database not answering yet", error=str(exc))
            await asyncio.sleep(1.0)


async def migrate(pool: asyncpg.Pool, schema: str, package: str) -> list[int]:
    """Apply the pending migrations of `package` to `schema`; returns the versions applied.

    Each migration runs in its own transaction under an advisory lock, so several instances
    starting together apply each version exactly once.
    """
    migrations = load_migrations(package)
    applied_now: list[int] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"tradebus.migrate.{schema}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")}
        for m in migrations:
            if m.version in done:
                continue
            await conn.execute(f"SET LOCAL search_path TO {schema}, public")
            await conn.execute(m.sql)
            await conn.execute(
                f"INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name
            )
            applied_now.append(m.version)
    if applied_now:
        log.info("migrations applied", schema=schema, versions=applied_now)
    return applied_now


async def ping(pool: asyncpg.Pool, timeout: float = 2.0, service: str | None = None) -> None:
    """Raise unless the database answers within `timeout` seconds. A pool that cannot even hand
    out a connection runs no query for the `database` feed to count, so `service`'s feed counts
    that failure here."""
    try:
        conn = await pool.acquire(timeout=timeout)
    except Exception as exc:
        if service is not None:
            feeds(service)["database"].record(False, None, repr(exc))
        raise
    try:
        await conn.fetchval("SELECT 1", timeout=timeout)
    finally:
        await pool.release(conn)


def record_to_dict(record: asyncpg.Record) -> dict[str, Any]:
    return dict(record.items())
