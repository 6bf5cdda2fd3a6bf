"""The trading desk: stages consumed events, runs the book over them in event-time order, and
sends the outbox. This is the only place that combines the pure book with the database and bus.

Flow for every consumed batch: (1) stage it in the inbox (durable before the batch is acked;
a redelivery is a no-op), (2) drain: in ONE transaction under the book lock, load the book,
apply every staged item the merge lets go, save the book, its audit lines and its outbox rows,
(3) publish the outbox and mark it sent. A crash anywhere leaves either the staged items or
unsent outbox rows, both picked up again on the next batch or by the outbox loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import asyncpg

from tradebus.bus import Publisher
from tradebus.events import (
    BarEvent,
    Envelope,
    FillEvent,
    Mode,
    OrderEvent,
    PositionEvent,
    RejectionEvent,
    SignalEvent,
    TradeEvent,
)
from tradebus.logging import get_logger
from tradebus.timeframes import interval_ms
from tradebus_risk import metrics
from tradebus_risk.book import Book
from tradebus_risk.limits import RiskLimits
from tradebus_risk.merge import Kind, Staged, StreamMarks, ready
from tradebus_risk.repository import BOOK_LOCK, Conn, Repository, StagedRow
from tradebus_risk.rules import Reason, decision_time

log = get_logger(__name__)

WINDOW: Final = 2_000
"""Staged items read per symbol per round trip while draining."""
OUTBOX_BATCH: Final = 1_000
_EVENT_TYPES: Final[dict[str, type[Envelope]]] = {
    cls.EVENT_TYPE: cls for cls in (OrderEvent, FillEvent, PositionEvent, TradeEvent, RejectionEvent)
}


@dataclass(frozen=True, slots=True)
class TradingStatus:
    frozen: bool
    open_positions: int


class Desk:
    """See the module docstring; one per service instance."""

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        publisher: Callable[[], Publisher],
        limits: RiskLimits,
        clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self.limits = limits
        self._clock = clock
        self._drain_lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()

    @property
    def repo(self) -> Repository:
        return Repository(self._pool(), self.limits)

    async def start(self) -> None:
        """Create the account on first start, publish what a crash left unsent, set the gauges."""
        await self.repo.ensure_account()
        await self.flush()
        self._update_gauges(await self.repo.load_book(self._pool()))

    # ----------------------------------------------------------------- consuming
    async def receive_signals(self, events: list[SignalEvent]) -> None:
        repo = self.repo
        async with self._pool().acquire() as conn, conn.transaction():
            await conn.execute(BOOK_LOCK)
            decided = await repo.decided(conn, [e.event_id for e in events])
            fresh = [e for e in events if e.event_id not in decided]
            seen: dict[str, tuple[datetime, int]] = {}
            rows: list[StagedRow] = []
            for event in fresh:
                signal = event.data
                at = decision_time(signal)
                rows.append(_staged_row(event, "signal", signal.symbol, at))
                if signal.symbol not in seen or at >= seen[signal.symbol][0]:
                    seen[signal.symbol] = (at, interval_ms(signal.interval))
            await repo.stage(conn, rows)
            await repo.mark_signals_seen(conn, seen)
        if decided:
            metrics.DECISIONS.labels("rejected", Reason.DUPLICATE_SIGNAL).inc(len(decided))
        await self._process()

    async def receive_bars(self, events: list[BarEvent]) -> None:
        repo = self.repo
        async with self._pool().acquire() as conn, conn.transaction():
            await conn.execute(BOOK_LOCK)
            applied = await repo.bars_applied(conn)
            seen: dict[str, datetime] = {}
            rows: list[StagedRow] = []
            for event in events:
                bar = event.data
                last = applied.get(bar.symbol)
                if bar.interval != "1m" or (last is not None and bar.open_time <= last):
                    continue  # not ours, or applied already (a redelivery)
                rows.append(_staged_row(event, "bar", bar.symbol, bar.open_time))
                seen[bar.symbol] = max(bar.open_time, seen.get(bar.symbol, bar.open_time))
            await repo.stage(conn, rows)
            await repo.mark_bars_seen(conn, seen)
        await self._process()

    async def _process(self) -> None:
        await self.drain()
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - the rows stay unsent; the outbox loop retries
            log.warning("outbox not sent yet", error=repr(exc))

    # ----------------------------------------------------------------- the book
    async def drain(self) -> None:
        """Apply every staged item the event-time merge allows, in one transaction."""
        async with self._drain_lock, self._pool().acquire() as conn, conn.transaction():
            await conn.execute(BOOK_LOCK)
            repo = self.repo
            book = await repo.load_book(conn)
            marks = await repo.marks(conn)
            wall_clock = self._clock()
            for symbol in await repo.pending_symbols(conn):
                await self._drain_symbol(conn, book, symbol, marks.get(symbol, StreamMarks()), wall_clock)
            await repo.save(conn, book)
        self._count(book)

    async def _drain_symbol(
        self, conn: Conn, book: Book, symbol: str, marks: StreamMarks, wall_clock: datetime
    ) -> None:
        while True:
            rows = await self.repo.staged(conn, symbol, WINDOW)
            payloads = {r["event_id"]: r["payload"] for r in rows}
            go, waiting = ready([Staged(r["event_id"], r["kind"], r["at"], r["live"]) for r in rows], marks)
            for item in go:
                if item.kind == "signal":
                    book.decide(SignalEvent.model_validate_json(payloads[item.event_id]), wall_clock)
                else:
                    book.apply_bar(BarEvent.model_validate_json(payloads[item.event_id]))
            await self.repo.unstage(conn, [item.event_id for item in go])
            if waiting or len(rows) < WINDOW:
                return

    async def reset(self) -> Book:
        """Lift the drawdown freeze (audited) and return the book after it."""
        async with self._drain_lock, self._pool().acquire() as conn, conn.transaction():
            await conn.execute(BOOK_LOCK)
            book = await self.repo.load_book(conn)
            book.reset(self._clock(), Mode.LIVE)
            await self.repo.save(conn, book)
        self._update_gauges(book)
        log.info("risk reset", equity=str(book.equity()), peak=str(book.account.peak_equity))
        return book

    async def status(self) -> TradingStatus:
        book = await self.repo.load_book(self._pool())
        return TradingStatus(book.account.frozen, book.open_count())

    # ----------------------------------------------------------------- outbox
    async def flush(self) -> int:
        """Publish every unsent outbox row in order (Nats-Msg-Id = event id) and mark it sent."""
        sent = 0
        async with self._flush_lock:
            while rows := await self.repo.unsent(OUTBOX_BATCH):
                items = [(r["subject"], _EVENT_TYPES[r["event_type"]].model_validate_json(r["payload"])) for r in rows]
                await self._publisher().publish_many(items)
                await self.repo.mark_sent([r["seq"] for r in rows])
                sent += len(rows)
                if len(rows) < OUTBOX_BATCH:
                    break
        return sent

    # ----------------------------------------------------------------- metrics
    def _count(self, book: Book) -> None:
        for verdict in book.changes.verdicts:
            metrics.DECISIONS.labels(verdict.decision, verdict.reason).inc()
        for side in book.changes.fills:
            metrics.FILLS.labels(side.value).inc()
        self._update_gauges(book)

    @staticmethod
    def _update_gauges(book: Book) -> None:
        metrics.EQUITY.set(float(book.equity()))
        metrics.OPEN_POSITIONS.set(len(book.holdings))
        metrics.DRAWDOWN.set(float(book.drawdown()))
        metrics.FROZEN.set(1 if book.account.frozen else 0)


def _staged_row(event: Envelope, kind: Kind, symbol: str, at: datetime) -> StagedRow:
    return event.event_id, kind, symbol, at, event.mode is Mode.LIVE, event.model_dump_json()
