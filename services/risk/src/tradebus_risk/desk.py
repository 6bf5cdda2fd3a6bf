"""The trading desk: stages consumed events, runs the book over them in event-time order, and
sends the outbox. This is the only place that combines the pure book with the database and bus.

Every consumed batch is ONE transaction under the book lock: drop what was seen already, apply
every item the event-time merge lets go (the new ones and those held back before), keep the
new items that must still wait, and save the book's changes with their outbox rows. Committed
before the batch is acked, so a crash leaves either unacked messages (redelivered, recognised)
or unsent outbox rows (sent by the next flush or the outbox loop).

Where a waiting item is kept depends on its stream:
- a signal (few, rarely waiting) goes to the `inbox` table, and its delivery is acked;
- a bar (a replay can hold most of them) stays UNACKED in JetStream: `receive_bars` returns the
  ids of the bars it holds, and they are released (acked) once a committed transaction has
  applied them. The durable's max_ack_pending bounds the held bars, and so this memory: the
  server stops delivering bars until signals let some go. Only bars applied or staged are
  durable, so the `bar_seen` mark is persisted only that far (else a restart would let signals
  go ahead of bars it never saw again).

A held bar's delivery is never given back while this desk lives: the desk keeps every bar it
holds (`_holding`) apart from the state it may drop, and puts them back into a reloaded state.
Giving them back instead (a nak) would bring them again after the newer bars already in flight,
and the merge relies on each stream arriving in order. The deliveries of a killed instance are
redelivered only after ack_wait, after newer ones; the shared consumer (`tradebus.bus.rewind`) therefore restarts a
durable that has unacked messages at its ack floor + 1 before the consumers start, so all of
them come again in stream order (applied bars are skipped by `bar_applied`, decided signals by
their audit row). That is sound because risk runs as ONE instance (the book lock serialises
writers, but held bars live in one process's memory).

Releasing races with the bars consumer: a signals batch may apply a bar after `receive_bars`
returned its id and before the consumer recorded it as held, when `release` cannot ack it
yet. Released ids are therefore kept and released again when the next bars batch arrives (by
then every earlier batch is settled) and by the outbox loop; releasing an acked id is a no-op.

The book, the stream marks and the held-back items stay in memory between batches. The account
row's `version`, bumped by every such transaction, tells whether anyone else (another instance,
a reset) wrote since: then the state is reloaded. A failed transaction drops the memory copy.

The merge (`merge`) lets items go in ONE global event-time order across symbols, so the account
they share sees them as an uninterrupted, fully ordered run would. The watermark's wall-clock
bookkeeping (which stream holds the order, which was excused for its silence) lives in the desk
(`watermark`), not in the state; `expire_holds`, called every second, lets the order go past a
stream whose hold ran out when no batch comes to do it.

QUIET LIVE BARS skip the transaction: live bars arrive one by one, and a transaction (~5 round
trips) per bar was most of risk's live cost, while almost every such bar changes nothing but its
symbol's `bar_applied` and merge mark. `receive_bars` applies a bar in memory only, under the
book lock (so it sees only committed state) and acks it at once, when the memory copy is valid
(`_state`) and the bar is quiet: live, 1m, nothing of its symbol waits in the merge and no
earlier bar of its symbol in the batch went to the transaction, `Book.quiet_bar` (newer than
`bar_applied`, no holding or pending order of the symbol, no new day to roll, drawdown checked)
and, the one narrowing found needed, a signal of its symbol was seen whose next one decides
after the bar opens (`signal_seen + base > open`). The rest takes the transactional path.

The durable `bar_applied` and `bar_seen` of a quiet symbol may then lag the memory copy; the
next transaction touching the symbol (any signal decided for it, any loud bar of it) saves the
memory copy, and a holding or a pending order of a symbol only ever appears in such a
transaction, so the lag exists only while the durable book has neither for the symbol. A quiet
bar is seen again only after a crash (`tradebus.bus.rewind` restarts a durable at its ack floor,
which held replay bars or in-flight ones keep below acked quiet bars) or as a late copy after
a reload (a failed transaction drops the memory copy); it is then newer than the durable
`bar_applied` and applied again, and that is still a no-op:
- no holding: one would come from a fill at a later bar, committed with that later
  `bar_applied`, and the old bar would be skipped;
- no due order: the symbol had none when the bar was quiet, and a later order is submitted at
  its signal's decision point, which is after the bar opened: every signal up to the bar's
  open was seen, so decided (audited, its own redelivery skipped) or staged (then nothing
  was quiet). WITHOUT the signal mark rule this fails: a quiet bar at C, the signal at C
  decided only after a crash, then the rewound bar at C fills its entry at C's open where an
  uninterrupted run fills it at the next bar's;
- no day roll: the account's day only moves forward, durably (`_roll_day` runs inside
  transactions), and the bar stayed in the day current when it was quiet;
- the drawdown check a reloaded book makes at its first bar depends on the equity only, which
  quiet bars do not move.
So such a run makes exactly the trades of an uninterrupted one. A quiet bar may also go ahead of
the global order: it changes nothing but its own symbol's `bar_applied` (no fill, no mark, no
day roll, the drawdown unchanged), which nothing of another symbol reads, so applying it before
or after another symbol's earlier item gives the same account; it still moves its symbol's bar
frontier, and when that lets waiting items go, `receive_bars` runs a transaction for them.

The lagging `bar_seen` may only hold a REPLAY signal of the same symbol (a run mixing modes on
one symbol) in the merge until the symbol's next bar, which then goes after it in the same order
as before. A writer other than this desk (a second instance) is not noticed by quiet bars until
the next transaction: risk runs as one instance (see above).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol, cast

import asyncpg

from tradebus.bus import Publisher
from tradebus.events import (
    BreakerEvent,
    Envelope,
    FillEvent,
    Mode,
    OrderEvent,
    PositionEvent,
    RejectionEvent,
    TradeEvent,
    critical_price_problem,
)
from tradebus.logging import get_logger
from tradebus.timeframes import interval_ms
from tradebus_risk import breaker_store, metrics
from tradebus_risk.book import Book, Changes
from tradebus_risk.breaker import BreakerLimits, Breakers, BreakerState
from tradebus_risk.gate import EntryGate
from tradebus_risk.inbound import RiskBarEvent, RiskSignalEvent
from tradebus_risk.limits import RiskLimits
from tradebus_risk.merge import NO_MARKS, Key, Kind, MergeQueue, Stream, StreamMarks, Watermark, head, item_key, take
from tradebus_risk.repository import Batch, Conn, Repository, StagedRow
from tradebus_risk.rules import Reason, decision_time

log = get_logger(__name__)

OUTBOX_BATCH: Final = 1_000
_EVENT_TYPES: Final[dict[str, type[Envelope]]] = {
    cls.EVENT_TYPE: cls for cls in (OrderEvent, FillEvent, PositionEvent, TradeEvent, RejectionEvent, BreakerEvent)
}


_NO_MARKS: Final = NO_MARKS
DEFAULT_HOLD_S: Final = 60.0


@dataclass(slots=True)
class Held:
    """A received item not yet applied (a `merge.Item`); `stored` once it is in the inbox table."""

    event_id: str
    kind: Kind
    symbol: str
    at: datetime
    live: bool
    event: RiskSignalEvent | RiskBarEvent
    stored: bool = False


@dataclass(slots=True)
class DeskState:
    """What the committed database holds, in memory, with the bars held unacked: valid while
    `version` is the account's."""

    version: int
    book: Book
    marks: dict[str, StreamMarks]
    held: dict[str, MergeQueue[Held]] = field(default_factory=dict)
    """Per symbol, the items waiting for the merge."""
    held_ids: set[str] = field(default_factory=set)
    staged_bar_seen: dict[str, datetime] = field(default_factory=dict)
    """Per symbol, the newest bar in the inbox (rows of older versions): durable like applied ones."""
    clock: Key | None = None
    """The key of the last item the merge applied: an item keyed below it is late (`merge`). Not
    durable: after a (re)load lateness is judged from the first item applied."""


