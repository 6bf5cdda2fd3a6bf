"""SQL for the risk schema: staging (inbox), the book's state, the audit log and the outbox.

Every method that changes the book takes the connection of the caller's transaction, so a
batch's state changes and the events it publishes commit together (transactional outbox).
The `BOOK_LOCK` advisory lock serialises staging and applying across instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from tradebus.events import Mode, Side, TradeEvent
from tradebus_risk.book import Book
from tradebus_risk.limits import RiskLimits
from tradebus_risk.merge import StreamMarks
from tradebus_risk.records import Account, AuditEntry, Holding, PaperOrder

Conn = asyncpg.Connection | PoolConnectionProxy
"""A connection, as acquired from the pool (a proxy) or opened directly."""
StagedRow = tuple[str, str, str, datetime, bool, str]
"""(event_id, kind, symbol, at, live, payload) of one inbox row."""

BOOK_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtext('tradebus.risk.book'))"

ENSURE_ACCOUNT: Final = """
INSERT INTO account (initial_balance, cash, peak_equity, day_start_equity) VALUES ($1, $1, $1, $1)
ON CONFLICT (id) DO NOTHING"""

DECIDED: Final = "SELECT signal_id FROM audit WHERE signal_id = ANY($1::text[])"
VERSION: Final = "SELECT version FROM account WHERE id = 1"
LOAD_STAGED: Final = "SELECT event_id, kind, symbol, at, live, payload FROM inbox"
LOAD_MARKS: Final = "SELECT symbol, bar_seen, signal_seen, base_ms FROM symbol_state"
STAGE: Final = """
INSERT INTO inbox (event_id, kind, symbol, at, live, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::boolean[], $6::text[])
ON CONFLICT (event_id) DO NOTHING"""
UNSTAGE: Final = "DELETE FROM inbox WHERE event_id = ANY($1::text[])"

LOAD_ACCOUNT: Final = "SELECT * FROM account WHERE id = 1"
LOAD_POSITIONS: Final = "SELECT * FROM positions"
LOAD_PENDING: Final = "SELECT * FROM orders WHERE status = 'submitted'"
LOAD_SYMBOLS: Final = "SELECT symbol, bar_applied, position_seq FROM symbol_state"

SAVE_ACCOUNT: Final = """
UPDATE account SET cash = $1, realized_pnl = $2, fees = $3, peak_equity = $4, frozen = $5, day = $6,
    day_start_equity = $7, day_realized = $8, version = $9, updated_at = now() WHERE id = 1"""
CLEAR_POSITIONS: Final = "DELETE FROM positions WHERE symbol = ANY($1::text[])"
SAVE_POSITION: Final = """
INSERT INTO positions (symbol, position_id, quantity, entry_price, entry_fee, stop, targets, mark_price,
    opened_at, strategy, trace_id, mode) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"""
SAVE_ORDER: Final = """
INSERT INTO orders (order_id, symbol, side, purpose, quantity, reason, signal_id, position_id, submitted_at,
    trace_id, mode, strategy, stop, targets, status, fill_price, fee, filled_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
ON CONFLICT (order_id) DO UPDATE SET quantity = EXCLUDED.quantity, status = EXCLUDED.status,
    fill_price = EXCLUDED.fill_price, fee = EXCLUDED.fee, filled_at = EXCLUDED.filled_at"""
SAVE_TRADE: Final = """
INSERT INTO trades (trade_id, symbol, strategy, quantity, entry_price, exit_price, entry_time, exit_time,
    gross_pnl, fees, net_pnl, exit_reason, mode) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (trade_id) DO NOTHING"""
SAVE_AUDIT: Final = """
INSERT INTO audit (signal_id, symbol, decision, reason, detail, event_time, mode)
SELECT signal_id, symbol, decision, reason, detail, event_time, mode
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[])
    WITH ORDINALITY AS a (signal_id, symbol, decision, reason, detail, event_time, mode, n)
ORDER BY n
ON CONFLICT (signal_id) DO NOTHING"""
SAVE_SYMBOL: Final = """
INSERT INTO symbol_state (symbol, bar_seen, signal_seen, base_ms, bar_applied, position_seq)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (symbol) DO UPDATE SET bar_seen = EXCLUDED.bar_seen, signal_seen = EXCLUDED.signal_seen,
    base_ms = EXCLUDED.base_ms, bar_applied = EXCLUDED.bar_applied, position_seq = EXCLUDED.position_seq"""
SAVE_OUTBOX: Final = """
INSERT INTO outbox (event_id, event_type, subject, payload)
SELECT event_id, event_type, subject, payload
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
    WITH ORDINALITY AS o (event_id, event_type, subject, payload, n)
