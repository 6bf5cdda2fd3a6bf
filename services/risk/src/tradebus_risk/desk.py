"""The trading desk: stages consumed events, runs the book over them in event-time order, and
sends the outbox. This is the only place that combines the pure book with the database and bus.

Every consumed batch is ONE transaction under the book lock: drop what was seen already, apply
every item the event-time merge lets go (the new ones and those the inbox held back), store
in the inbox only the new items that must still wait, and save the book's changes with their
outbox rows. Committed before the batch is acked, so a crash leaves either unacked messages
(redelivered, recognised) or unsent outbox rows (sent by the next flush or the outbox loop).

The book, the stream marks and the held-back items stay in memory between batches. The account
row's `version`, bumped by every such transaction, tells whether anyone else (another instance,
a reset) wrote since: then the state is reloaded. A failed transaction drops the memory copy.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
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
from tradebus_risk.book import Book, Changes
from tradebus_risk.limits import RiskLimits
from tradebus_risk.merge import Kind, Staged, StreamMarks, order_key, take_ready
from tradebus_risk.repository import BOOK_LOCK, Batch, Conn, Repository, StagedRow
from tradebus_risk.rules import Reason, decision_time

log = get_logger(__name__)

OUTBOX_BATCH: Final = 1_000
_EVENT_TYPES: Final[dict[str, type[Envelope]]] = {
    cls.EVENT_TYPE: cls for cls in (OrderEvent, FillEvent, PositionEvent, TradeEvent, RejectionEvent)
}


@dataclass(slots=True)
class Held:
    """A received item not yet applied; `stored` once it is in the inbox table."""

    item: Staged
    event: SignalEvent | BarEvent
    stored: bool


def _held_key(held: Held) -> tuple[datetime, int, str]:
    return order_key(held.item)


@dataclass(slots=True)
class DeskState:
    """What the committed database holds, in memory: valid while `version` is the account's."""

    version: int
    book: Book
    marks: dict[str, StreamMarks]
    held: dict[str, list[Held]] = field(default_factory=dict)
    """Per symbol, in merge order."""
    held_ids: set[str] = field(default_factory=set)