class HeldDeliveries(Protocol):
    """The bars consumer's deliveries held back by `receive_bars` (a `tradebus.bus.BatchConsumer`)."""

    async def release(self, event_ids: Iterable[str]) -> None: ...


Stager = Callable[[DeskState, Batch, set[str]], list[Held]]
"""Adds the fresh items of a batch to the state; gets the ids of the batch's signals decided already."""


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
        held_bars: Callable[[], HeldDeliveries],
        clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
        *,
        symbols: Iterable[str] = (),
        hold_s: float = DEFAULT_HOLD_S,
        monotonic: Callable[[], float] = time.monotonic,
        breaker_limits: BreakerLimits = BreakerLimits(),
        gate: EntryGate | None = None,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._held_bars = held_bars
        self.limits = limits
        self._clock = clock
        self._monotonic = monotonic
        self.breaker_limits = breaker_limits
        self.gate = gate
        """Screens accepted live entries (the readiness gate, `gate`), None for none."""
        self.watermark = Watermark(frozenset(symbols), hold_s)
        """Which streams the global event-time order waits for (process lifetime, see `merge`)."""
        self._book_lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()
        self._state: DeskState | None = None
        self._outbox_dirty = True
        self._holding: dict[str, Held] = {}
        """Bars whose deliveries the consumer holds unacked for us, by event id (survives `_state`)."""
        self._released: set[str] = set()
        """Applied held bars, released again until every bars batch before them is settled."""

    @property
    def repo(self) -> Repository:
        return Repository(self._pool(), self.limits)

    async def start(self) -> None:
        """Create the account on first start, apply what the inbox may release, publish what a
        crash left unsent, set the gauges."""
        await self.repo.ensure_account()
        await self._process(self._stage_nothing)

    # ----------------------------------------------------------------- consuming
    async def receive_signals(self, events: list[RiskSignalEvent]) -> None:
        duplicates = 0

        def stage(state: DeskState, batch: Batch, decided: set[str]) -> list[Held]:
            nonlocal duplicates
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
                    self.watermark.advanced((signal.symbol, "signal"))
                fresh.append(_hold(state, event, "signal", signal.symbol, at))
                batch.touched.add(signal.symbol)
            return fresh

        await self._process(stage, [e.event_id for e in events])
        if duplicates:
            metrics.DECISIONS.labels("rejected", Reason.DUPLICATE_SIGNAL).inc(duplicates)

    async def receive_bars(self, events: list[RiskBarEvent]) -> set[str]:
        """Stage and apply `events`; returns the ids of the bars held back, to stay unacked."""
        await self.release_applied(settled=True)  # the consumer settled every earlier batch by now
        events, others_wait = await self._apply_quiet(events)
        if not events:
            if others_wait:  # the quiet bars moved their frontiers: waiting items may go now
                await self._process(self._stage_nothing)
            return set()

        def stage(state: DeskState, batch: Batch, decided: set[str]) -> list[Held]:
            fresh: list[Held] = []
            applied = state.book.bar_applied
            newest: dict[str, datetime] = {}
            for event in events:
                bar = event.data
                symbol, at = bar.symbol, bar.open_time
                last = applied.get(symbol)
                if bar.interval != "1m" or (last is not None and at <= last):
                    continue  # not ours, or applied already (a redelivery)
                if event.event_id in state.held_ids:
                    continue  # held back already (a redelivery: it stays held)
                if symbol not in newest or at > newest[symbol]:
                    newest[symbol] = at
                fresh.append(_hold(state, event, "bar", symbol, at))
            for symbol, at in newest.items():  # in memory only: held bars are not durable
                if _see_bar(state, symbol, at):
                    self.watermark.advanced((symbol, "bar"))
            return fresh

        await self._process(stage)
        holding = self._holding
        return {event.event_id for event in events if event.event_id in holding}

    async def _apply_quiet(self, events: list[RiskBarEvent]) -> tuple[list[RiskBarEvent], bool]:
        """Apply the quiet bars of `events` in memory only (see the module docstring); returns the
        others, for the transaction, and whether the quiet bars let waiting items go (moving their
        symbols' frontiers past the first of them)."""
        async with self._book_lock:
            state = self._state
            if state is None:
                return events, False
            rest: list[RiskBarEvent] = []
            loud: set[str] = set()  # symbols with a bar for the transaction: their later bars follow it
            for event in events:
                symbol = event.data.symbol
                if symbol not in loud and _quiet(state, event):
                    state.book.apply_bar(event)
                    if _see_bar(state, symbol, event.data.open_time):
                        self.watermark.advanced((symbol, "bar"))
                else:
                    loud.add(symbol)
                    rest.append(event)
            if rest or not any(state.held.values()):
                return rest, False
            watermark = self.watermark
            go, bound = watermark.bound(state.marks, watermark.members(state.held))
            first = head(state.held)
            others_may_go = go and first is not None and (bound is None or first < bound)
        return rest, others_may_go

    async def release_applied(self, *, settled: bool = False) -> None:
        """Ack the applied bars' deliveries again; `settled`: no bars batch is between its
        handler and its acks (so each of them was acked now, and may be forgotten)."""
        if self._released:
            await self._held_bars().release(self._released)
            if settled:
                self._released.clear()

    @staticmethod
    def _stage_nothing(state: DeskState, batch: Batch, decided: set[str]) -> list[Held]:
        return []

    async def _process(self, stage: Stager, signal_ids: Sequence[str] = ()) -> None:
        book = await self._transact(stage, signal_ids)
        self._count(book)
        try:
            await self.flush(only_if_dirty=True)
        except Exception as exc:  # noqa: BLE001 - the rows stay unsent; the outbox loop retries
            log.warning("outbox not sent yet", error=repr(exc))

    # ----------------------------------------------------------------- the book
    async def _transact(
        self, stage: Stager, signal_ids: Sequence[str] = (), then: Callable[[Book], None] | None = None
    ) -> Book:
        """Stage, apply what the merge allows, save: one transaction under the book lock, which
        also tells which of `signal_ids` were decided already."""
        async with self._book_lock, self._pool().acquire() as conn:
            try:
                async with conn.transaction():
                    version, decided = await self.repo.lock(conn, signal_ids)
                    state = await self._current(conn, version)
                    state.book.changes = Changes()
                    batch = Batch(state.book, {}, state.version + 1)
                    fresh = stage(state, batch, decided)
                    applied_bars = self._apply_ready(state, batch, self._clock())
                    if then is not None:
                        then(state.book)
                    batch.touched.update(state.book.changes.positions)
                    waiting = [held for held in fresh if held.event_id in state.held_ids]
                    for held in waiting:
                        if held.kind == "signal":  # a bar waits unacked in JetStream instead
                            batch.stage.append(_staged_row(held))
                            held.stored = True
                    if batch.touched or batch.stage or then is not None:  # else only bars wait: nothing durable
                        batch.marks = {symbol: _durable_marks(state, symbol) for symbol in batch.touched}
                        await self.repo.save(conn, batch)
                        await breaker_store.save_dirty(conn, state.book.breakers)
                        state.version = batch.version
            except BaseException:
                self._state = None  # memory may be ahead of what was committed
                raise
            released = self._settle_holding(waiting, applied_bars)
        if released:
            self._released.update(released)
            await self._held_bars().release(released)
        if state.book.changes.events:
            self._outbox_dirty = True
        return state.book

    def _settle_holding(self, waiting: list[Held], applied_bars: list[str]) -> list[str]:
        """After a commit: the bars now held, and those held before that were applied (to release)."""
        holding = self._holding
        released = [event_id for event_id in applied_bars if holding.pop(event_id, None) is not None]
        for held in waiting:
            if held.kind == "bar":
                holding[held.event_id] = held
        return released

    async def _current(self, conn: Conn, version: int) -> DeskState:
        """The cached state when nobody wrote since (`version` is its own), else a fresh one from
        the database."""
        if self._state is not None and self._state.version == version:
            return self._state
        state = DeskState(version, await self.repo.load_book(conn), await self.repo.marks(conn))
        state.book.breakers = Breakers(self.breaker_limits, await breaker_store.load(conn))
        state.book.gate = self.gate
        for row in await self.repo.staged(conn):
            kind: Kind = row["kind"]
            model: type[RiskSignalEvent | RiskBarEvent] = RiskSignalEvent if kind == "signal" else RiskBarEvent
            event = model.model_validate_json(row["payload"])
            held = Held(row["event_id"], kind, row["symbol"], row["at"], row["live"], event, True)
            _insert(state, row["symbol"], held)
            if kind == "bar":
                newest = state.staged_bar_seen.get(row["symbol"])
                state.staged_bar_seen[row["symbol"]] = row["at"] if newest is None else max(newest, row["at"])
        applied = state.book.bar_applied
        for held in list(self._holding.values()):  # still held unacked for us: never dropped with the state
            symbol = held.event.data.symbol
            last = applied.get(symbol)
            if last is not None and held.at <= last:  # applied by a committed write after all
                del self._holding[held.event_id]
                self._released.add(held.event_id)
            elif held.event_id not in state.held_ids:
                _see_bar(state, symbol, held.at)
                _insert(state, symbol, held)
        self._state = state
        return state

    def _apply_ready(self, state: DeskState, batch: Batch, wall_clock: datetime) -> list[str]:
        """Apply, in the global event-time order, every held item the watermark lets go (excusing
        the streams silent past their hold); returns the ids of the applied bars that were not in
        the inbox (their deliveries are to be released)."""
        book = state.book
        unacked: list[str] = []
        watermark = self.watermark
        while True:
            go = take(state.held, state.marks, watermark)
            for held in go:
                key = item_key(held)
                late = state.clock is not None and key < state.clock
                if late:
                    metrics.LATE_EVENTS.labels(held.kind).inc()
                else:
                    state.clock = key
                if held.kind == "signal":  # not isinstance: slow on pydantic's ABC metaclass
                    book.decide(cast(RiskSignalEvent, held.event), wall_clock, late=late)
                else:
                    book.apply_bar(cast(RiskBarEvent, held.event))
                    if not held.stored:
                        unacked.append(held.event_id)
                if held.stored:
                    batch.unstage.append(held.event_id)
                batch.touched.add(held.symbol)
            if go:
                state.held_ids.difference_update(held.event_id for held in go)
            excused = watermark.update(head(state.held), state.marks, watermark.members(state.held), self._monotonic())
            if not excused:
                return unacked
            for symbol, kind in excused:
                metrics.WATERMARK_EXCUSED.labels(kind).inc()
                log.warning("stream excused from the event order", symbol=symbol, kind=kind, hold_s=watermark.hold_s)

    async def expire_holds(self) -> None:
        """Let the waiting items go past a stream whose hold ran out (no batch may come to do it)."""
        if self.watermark.due(self._monotonic()):
            await self._process(self._stage_nothing)

    def order_status(self) -> tuple[dict[Stream, float], list[Stream]]:
        """The streams holding waiting items back (seconds each) and those excused for silence."""
        return self.watermark.holders(self._monotonic()), sorted(self.watermark.excused)

    async def reset(self) -> Book:
        """Lift the drawdown freeze (audited) and return the book after it."""
        book = await self._transact(self._stage_nothing, then=lambda b: b.reset(self._clock(), Mode.LIVE))
        self._update_gauges(book)
        log.info("risk reset", equity=str(book.equity()), peak=str(book.account.peak_equity))
        return book

    async def reset_breakers(self, scope: str | None) -> list[str]:
        """Close `scope`'s circuit breaker, or every open one (audited, published): the scopes closed."""
        closed: list[str] = []

        def reset(book: Book) -> None:
            closed.extend(book.reset_breakers(scope, self._clock(), Mode.LIVE))

        book = await self._transact(self._stage_nothing, then=reset)
        metrics.count_breakers(book.changes.breakers)
        await self.flush()
        log.info("circuit breakers reset", scopes=closed)
        return closed

    async def trip_live(self, symbol: str, trigger: str, detail: str, at: datetime) -> None:
        """Open `symbol`'s breaker on a live, wall-clock fact (a critical telemetry issue)."""
        book = await self._transact(
            self._stage_nothing, then=lambda b: b.trip_breaker(symbol, trigger, detail, at, Mode.LIVE)
        )
        metrics.count_breakers(book.changes.breakers)
        await self.flush()

    async def breakers(self) -> dict[str, BreakerState]:
        """Every breaker's state (memory copy when valid and free, as `status`)."""
        state = self._state
        if state is not None and not self._book_lock.locked():
            return dict(state.book.breakers.states)
        return await breaker_store.load(self._pool())

    async def status(self) -> TradingStatus:
        """Frozen or not, and the open positions: from the memory copy when there is one and the
        book lock is free (then no transaction is half-way: the copy is the committed state), else
        from the database, without waiting for the lock. Readiness asks at every heartbeat and
        probe; loading the book for it took four queries and a Book each time."""
        state = self._state
        if state is not None and not self._book_lock.locked():
            return TradingStatus(state.book.frozen, state.book.open_count())
        book = await self.repo.load_book(self._pool())
        return TradingStatus(book.frozen, book.open_count())

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
        decided = Counter((verdict.decision, verdict.reason) for verdict in book.changes.verdicts)
        for (decision, reason), count in decided.items():
            metrics.DECISIONS.labels(decision, reason).inc(count)
        for side in book.changes.fills:
            metrics.FILLS.labels(side.value).inc()
        metrics.count_breakers(book.changes.breakers)
        self._update_gauges(book)

    @staticmethod
    def _update_gauges(book: Book) -> None:
        worst = 0.0
        for asset in book.accounts:
            equity = book.equity(asset)
            drawdown = float(book.drawdown(equity, asset))
            metrics.BALANCE_EQUITY.labels(asset).set(float(equity))
            metrics.BALANCE_DRAWDOWN.labels(asset).set(drawdown)
            worst = max(worst, drawdown)
        metrics.EQUITY.set(float(book.equity()))
        metrics.OPEN_POSITIONS.set(len(book.holdings))
        metrics.DRAWDOWN.set(worst)
        metrics.FROZEN.set(1 if book.frozen else 0)