ORDER BY n
ON CONFLICT (event_id) DO NOTHING"""

UNSENT: Final = "SELECT seq, event_type, subject, payload FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1"
MARK_SENT: Final = "UPDATE outbox SET sent_at = now() WHERE seq = ANY($1::bigint[])"
PRUNE_SENT: Final = "DELETE FROM outbox WHERE sent_at < now() - $1::interval"

TRADES: Final = """
SELECT * FROM trades WHERE ($1::text IS NULL OR symbol = $1) ORDER BY exit_time DESC, trade_id LIMIT $2"""
TRADE_STATS: Final = """
SELECT count(*) AS trades, count(*) FILTER (WHERE net_pnl > 0) AS wins, coalesce(sum(net_pnl), 0) AS net_pnl
FROM trades"""


class Repository:
    """The risk schema, on the service's pool."""

    def __init__(self, pool: asyncpg.Pool, limits: RiskLimits) -> None:
        self.pool = pool
        self.limits = limits

    async def ensure_account(self) -> None:
        await self.pool.execute(ENSURE_ACCOUNT, self.limits.initial_balance)

    # ----------------------------------------------------------------- staging
    async def decided(self, conn: Conn, signal_ids: Sequence[str]) -> set[str]:
        return {r["signal_id"] for r in await conn.fetch(DECIDED, list(signal_ids))}

    async def version(self, conn: Conn) -> int:
        version = await conn.fetchval(VERSION)
        if version is None:
            raise RuntimeError("risk account row missing: ensure_account() runs at start-up")
        return int(version)

    async def staged(self, conn: Conn) -> list[asyncpg.Record]:
        return list(await conn.fetch(LOAD_STAGED))

    async def marks(self, conn: Conn) -> dict[str, StreamMarks]:
        return {
            r["symbol"]: StreamMarks(
                r["bar_seen"],
                r["signal_seen"],
                timedelta(milliseconds=r["base_ms"]) if r["base_ms"] is not None else None,
            )
            for r in await conn.fetch(LOAD_MARKS)
        }

    # ----------------------------------------------------------------- the book
    async def load_book(self, conn: Conn | asyncpg.Pool) -> Book:
        a = await conn.fetchrow(LOAD_ACCOUNT)
        if a is None:
            raise RuntimeError("risk account row missing: ensure_account() runs at start-up")
        account = Account(
            initial_balance=a["initial_balance"],
            cash=a["cash"],
            realized_pnl=a["realized_pnl"],
            fees=a["fees"],
            peak_equity=a["peak_equity"],
            frozen=a["frozen"],
            day=a["day"],
            day_start_equity=a["day_start_equity"],
            day_realized=a["day_realized"],
        )
        holdings = {r["symbol"]: _holding(r) for r in await conn.fetch(LOAD_POSITIONS)}
        pending = {r["order_id"]: _order(r) for r in await conn.fetch(LOAD_PENDING)}
        symbols = await conn.fetch(LOAD_SYMBOLS)
        return Book(
            account,
            holdings,
            pending,
            position_seq={r["symbol"]: r["position_seq"] for r in symbols},
            bar_applied={r["symbol"]: r["bar_applied"] for r in symbols if r["bar_applied"] is not None},
            limits=self.limits,
        )

    async def save(self, conn: Conn, batch: Batch) -> None:
        """Write what one batch changed (inside the caller's transaction), skipping empty writes."""
        book, changes = batch.book, batch.book.changes
        a = book.account
        await conn.execute(
            SAVE_ACCOUNT,
            a.cash,
            a.realized_pnl,
            a.fees,
            a.peak_equity,
            a.frozen,
            a.day,
            a.day_start_equity,
            a.day_realized,
            batch.version,
        )
        touched = sorted(batch.touched)
        if touched:
            await conn.execute(CLEAR_POSITIONS, touched)
            holdings = [_holding_row(book.holdings[s]) for s in touched if s in book.holdings]
            await _many(conn, SAVE_POSITION, holdings)
            await _many(conn, SAVE_SYMBOL, [_symbol_row(book, s, batch.marks.get(s, StreamMarks())) for s in touched])
        await _many(conn, SAVE_ORDER, [_order_row(o) for o in changes.orders.values()])
        await _many(conn, SAVE_TRADE, [_trade_row(t) for t in changes.trades])
        await _columns(conn, SAVE_AUDIT, [_audit_row(entry) for entry in changes.audits])
        outbox = [(e.event_id, e.event_type, subject, e.model_dump_json()) for subject, e in changes.events]
        await _columns(conn, SAVE_OUTBOX, outbox)
        await _columns(conn, STAGE, batch.stage)
        if batch.unstage:
            await conn.execute(UNSTAGE, batch.unstage)

    # ----------------------------------------------------------------- outbox
    async def unsent(self, limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(UNSENT, limit))

    async def mark_sent(self, seqs: list[int]) -> None:
        await self.pool.execute(MARK_SENT, seqs)

    async def prune_sent(self, older_than: timedelta) -> None:
        await self.pool.execute(PRUNE_SENT, older_than)

    # ----------------------------------------------------------------- reads
    async def trades(self, symbol: str | None, limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(TRADES, symbol, limit))

    async def trade_stats(self) -> asyncpg.Record:
        row = await self.pool.fetchrow(TRADE_STATS)
        assert row is not None
        return row


