"""Migrations: applied once, in order, even when several instances start together; pooled
connections: released without asyncpg's session reset, never inside a transaction."""

from __future__ import annotations

import asyncio

from tradebus import db


async def test_migrations_apply_once(database_url: str) -> None:
    pools = [await db.create_pool(database_url, schema="demo") for _ in range(3)]
    try:
        results = await asyncio.gather(*(db.migrate(p, "demo", "migrations_demo") for p in pools))
        assert sorted(results, key=len) == [[], [], [1]]
        assert await db.migrate(pools[0], "demo", "migrations_demo") == []
        await pools[0].execute("INSERT INTO seen VALUES ('a', 1.5)")
        assert await pools[1].fetchval("SELECT close FROM demo.seen") == 1.5
    finally:
        for pool in pools:
            await pool.close()


async def test_a_released_connection_keeps_its_session_but_not_an_open_transaction(database_url: str) -> None:
    pool = await db.create_pool(database_url, schema="demo", min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SET statement_timeout = '41s'")
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (n int)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend
            assert await conn.fetchval("SHOW statement_timeout") == "41s"  # no RESET ALL on release
            assert await conn.fetchval("SHOW TimeZone") == "UTC"
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None  # rolled back
    finally:
        await pool.close()
