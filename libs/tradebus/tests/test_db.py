"""Migrations: applied once, in order, even when several instances start together."""

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