Stager = Callable[[Conn, DeskState, Batch], Awaitable[list[Held]]]


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
        self._book_lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()
        self._state: DeskState | None = None
        self._outbox_dirty = True

    @property
    def repo(self) -> Repository:
        return Repository(self._pool(), self.limits)

    async def start(self) -> None:
        """Create the account on first start, apply what the inbox may release, publish what a
        crash left unsent, set the gauges."""
        await self.repo.ensure_account()
        await self._process(self._stage_nothing)

    # ----------------------------------------------------------------- consuming
    async def receive_signals(self, events: list[SignalEvent]) -> None:
        duplicates = 0

        async def stage(conn: Conn, state: DeskState, batch: Batch) -> list[Held]:
            nonlocal duplicates
            decided = await self.repo.decided(conn, [e.event_id for e in events])
            duplicates = len(decided)
            fresh: list[Held] = []
            for event in events:
                if event.event_id in decided or event.event_id in state.held_ids:
                    continue
                signal = event.data
                at = decision_time(signal)
                marks = state.marks.get(signal.symbol, StreamMarks())
                if marks.signal_seen is None or at >= marks.signal_seen:
                    base = timedelta(milliseconds=interval_ms(signal.interval))
                    state.marks[signal.symbol] = replace(marks, signal_seen=at, base=base)
                fresh.append(_hold(state, event, "signal", signal.symbol, at))
                batch.touched.add(signal.symbol)
            return fresh

        await self._process(stage)
        if duplicates:
            metrics.DECISIONS.labels("rejected", Reason.DUPLICATE_SIGNAL).inc(duplicates)

    async def receive_bars(self, events: list[BarEvent]) -> None:
        async def stage(conn: Conn, state: DeskState, batch: Batch) -> list[Held]:
            fresh: list[Held] = []
            applied = state.book.bar_applied
            for event in events:
                bar = event.data
                last = applied.get(bar.symbol)
                if bar.interval != "1m" or (last is not None and bar.open_time <= last):
                    continue  # not ours, or applied already (a redelivery)
                if event.event_id in state.held_ids:
                    continue  # held back already (a redelivery)
                marks = state.marks.get(bar.symbol, StreamMarks())
                if marks.bar_seen is None or bar.open_time > marks.bar_seen:
                    state.marks[bar.symbol] = replace(marks, bar_seen=bar.open_time)
                fresh.append(_hold(state, event, "bar", bar.symbol, bar.open_time))
                batch.touched.add(bar.symbol)
            return fresh

        await self._process(stage)

    @staticmethod
    async def _stage_nothing(conn: Conn, state: DeskState, batch: Batch) -> list[Held]:
        return []

    async def _process(self, stage: Stager) -> None:
        book = await self._transact(stage)
        self._count(book)
        try:
            await self.flush(only_if_dirty=True)
        except Exception as exc:  # noqa: BLE001 - the rows stay unsent; the outbox loop retries
            log.warning("outbox not sent yet", error=repr(exc))

    # ----------------------------------------------------------------- the book
    async def _transact(self, stage: Stager, then: Callable[[Book], None] | None = None) -> Book:
        """Stage, apply what the merge allows, save: one transaction under the book lock."""
        async with self._book_lock, self._pool().acquire() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(BOOK_LOCK)
                    state = await self._current(conn)
                    state.book.changes = Changes()
                    batch = Batch(state.book, state.marks, state.version + 1)
                    fresh = await stage(conn, state, batch)
                    self._apply_ready(state, batch, self._clock())
                    if then is not None:
                        then(state.book)
                    for held in fresh:
                        if held.item.event_id in state.held_ids:  # still waiting: into the inbox
                            batch.stage.append(_staged_row(held))
                            held.stored = True
                    await self.repo.save(conn, batch)
                    state.version = batch.version
            except BaseException:
                self._state = None  # memory may be ahead of what was committed
                raise
            if state.book.changes.events:
                self._outbox_dirty = True
            return state.book

    async def _current(self, conn: Conn) -> DeskState:
        """The cached state when nobody wrote since, else a fresh one from the database."""
        version = await self.repo.version(conn)
        if self._state is not None and self._state.version == version:
            return self._state
        state = DeskState(version, await self.repo.load_book(conn), await self.repo.marks(conn))
        for row in await self.repo.staged(conn):
            model: type[SignalEvent | BarEvent] = SignalEvent if row["kind"] == "signal" else BarEvent
            item = Staged(row["event_id"], row["kind"], row["at"], row["live"])
            _insert(state, row["symbol"], Held(item, model.model_validate_json(row["payload"]), stored=True))
        self._state = state
        return state

    @staticmethod
    def _apply_ready(state: DeskState, batch: Batch, wall_clock: datetime) -> None:
        """Apply, per symbol in merge order, every held item the merge lets go."""
        book = state.book
        for symbol, queue in state.held.items():
            live_follows = any(h.item.live for h in queue)
            marks = state.marks.get(symbol, StreamMarks())
            go, _ = take_ready((h.item for h in queue), marks, live_follows=live_follows)
            if not go:
                continue
            going = {item.event_id for item in go}
            for held in [h for h in queue if h.item.event_id in going] if live_follows else queue[: len(go)]:
                if isinstance(held.event, SignalEvent):
                    book.decide(held.event, wall_clock)
                else:
                    book.apply_bar(held.event)
                if held.stored:
                    batch.unstage.append(held.item.event_id)
            queue[:] = [h for h in queue if h.item.event_id not in going] if live_follows else queue[len(go) :]
            state.held_ids -= going
            batch.touched.add(symbol)

    async def reset(self) -> Book:
        """Lift the drawdown freeze (audited) and return the book after it."""
        book = await self._transact(self._stage_nothing, then=lambda b: b.reset(self._clock(), Mode.LIVE))
        self._update_gauges(book)
        log.info("risk reset", equity=str(book.equity()), peak=str(book.account.peak_equity))
        return book

    async def status(self) -> TradingStatus:
        book = await self.repo.load_book(self._pool())
        return TradingStatus(book.account.frozen, book.open_count())

    # ----------------------------------------------------------------- outbox
    async def flush(self, *, only_if_dirty: bool = False) -> int:
        """Publish every unsent outbox row in order (Nats-Msg-Id = event id) and mark it sent.

        `only_if_dirty` skips the query when nothing was written since the last complete flush.
        """
        sent = 0
        async with self._flush_lock:
            if only_if_dirty and not self._outbox_dirty:
                return 0
            self._outbox_dirty = False  # a batch committing during the flush sets it again
            try:
                while rows := await self.repo.unsent(OUTBOX_BATCH):
                    items = [
                        (r["subject"], _EVENT_TYPES[r["event_type"]].model_validate_json(r["payload"])) for r in rows
                    ]
                    await self._publisher().publish_many(items)
                    await self.repo.mark_sent([r["seq"] for r in rows])
                    sent += len(rows)
                    if len(rows) < OUTBOX_BATCH:
                        break
            except BaseException:
                self._outbox_dirty = True
                raise
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


def _hold(state: DeskState, event: SignalEvent | BarEvent, kind: Kind, symbol: str, at: datetime) -> Held:
    held = Held(Staged(event.event_id, kind, at, event.mode is Mode.LIVE), event, stored=False)
    _insert(state, symbol, held)
    return held


def _insert(state: DeskState, symbol: str, held: Held) -> None:
    queue = state.held.setdefault(symbol, [])
    if not queue or _held_key(queue[-1]) <= _held_key(held):
        queue.append(held)  # the usual case: each stream arrives in order
    else:
        bisect.insort(queue, held, key=_held_key)
    state.held_ids.add(held.item.event_id)


def _staged_row(held: Held) -> StagedRow:
    item, event = held.item, held.event
    return item.event_id, item.kind, event.data.symbol, item.at, item.live, event.model_dump_json()
