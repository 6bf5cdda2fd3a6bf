"""The repository's batch writes on a real PostgreSQL: what `save` writes in its one statement
loads back as the book that wrote it, in order and idempotently, and `lock` reads after it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from tradebus import db
from tradebus.events import BarEvent, SignalEvent
from tradebus_risk.bench import in_event_order
from tradebus_risk.book import Book, Changes
from tradebus_risk.limits import RiskLimits
from tradebus_risk.merge import StreamMarks
from tradebus_risk.repository import Batch, Repository
from tradebus_risk.rules import decision_time

sys.path.insert(0, str(Path(__file__).parent))
from risk_scenario import FIRST_QTY, SECOND_QTY, scenario_bars, scenario_signals

SYMBOL = "RKSAVEUSDT"


@pytest.fixture
async def repo(database_url: str) -> AsyncIterator[Repository]:
    pool = await db.create_pool(database_url, schema="risk")
    try:
        await db.migrate(pool, "risk", "tradebus_risk.migrations")
        repo = Repository(pool, RiskLimits())
        await repo.ensure_account()
        yield repo
    finally:
        await pool.close()


def _scenario() -> list[BarEvent | SignalEvent]:
    return list(in_event_order(scenario_bars(SYMBOL), scenario_signals(SYMBOL)))


async def _run(repo: Repository, book: Book, version: int, until_minute: int, *, stage: bool = False) -> Batch:
    """Apply the scenario's events after the book's last bar up to bar `until_minute` and save
    them as one batch, staging the last signal in the inbox when `stage`, else unstaging it."""
    last = book.bar_applied.get(SYMBOL, datetime.min.replace(tzinfo=UTC))
    book.changes = Changes()
    for event in _scenario():
        if isinstance(event, BarEvent):
            if event.data.open_time.minute > until_minute:
                break
            if event.data.open_time > last:
                book.apply_bar(event)
        elif decision_time(event.data) > last:
            book.decide(event, datetime.now(tz=UTC))
    waiting = scenario_signals(SYMBOL)[-1]
    at = waiting.data.bar_time
    batch = Batch(book, {SYMBOL: StreamMarks(book.bar_applied[SYMBOL], at)}, version, {SYMBOL})
    if stage:
        batch.stage.append((waiting.event_id, "signal", SYMBOL, at, False, waiting.model_dump_json()))
    else:
        batch.unstage.append(waiting.event_id)
    async with repo.pool.acquire() as conn, conn.transaction():
        assert (await repo.lock(conn, []))[0] == version - 1
        await repo.save(conn, batch)
    return batch


async def _assert_stored(repo: Repository, book: Book) -> None:
    stored = await repo.load_book(repo.pool)
    assert stored.account == book.account
    assert stored.holdings == book.holdings
    assert stored.pending == book.pending
    assert stored.position_seq == book.position_seq
    assert stored.bar_applied == book.bar_applied


async def _column(pool: asyncpg.Pool, sql: str) -> list[object]:
    return [r[0] for r in await pool.fetch(sql)]


async def test_batches_that_open_move_and_close_positions_load_back_as_the_book(repo: Repository) -> None:
    book = await repo.load_book(repo.pool)
    audits: list[str] = []  # signal ids: this scenario has no account events
    events: list[str] = []
    batches = (
        (12, True, lambda: book.holdings[SYMBOL].quantity == FIRST_QTY),  # BUY @C=5 opened a position
        (21, False, lambda: book.holdings[SYMBOL].quantity == SECOND_QTY),  # SELL @C=15 closed it, then a new one
        (39, False, lambda: SYMBOL not in book.holdings),  # the stop closed that one, three rejections
    )
    for version, (until_minute, stage, expected) in enumerate(batches, start=1):
        batch = await _run(repo, book, version, until_minute, stage=stage)
        assert expected()
        await _assert_stored(repo, book)
        staged = await _column(repo.pool, "SELECT event_id FROM inbox")
        assert staged == ([scenario_signals(SYMBOL)[-1].event_id] if stage else [])
        audits += [a.signal_id for a in book.changes.audits if a.signal_id is not None]
        events += [e.event_id for _, e in book.changes.events]

    assert await _column(repo.pool, "SELECT signal_id FROM audit ORDER BY id") == audits
    assert await _column(repo.pool, "SELECT event_id FROM outbox ORDER BY seq") == events
    await repo.mark_sent([r["seq"] for r in await repo.unsent(len(events) - 1)])
    assert [r["event_type"] for r in await repo.unsent(len(events))] == ["signal.rejected"]
    assert await _column(repo.pool, "SELECT status FROM orders") == ["filled"] * 4
    assert await _column(repo.pool, "SELECT count(*) FROM trades") == [2]
    async with repo.pool.acquire() as conn, conn.transaction():  # the last batch again adds nothing
        assert await repo.lock(conn, [*events, *audits]) == (3, set(audits))
        batch.version = 4
        await repo.save(conn, batch)
        assert (await repo.marks(conn))[SYMBOL] == batch.marks[SYMBOL]
    assert await _column(repo.pool, "SELECT signal_id FROM audit ORDER BY id") == audits
    assert await _column(repo.pool, "SELECT event_id FROM outbox ORDER BY seq") == events
    assert await _column(repo.pool, "SELECT count(*) FROM trades") == [2]
    await _assert_stored(repo, book)


async def test_the_lock_finds_decided_signals_by_the_index_however_the_audit_table_has_grown(
    repo: Repository,
) -> None:
    """`lock` runs once per batch with the batch's signal ids. Planned while the audit table was
    empty, its lookup kept scanning the whole table; a replay's audit grows to 86,400 rows."""
    insert = """INSERT INTO audit (signal_id, symbol, decision, reason, detail, event_time, mode)
                SELECT 'signal:RKLOCKUSDT:5m:' || g, 'RKLOCKUSDT', 'accepted', 'ok', '', now(), 'replay'
                FROM generate_series($1::int, $2::int) AS g"""
    early = [f"signal:RKLOCKUSDT:5m:{n}" for n in range(-300, 0)]
    async with repo.pool.acquire() as conn:
        await conn.execute(insert, 1, 500)  # the first minutes of a replay
        for _ in range(10):  # past the five custom plans after which a generic one is kept
            async with conn.transaction():
                assert await repo.lock(conn, early) == (0, set())
        await conn.execute(insert, 501, 50000)
        ids = [f"signal:RKLOCKUSDT:5m:{n}" for n in range(49_700, 50_300)]
        async with conn.transaction():
            scans = "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relid = 'audit'::regclass"
            seq_before, idx_before = await conn.fetchrow(scans)
            assert await repo.lock(conn, ids) == (0, set(ids[:301]))
            seq_after, idx_after = await conn.fetchrow(scans)
        assert seq_after == seq_before
        assert idx_after > idx_before
