"""The `breaker` table (migration V006): the circuit breakers' saved state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import asyncpg

from tradebus_risk.breaker import Breakers, BreakerState
from tradebus_risk.repository import Conn

LOAD: Final = "SELECT * FROM breaker"
SAVE: Final = """
INSERT INTO breaker (scope, state, since, reopens_at, trigger, detail, fill_failures, probe, ref_equity, ref_at, trips)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::text[],
                     $7::integer[], $8::text[], $9::numeric[], $10::timestamptz[], $11::integer[])
ON CONFLICT (scope) DO UPDATE SET
    state = EXCLUDED.state, since = EXCLUDED.since, reopens_at = EXCLUDED.reopens_at,
    trigger = EXCLUDED.trigger, detail = EXCLUDED.detail, fill_failures = EXCLUDED.fill_failures,
    probe = EXCLUDED.probe, ref_equity = EXCLUDED.ref_equity, ref_at = EXCLUDED.ref_at, trips = EXCLUDED.trips"""
COLUMNS: Final = (
    "scope", "state", "since", "reopens_at", "trigger", "detail", "fill_failures", "probe", "ref_equity", "ref_at",
    "trips",
)  # fmt: skip


async def load(conn: Conn | asyncpg.Pool) -> dict[str, BreakerState]:
    return {r["scope"]: BreakerState(**{c: r[c] for c in COLUMNS}) for r in await conn.fetch(LOAD)}


async def save(conn: Conn, states: Iterable[BreakerState]) -> None:
    """Upsert `states` in one statement (inside the caller's transaction)."""
    rows: list[tuple[Any, ...]] = [tuple(getattr(s, c) for c in COLUMNS) for s in states]
    if rows:
        await conn.execute(SAVE, *(list(column) for column in zip(*rows, strict=True)))


async def save_dirty(conn: Conn, breakers: Breakers) -> None:
    """Save the breakers a batch changed (nothing to do, no round trip, when none did)."""
    if breakers.dirty:
        await save(conn, [breakers.states[scope] for scope in sorted(breakers.dirty)])
        breakers.dirty.clear()
