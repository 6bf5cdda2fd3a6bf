"""SQL for the risk schema: staging (inbox), the book's state, the audit log and the outbox.

Every method that changes the book takes the connection of the caller's transaction, so a
batch's state changes and the events it publishes commit together (transactional outbox).
A batch's transaction is BEGIN, `lock` (the book's advisory lock, which serialises staging and
applying across instances, and what must be read under it), `save`, COMMIT: the SQL functions
of migration V003 make each of them one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
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

ENSURE_ACCOUNT: Final = """
INSERT INTO account (initial_balance, cash, peak_equity, day_start_equity) VALUES ($1, $1, $1, $1)
ON CONFLICT (id) DO NOTHING"""
ENSURE_BALANCES: Final = """
INSERT INTO balances (asset, initial_balance, cash, peak_equity, day_start_equity, day)
SELECT u.asset, u.balance, u.balance, u.balance, u.balance, (SELECT day FROM account WHERE id = 1)
FROM unnest($1::text[], $2::numeric[]) AS u (asset, balance)
ON CONFLICT (asset) DO NOTHING"""
LOAD_BALANCES: Final = "SELECT * FROM balances ORDER BY asset"

LOCK_BOOK: Final = "SELECT book_version, decided FROM lock_book($1::text[])"
LOAD_STAGED: Final = "SELECT event_id, kind, symbol, at, live, payload FROM inbox"
LOAD_MARKS: Final = "SELECT symbol, bar_seen, signal_seen, base_ms FROM symbol_state"

LOAD_POSITIONS: Final = "SELECT * FROM positions"
LOAD_PENDING: Final = "SELECT * FROM orders WHERE status = 'submitted'"
LOAD_SYMBOLS: Final = "SELECT symbol, bar_applied, position_seq, sample_times, sample_closes FROM symbol_state"

# The 34 arguments of migration V005's save_batch, in order.
SAVE_BATCH: Final = f"SELECT save_batch({', '.join(f'${n}' for n in range(1, 35))})"

UNSENT: Final = "SELECT seq, event_type, subject, payload FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1"
MARK_SENT: Final = """
WITH no_flush AS (SELECT set_config('synchronous_commit', 'off', true))
UPDATE outbox SET sent_at = now() FROM no_flush WHERE seq = ANY($1::bigint[])"""
PRUNE_SENT: Final = "DELETE FROM outbox WHERE sent_at < now() - $1::interval"

TRADES: Final = """
SELECT * FROM trades WHERE ($1::text IS NULL OR symbol = $1) ORDER BY exit_time DESC, trade_id LIMIT $2"""
TRADE_STATS: Final = """
SELECT symbol, count(*) AS trades, count(*) FILTER (WHERE net_pnl > 0) AS wins, sum(net_pnl) AS net_pnl
FROM trades GROUP BY symbol"""


class Repository:
    """The risk schema, on the service's pool."""

    def __init__(self, pool: asyncpg.Pool, limits: RiskLimits) -> None:
        self.pool = pool
        self.limits = limits

    async def ensure_account(self) -> None:
        """The account row (the version) and a balance for every funded asset not there yet (a
        newly funded asset joins at its starting balance; a funded one is never reset)."""
        funded = self.limits.funded
        await self.pool.execute(ENSURE_ACCOUNT, funded[self.limits.home_asset])
        await self.pool.execute(ENSURE_BALANCES, list(funded), list(funded.values()))

    # ----------------------------------------------------------------- staging
    async def lock(self, conn: Conn, signal_ids: Sequence[str]) -> tuple[int, set[str]]:
        """Take the book lock; returns the account's version and the ids of `signal_ids` decided
        already, both read after the lock was granted."""
        row = await conn.fetchrow(LOCK_BOOK, signal_ids)
        if row is None or row["book_version"] is None:
            raise RuntimeError("risk account row missing: ensure_account() runs at start-up")
        return int(row["book_version"]), set(row["decided"] or ())

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
        accounts = {
            a["asset"]: Account(
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
            for a in await conn.fetch(LOAD_BALANCES)
        }
        if not accounts:
            raise RuntimeError("risk balances missing: ensure_account() runs at start-up")
        holdings = {r["symbol"]: _holding(r) for r in await conn.fetch(LOAD_POSITIONS)}
        pending = {r["order_id"]: _order(r) for r in await conn.fetch(LOAD_PENDING)}
        symbols = await conn.fetch(LOAD_SYMBOLS)
        return Book(
            accounts,
            holdings,
            pending,
            position_seq={r["symbol"]: r["position_seq"] for r in symbols},
            bar_applied={r["symbol"]: r["bar_applied"] for r in symbols if r["bar_applied"] is not None},
            limits=self.limits,
            samples={
                r["symbol"]: list(zip(r["sample_times"], r["sample_closes"], strict=True))
                for r in symbols
                if r["sample_times"]
            },
        )

    async def save(self, conn: Conn, batch: Batch) -> None:
        """Write what one batch changed (inside the caller's transaction): one statement."""
        book, changes = batch.book, batch.book.changes
        touched = sorted(batch.touched)
        outbox = [(e.event_id, e.event_type, subject, e.model_dump_json()) for subject, e in changes.events]
        home = _balance_row("", book.account)[2:]  # the account row mirrors the home asset (cash ... day_realized)
        await conn.execute(
            SAVE_BATCH,
            *home,
            batch.version,
            touched,
            [_holding_row(book.holdings[s]) for s in touched if s in book.holdings],
            [_symbol_row(book, s, batch.marks.get(s, StreamMarks())) for s in touched],
            [_order_row(o) for o in changes.orders.values()],
            [_trade_row(t) for t in changes.trades],
            *_columns([_audit_row(entry) for entry in changes.audits], 7),
            *_columns(outbox, 4),
            *_columns(batch.stage, 6),
            batch.unstage,
            [_balance_row(asset, account) for asset, account in sorted(book.accounts.items())],
            self.limits.correlation_window + 1,
        )

    # ----------------------------------------------------------------- outbox
    async def unsent(self, limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(UNSENT, limit))

    async def mark_sent(self, seqs: list[int]) -> None:
        """Committed without waiting for the WAL flush (the commit's fsync was most of its cost,
        a transaction of its own after every batch that publishes): a database crash may lose
        the mark, and the rows are then sent again, as after a crash before it: JetStream drops
        them as duplicates of their Nats-Msg-Id (the event id) within its window, and every
        consumer's writes are idempotent beyond it."""
        await self.pool.execute(MARK_SENT, seqs)

    async def prune_sent(self, older_than: timedelta) -> None:
        await self.pool.execute(PRUNE_SENT, older_than)

    # ----------------------------------------------------------------- reads
    async def trades(self, symbol: str | None, limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(TRADES, symbol, limit))

    async def trade_stats(self) -> dict[str, Any]:
        """Closed trades, winners, and the net P&L per quote asset (never added across assets)."""
        trades = wins = 0
        net: dict[str, Decimal] = {}
        for r in await self.pool.fetch(TRADE_STATS):
            trades, wins = trades + r["trades"], wins + r["wins"]
            asset = self.limits.quote_of(r["symbol"]) or "unknown"
            net[asset] = net.get(asset, Decimal(0)) + r["net_pnl"]
        return {"trades": trades, "wins": wins, "net_pnl": net}


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


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """`rows` as one list per column (for `unnest`; `width` columns when there are no rows): a
    statement per row (`executemany`) cost risk and PostgreSQL far more for the audit rows."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _symbol_row(book: Book, symbol: str, marks: StreamMarks) -> tuple[Any, ...]:
    base_ms = marks.base // timedelta(milliseconds=1) if marks.base is not None else None
    return (
        symbol,
        marks.bar_seen,
        marks.signal_seen,
        base_ms,
        book.bar_applied.get(symbol),
        book.position_seq.get(symbol, 0),
        [t for t, _ in book.changes.samples.get(symbol, ())],  # only the new ones: save_batch appends them
        [c for _, c in book.changes.samples.get(symbol, ())],
    )


def _balance_row(asset: str, a: Account) -> tuple[Any, ...]:
    return (
        asset,
        a.initial_balance,
        a.cash,
        a.realized_pnl,
        a.fees,
        a.peak_equity,
        a.frozen,
        a.day,
        a.day_start_equity,
        a.day_realized,
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
        est_price=r["est_price"],
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
        o.est_price,
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