def _hold(state: DeskState, event: RiskSignalEvent | RiskBarEvent, kind: Kind, symbol: str, at: datetime) -> Held:
    held = Held(event.event_id, kind, symbol, at, event.mode is Mode.LIVE, event)
    _insert(state, symbol, held)
    return held


def _insert(state: DeskState, symbol: str, held: Held) -> None:
    queue = state.held.get(symbol)
    if queue is None:
        queue = state.held[symbol] = MergeQueue()
    queue.add(held)
    state.held_ids.add(held.event_id)


def _quiet(state: DeskState, event: RiskBarEvent) -> bool:
    """Whether `event` may be applied in memory only (see the module docstring)."""
    bar = event.data
    symbol, at = bar.symbol, bar.open_time
    if event.mode is not Mode.LIVE or bar.interval != "1m" or state.held.get(symbol):
        return False
    marks = state.marks.get(symbol, _NO_MARKS)
    if marks.signal_seen is None or marks.base is None or marks.signal_seen + marks.base <= at:
        return False  # a signal deciding at or before `at` may still come
    return state.book.quiet_bar(symbol, at) and critical_price_problem(bar.open, bar.high, bar.low, bar.close) is None


def _see_bar(state: DeskState, symbol: str, at: datetime) -> bool:
    """Move the symbol's bar mark to `at` if that is newer; returns whether it moved."""
    marks = state.marks.get(symbol, _NO_MARKS)
    if marks.bar_seen is None or at > marks.bar_seen:
        state.marks[symbol] = replace(marks, bar_seen=at)
        return True
    return False


def _durable_marks(state: DeskState, symbol: str) -> StreamMarks:
    """The marks to persist: bars count as seen only as far as applied or in the inbox."""
    seen = [t for t in (state.book.bar_applied.get(symbol), state.staged_bar_seen.get(symbol)) if t is not None]
    return replace(state.marks.get(symbol, _NO_MARKS), bar_seen=max(seen, default=None))


def _staged_row(held: Held) -> StagedRow:
    event = held.event
    return held.event_id, held.kind, event.data.symbol, held.at, held.live, event.model_dump_json()
