"""The paper book: applies decided signals and 1m bars to the account, in Decimal, and records
every state change together with the events it must publish (the caller persists both in one
transaction: a transactional outbox). No I/O here. Every amount follows the money policy of
`precision`: on its grid, rounded in a stated direction, added up without any further rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tradebus import subjects
from tradebus.events import (
    Breaker,
    Direction,
    Envelope,
    Fill,
    FillEvent,
    Mode,
    Order,
    OrderEvent,
    Position,
    PositionEvent,
    Rejection,
    RejectionEvent,
    Side,
    Trade,
    TradeEvent,
    critical_price_problem,
)
from tradebus_risk.breaker import BreakerLimits, Breakers
from tradebus_risk.gate import EntryGate
from tradebus_risk.inbound import BarMessage, SignalMessage
from tradebus_risk.limits import RiskLimits
from tradebus_risk.paper import exit_trigger
from tradebus_risk.precision import accounting, plain
from tradebus_risk.records import Account, AuditEntry, Holding, OrderStatus, PaperOrder
from tradebus_risk.rules import Reason, Snapshot, Verdict, decision_time, evaluate

SOURCE = "risk"


@dataclass(slots=True)
class Changes:
    """What one batch changed: rows to write and events to publish, in the order they happened."""

    orders: dict[str, PaperOrder] = field(default_factory=dict)
    trades: list[TradeEvent] = field(default_factory=list)
    audits: list[AuditEntry] = field(default_factory=list)
    events: list[tuple[str, Envelope]] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    fills: list[Side] = field(default_factory=list)
    breakers: list[Breaker] = field(default_factory=list)


class Book:
    """The account, its open longs and its unfilled orders; see the module docstring."""

    def __init__(
        self,
        account: Account,
        holdings: dict[str, Holding],
        pending: dict[str, PaperOrder],
        position_seq: dict[str, int],
        bar_applied: dict[str, datetime],
        limits: RiskLimits,
    ) -> None:
        self.account = account
        self.holdings = holdings
        self.pending = pending
        self.position_seq = position_seq
        self.bar_applied = bar_applied
        self.limits = limits
        self.money = limits.money
        self.changes = Changes()
        self.breakers = Breakers(BreakerLimits())
        """The circuit breakers (`breaker`); the desk gives the book its saved ones."""
        self.gate: EntryGate | None = None
        """Screens accepted LIVE entries on wall-clock state (`gate`: readiness); None: no gate."""
        self._drawdown_watched = False
        """Whether the drawdown was checked at the current equity (only fills and marks move it)."""

    # ----------------------------------------------------------------- figures
    def equity(self) -> Decimal:
        """Cash plus every open long marked at its symbol's last 1m close."""
        with accounting():
            return self.account.cash + sum((self.market_value(h) for h in self.holdings.values()), Decimal(0))

    def market_value(self, holding: Holding) -> Decimal:
        return self.money.value(holding.quantity, holding.mark_price)

    def entry_cost(self, holding: Holding) -> Decimal:
        """The notional paid for the holding (its fee is booked apart, in `fees`)."""
        return self.money.notional(holding.quantity, holding.entry_price, Side.BUY)

    def unrealized_of(self, holding: Holding) -> Decimal:
        with accounting():
            return self.market_value(holding) - self.entry_cost(holding)

    def unrealized(self) -> Decimal:
        with accounting():
            return sum((self.unrealized_of(h) for h in self.holdings.values()), Decimal(0))

    def drawdown(self, equity: Decimal | None = None) -> Decimal:
        """Fall from the peak equity as a fraction of the peak (0 at a new high); `equity` if known."""
        peak = self.account.peak_equity
        if peak <= 0:
            return Decimal(0)
        return max(Decimal(0), (peak - (self.equity() if equity is None else equity)) / peak)

    def open_count(self) -> int:
        """Open longs plus entries waiting for their fill (both count against the limit)."""
        waiting = sum(1 for o in self.pending.values() if o.purpose == "entry")
        return len(self.holdings) + waiting

    def snapshot(self, symbol: str) -> Snapshot:
        a = self.account
        return Snapshot(
            equity=self.equity(),
            cash=a.cash,
            peak_equity=a.peak_equity,
            frozen=a.frozen,
            day_start_equity=a.day_start_equity,
            day_realized=a.day_realized,
            open_positions=self.open_count(),
            has_position=symbol in self.holdings,
            has_pending_order=any(o.symbol == symbol for o in self.pending.values()),
        )

    # ----------------------------------------------------------------- signals
    def decide(self, event: SignalMessage, wall_clock: datetime, *, late: bool = False) -> Verdict:
        """Judge one signal at its decision point; an accepted one submits a market order. `late`:
        the account is past the signal's event time already (no entry is opened on it)."""
        signal = event.data
        at = decision_time(signal)
        self._roll_day(at)
        live = event.mode is Mode.LIVE
        snapshot = self.snapshot(signal.symbol)
        verdict = evaluate(signal, snapshot, self.limits, wall_clock=wall_clock if live else None, late=late)
        if verdict.reason is Reason.ENTRY:
            verdict = self._screen_entry(signal.symbol, at, event, verdict)
        self.changes.verdicts.append(verdict)
        self.changes.audits.append(
            AuditEntry(event.event_id, signal.symbol, verdict.decision, verdict.reason, verdict.detail, at, event.mode)
        )
        if verdict.decision == "rejected":
            rejection = Rejection(
                signal_id=event.event_id, symbol=signal.symbol, reason=verdict.reason, detail=verdict.detail
            )
            self._emit(
                subjects.exec_rejected(signal.symbol),
                RejectionEvent.build(
                    event_id=f"rejected:{event.event_id}",
                    source=SOURCE,
                    trace_id=event.trace_id,
                    mode=event.mode,
                    data=rejection,
                ),
            )
        elif verdict.reason is Reason.ENTRY:
            assert signal.plan is not None  # the rules accept an entry only with a plan
            self._submit(
                PaperOrder(
                    order_id=f"{event.event_id}:entry",
                    symbol=signal.symbol,
                    side=Side.BUY,
                    purpose="entry",
                    quantity=verdict.quantity,
                    reason=signal.state.value,
                    signal_id=event.event_id,
                    position_id=event.event_id,
                    submitted_at=at,
                    trace_id=event.trace_id,
                    mode=event.mode,
                    strategy=signal.model.version,
                    stop=signal.plan.stop,
                    targets=list(signal.plan.targets),
                )
            )
        elif verdict.reason is Reason.EXIT:
            holding = self.holdings[signal.symbol]
            self._submit(self._exit_order(holding, "signal", at, signal_id=event.event_id, trace_id=event.trace_id))
        return verdict

    # ----------------------------------------------------------------- bars
    def quiet_bar(self, symbol: str, at: datetime) -> bool:
        """Whether `apply_bar` of `symbol`'s bar opening at `at` would change only `bar_applied`:
        it is newer than the last applied, nothing of the symbol is held or waits for a fill, it
        stays in the account's day, and the drawdown was checked at the current equity already."""
        last = self.bar_applied.get(symbol)
        day = self.account.day
        return (
            (last is None or at > last)
            and day is not None
            and at.date() <= day
            and self._drawdown_watched
            and symbol not in self.holdings
            and all(order.symbol != symbol for order in self.pending.values())
        )

    def apply_bar(self, event: BarMessage) -> None:
        """Fill due orders at the bar's open, run the stop/target check, mark to the close."""
        bar = event.data
        last = self.bar_applied.get(bar.symbol)
        if last is not None and bar.open_time <= last:
            return  # already applied (a redelivery, or a late minute that cannot rewrite the past)
        self.bar_applied[bar.symbol] = bar.open_time
        self._roll_day(bar.open_time)
        if (problem := critical_price_problem(bar.open, bar.high, bar.low, bar.close)) is not None:
            self.breakers.bad_bar(bar.symbol, bar.open_time, event.mode, problem)
            self._record_breakers()
        due = sorted(
            (o for o in self.pending.values() if o.symbol == bar.symbol and o.submitted_at <= bar.open_time),
            key=lambda o: (o.submitted_at, o.order_id),
        )
        for order in due:
            if order.order_id in self.pending:  # an exit fill cancels the position's other orders
                self._fill(order, bar.open, bar.open_time)
        holding = self.holdings.get(bar.symbol)
        if holding is not None:
            trigger = exit_trigger(bar, holding.stop, holding.targets[0] if holding.targets else None)
            if trigger is not None:
                order = self._exit_order(holding, trigger.reason, bar.open_time)
                self._submit(order)
                self._fill(order, trigger.price, bar.open_time)
            else:
                holding.mark_price = bar.close
        moved = bool(due) or holding is not None
        if moved or not self._drawdown_watched:
            self._watch_drawdown(bar.open_time, event.mode, moved=moved)
        # else: no fill and no mark moved, so the equity is the one last checked: nothing to do

    # ----------------------------------------------------------------- account
    def reset(self, at: datetime, mode: Mode) -> None:
        """Lift a drawdown freeze and restart the drawdown from the current equity."""
        was_frozen = self.account.frozen
        self.account.frozen = False
        self.account.peak_equity = self.equity()
        detail = f"peak reset to {plain(self.account.peak_equity)}; was {'frozen' if was_frozen else 'not frozen'}"
        self.changes.audits.append(AuditEntry(None, None, "reset", "manual_reset", detail, at, mode))

    def reset_breakers(self, scope: str | None, at: datetime, mode: Mode) -> list[str]:
        """Close `scope`'s circuit breaker (every open one when None) by hand (audited, published)."""
        closed = self.breakers.reset(scope, at, mode)
        self._record_breakers()
        return closed

    def trip_breaker(self, scope: str, trigger: str, detail: str, at: datetime, mode: Mode) -> None:
        """Open `scope`'s breaker on a fact from outside the book (audited, published)."""
        self.breakers.trip(scope, trigger, detail, at, mode)
        self._record_breakers()

    # ----------------------------------------------------------------- safety hooks
    def _screen_entry(self, symbol: str, at: datetime, event: SignalMessage, verdict: Verdict) -> Verdict:
        """An accepted entry passes the readiness gate (live only) and the breakers (`breaker`, `gate`)."""
        if self.gate is not None and event.mode is Mode.LIVE:
            verdict = self.gate(verdict)
        if verdict.reason is Reason.ENTRY:
            verdict = self.breakers.screen(symbol, at, event.mode, verdict, f"{event.event_id}:entry")
            self._record_breakers()
        return verdict

    def _record_breakers(self) -> None:
        """Move the breakers' transitions into the batch's changes (audit rows, events)."""
        breakers = self.breakers
        if breakers.transitions:
            for t in breakers.transitions:
                self.changes.audits.append(t.audit)
                self._emit(t.subject, t.event)
                self.changes.breakers.append(t.data)
            breakers.transitions.clear()

    # ----------------------------------------------------------------- internals
    def _roll_day(self, at: datetime) -> None:
        day = at.date()
        if self.account.day is None or day > self.account.day:
            self.account.day = day
            self.account.day_start_equity = self.equity()
            self.account.day_realized = Decimal(0)

    def _watch_drawdown(self, at: datetime, mode: Mode, *, moved: bool) -> None:
        """Freeze at the drawdown limit; `moved`: a fill or a mark moved the equity (else this is
        the first check of a reloaded book, which an uninterrupted run did not make: the breaker's
        equity reference must not see it, or its window would restart at another time)."""
        self._drawdown_watched = True
        equity = self.equity()
        self.account.peak_equity = max(self.account.peak_equity, equity)
        drawdown = self.drawdown(equity)
        if not self.account.frozen and drawdown >= self.limits.max_drawdown_pct:
            self.account.frozen = True
            limit = self.limits.max_drawdown_pct
            detail = f"drawdown {drawdown:.4%} from peak {plain(self.account.peak_equity)} (limit {plain(limit)})"
            self.changes.audits.append(AuditEntry(None, None, "freeze", Reason.DRAWDOWN_FREEZE, detail, at, mode))
        if moved:
            self.breakers.equity(at, equity, mode)
            self._record_breakers()

    def _exit_order(
        self, holding: Holding, reason: str, at: datetime, *, signal_id: str | None = None, trace_id: str | None = None
    ) -> PaperOrder:
        suffix = "exit" if reason == "signal" else reason
        return PaperOrder(
            order_id=f"{holding.position_id}:{suffix}",
            symbol=holding.symbol,
            side=Side.SELL,
            purpose="exit",
            quantity=holding.quantity,
            reason=reason,
            signal_id=signal_id,
            position_id=holding.position_id,
            submitted_at=at,
            trace_id=trace_id or holding.trace_id,
            mode=holding.mode,
            strategy=holding.strategy,
        )

    def _submit(self, order: PaperOrder) -> None:
        self.pending[order.order_id] = order
        self.changes.orders[order.order_id] = order
        data = Order(
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            purpose=order.purpose,
            reason=order.reason,
            signal_id=order.signal_id,
            submitted_at=order.submitted_at,
        )
        self._emit(
            subjects.exec_order(order.symbol),
            OrderEvent.build(
                event_id=f"order:{order.order_id}", source=SOURCE, trace_id=order.trace_id, mode=order.mode, data=data
            ),
        )

    def _fill(self, order: PaperOrder, raw_price: Decimal, at: datetime) -> None:
        money = self.money
        price = money.fill_price(raw_price, order.side, self.limits.slippage_bps)
        quantity = order.quantity
        if order.purpose == "entry":
            quantity = min(quantity, self._affordable(price))
            if quantity <= 0 or money.notional(quantity, price, Side.BUY) < self.limits.min_notional:
                self._close_order(order, "cancelled")
                detail = f"{order.order_id} cancelled at {plain(price)}: cash buys less than the minimum notional"
                self.breakers.fill_failed(order.symbol, order.order_id, at, order.mode, detail)
                self._record_breakers()
                return
        notional = money.notional(quantity, price, order.side)
        cost = money.fee(notional, self.limits.fee_rate)
        order.quantity, order.fill_price, order.fee, order.filled_at = quantity, price, cost, at
        self._close_order(order, "filled")
        with accounting():
            self.account.fees += cost
        self.changes.fills.append(order.side)
        fill = Fill(
            fill_id=order.order_id,
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=quantity,
            price=price,
            fee=cost,
            filled_at=at,
        )
        self._emit(
            subjects.exec_fill(order.symbol),
            FillEvent.build(
                event_id=f"fill:{order.order_id}", source=SOURCE, trace_id=order.trace_id, mode=order.mode, data=fill
            ),
        )
        if order.purpose == "entry":
            self.breakers.fill_ok(order.symbol, order.order_id, at, order.mode)
            self._record_breakers()
            self._open(order, quantity, price, notional, cost, at)
        else:
            self._close(order, price, notional, cost, at)

    def _affordable(self, price: Decimal) -> Decimal:
        """The most the cash buys at `price` with its fee, after the notional and fee round up."""
        money, rate = self.money, self.limits.fee_rate
        cash = max(self.account.cash, Decimal(0))
        quantity = money.quantity(cash / (price * (1 + rate)))
        while quantity > 0 and (n := money.notional(quantity, price, Side.BUY)) + money.fee(n, rate) > cash:
            quantity -= money.qty_step
        return quantity

    def _close_order(self, order: PaperOrder, status: OrderStatus) -> None:
        order.status = status
        self.pending.pop(order.order_id, None)
        self.changes.orders[order.order_id] = order

    def _open(
        self, order: PaperOrder, quantity: Decimal, price: Decimal, notional: Decimal, cost: Decimal, at: datetime
    ) -> None:
        with accounting():
            self.account.cash -= notional + cost
        holding = Holding(
            symbol=order.symbol,
            position_id=order.position_id,
            quantity=quantity,
            entry_price=price,
            entry_fee=cost,
            stop=order.stop,
            targets=order.targets,
            mark_price=price,
            opened_at=at,
            strategy=order.strategy,
            trace_id=order.trace_id,
            mode=order.mode,
        )
        self.holdings[order.symbol] = holding
        position = Position(
            symbol=order.symbol,
            direction=Direction.LONG,
            quantity=quantity,
            entry_price=price,
            stop=holding.stop,
            targets=holding.targets,
            mark_price=price,
            status="open",
            updated_at=at,
        )
        self._emit_position(position, order)

    def _close(self, order: PaperOrder, price: Decimal, notional: Decimal, cost: Decimal, at: datetime) -> None:
        holding = self.holdings.pop(order.symbol)
        quantity = holding.quantity
        with accounting():
            gross = notional - self.entry_cost(holding)
            fees = holding.entry_fee + cost
            net = gross - fees
            self.account.cash += notional - cost
            self.account.realized_pnl += gross
            self.account.day_realized += net
        for other in [o for o in self.pending.values() if o.position_id == holding.position_id]:
            self._close_order(other, "cancelled")
        position = Position(
            symbol=order.symbol,
            direction=Direction.FLAT,
            quantity=Decimal(0),
            entry_price=holding.entry_price,
            mark_price=price,
            realized_pnl=net,
            status="closed",
            updated_at=at,
        )
        self._emit_position(position, order)
        trade = Trade(
            trade_id=holding.position_id,
            symbol=order.symbol,
            strategy=holding.strategy,
            direction=Direction.LONG,
            quantity=quantity,
            entry_price=holding.entry_price,
            exit_price=price,
            entry_time=holding.opened_at,
            exit_time=at,
            gross_pnl=gross,
            fees=fees,
            net_pnl=net,
            exit_reason=order.reason,
        )
        event = TradeEvent.build(
            event_id=f"trade:{holding.position_id}",
            source=SOURCE,
            trace_id=holding.trace_id,
            mode=holding.mode,
            data=trade,
        )
        self.changes.trades.append(event)
        self._emit(subjects.exec_trade(order.symbol), event)

    def _emit_position(self, position: Position, order: PaperOrder) -> None:
        seq = self.position_seq.get(position.symbol, 0) + 1
        self.position_seq[position.symbol] = seq
        event = PositionEvent.build(
            event_id=f"position:{position.symbol}:{seq}",
            source=SOURCE,
            trace_id=order.trace_id,
            mode=order.mode,
            data=position,
        )
        self._emit(subjects.exec_position(position.symbol), event)

    def _emit(self, subject: str, event: Envelope) -> None:
        self.changes.events.append((subject, event))