@dataclass(slots=True)
class Batch:
    """One transaction's changes beyond the book's own: the symbols it touched, their marks as
    durable (bars seen only as far as applied or staged), the inbox rows to add (signals that
    must wait; bars wait unacked in JetStream) and to delete (staged items now applied)."""

    book: Book
    marks: dict[str, StreamMarks]
    version: int
    touched: set[str] = field(default_factory=set)
    stage: list[StagedRow] = field(default_factory=list)
    unstage: list[str] = field(default_factory=list)


async def _many(conn: Conn, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        await conn.executemany(sql, rows)


async def _columns(conn: Conn, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """All `rows` in one statement, one array per column (for `unnest`): a statement per row
    (`executemany`) cost risk and PostgreSQL far more for the audit row of every signal."""
    if rows:
        await conn.execute(sql, *(list(column) for column in zip(*rows, strict=True)))


def _symbol_row(book: Book, symbol: str, marks: StreamMarks) -> tuple[Any, ...]:
    base_ms = marks.base // timedelta(milliseconds=1) if marks.base is not None else None
    return (
        symbol,
        marks.bar_seen,
        marks.signal_seen,
        base_ms,
        book.bar_applied.get(symbol),
        book.position_seq.get(symbol, 0),
    )


def _holding(r: asyncpg.Record) -> Holding:
    return Holding(
        symbol=r["symbol"],
        position_id=r["position_id"],
        quantity=r["quantity"],
        entry_price=r["entry_price"],
        entry_fee=r["entry_fee"],
        stop=r["stop"],
        targets=list(r["targets"]),
        mark_price=r["mark_price"],
        opened_at=r["opened_at"],
        strategy=r["strategy"],
        trace_id=r["trace_id"],
        mode=Mode(r["mode"]),
    )


def _holding_row(h: Holding) -> tuple[Any, ...]:
    return (
        h.symbol,
        h.position_id,
        h.quantity,
        h.entry_price,
        h.entry_fee,
        h.stop,
        h.targets,
        h.mark_price,
        h.opened_at,
        h.strategy,
        h.trace_id,
        h.mode.value,
    )


def _order(r: asyncpg.Record) -> PaperOrder:
    return PaperOrder(
        order_id=r["order_id"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        purpose=r["purpose"],
        quantity=r["quantity"],
        reason=r["reason"],
        signal_id=r["signal_id"],
        position_id=r["position_id"],
        submitted_at=r["submitted_at"],
        trace_id=r["trace_id"],
        mode=Mode(r["mode"]),
        strategy=r["strategy"],
        stop=r["stop"],
        targets=list(r["targets"]),
        status=r["status"],
        fill_price=r["fill_price"],
        fee=r["fee"],
        filled_at=r["filled_at"],
    )


def _order_row(o: PaperOrder) -> tuple[Any, ...]:
    return (
        o.order_id,
        o.symbol,
        o.side.value,
        o.purpose,
        o.quantity,
        o.reason,
        o.signal_id,
        o.position_id,
        o.submitted_at,
        o.trace_id,
        o.mode.value,
        o.strategy,
        o.stop,
        o.targets,
        o.status,
        o.fill_price,
        o.fee,
        o.filled_at,
    )


def _trade_row(event: TradeEvent) -> tuple[Any, ...]:
    t = event.data
    return (
        t.trade_id,
        t.symbol,
        t.strategy,
        t.quantity,
        t.entry_price,
        t.exit_price,
        t.entry_time,
        t.exit_time,
        t.gross_pnl,
        t.fees,
        t.net_pnl,
        t.exit_reason,
        event.mode.value,
    )


def _audit_row(e: AuditEntry) -> tuple[Any, ...]:
    return (e.signal_id, e.symbol, e.decision, e.reason, e.detail, e.event_time, e.mode.value)
