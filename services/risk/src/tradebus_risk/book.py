"""The paper book: applies decided signals and 1m bars to the accounts, in Decimal, and records
every state change together with the events it must publish (the caller persists both in one
transaction: a transactional outbox). No I/O here. Every amount follows the money policy of
`precision`: on its grid, rounded in a stated direction, added up without any further rounding.

ONE ACCOUNT PER QUOTE ASSET (`accounts`): a symbol trades against the account of its quote asset
(`RiskLimits.quote_of`): cash, equity, peak, drawdown freeze, the day's start equity and
realised P&L are that asset's, never added to another's. The open-position count and the day
(event time) are shared. A symbol no funded asset quotes is refused `no_quote_balance`.

Besides the rules, two event-time policies run on every bar applied (so in the global order):
- an order whose first bar opens more than `order_expiry_s` after it was submitted EXPIRES
  (`stale`, audited, a rejection event) instead of filling days late at an unrelated price;
- an open long whose symbol delivered no bar for `stale_feed_h` hours is CLOSED at its last
  price (`stale_feed`, with slippage and fee) at the first bar of any symbol past that silence,
  freeing its slot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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
    SignalState,
    Trade,
    TradeEvent,
    critical_price_problem,
)
from tradebus_risk.breaker import BreakerLimits, Breakers
from tradebus_risk.exposure import Sample, correlation, is_sample, returns
from tradebus_risk.gate import EntryGate
from tradebus_risk.inbound import BarMessage, SignalMessage
from tradebus_risk.limits import RiskLimits, quote_asset
from tradebus_risk.paper import exit_trigger
from tradebus_risk.precision import accounting, plain
from tradebus_risk.records import Account, AuditEntry, Holding, OrderStatus, PaperOrder
from tradebus_risk.rules import BUY_STATES, Reason, Snapshot, Verdict, decision_time, evaluate

SOURCE = "risk"
_MINUTE = timedelta(minutes=1)
_ZERO = Decimal(0)
_IDLE = Snapshot(_ZERO, _ZERO, _ZERO, False, _ZERO, _ZERO, 0, False, False)


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
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    """The correlation samples taken, per symbol (only these are written: the rows keep the last)."""
    positions: set[str] = field(default_factory=set)
    """Symbols whose position changed: their rows are written (a stale-feed close changes another
    symbol's position than the bar's)."""


class Book:
    """The account, its open longs and its unfilled orders; see the module docstring."""

    def __init__(
        self,
        accounts: dict[str, Account],
        holdings: dict[str, Holding],
        pending: dict[str, PaperOrder],
        position_seq: dict[str, int],
        bar_applied: dict[str, datetime],
        limits: RiskLimits,
        samples: dict[str, list[Sample]] | None = None,
    ) -> None:
        self.accounts = accounts
        """Per quote asset (see the module docstring)."""
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
        self.samples: dict[str, list[Sample]] = samples if samples is not None else {}
        """Per symbol, the last closes on a correlation step (`exposure`)."""
        self._quotes: dict[str, str | None] = {}
        self._funded = frozenset(limits.funded)
        self._returns_of: dict[str, tuple[datetime | None, dict[datetime, float]]] = {}
        self._stale_after = timedelta(hours=float(limits.stale_feed_h))
        self._expire_after = timedelta(seconds=limits.order_expiry_s)
        self._step = timedelta(minutes=limits.correlation_step_m)

    @classmethod
    def fresh(cls, limits: RiskLimits) -> Book:
        """An empty book: every funded asset at its starting balance."""
        accounts = {
            asset: Account(balance, balance, peak_equity=balance, day_start_equity=balance)
            for asset, balance in limits.funded.items()
        }
        return cls(accounts, {}, {}, {}, {}, limits)

    @property
    def account(self) -> Account:
        """The home asset's account (the first funded): what the single-account fields show."""
        return self.accounts.get(self.limits.home_asset) or next(iter(self.accounts.values()))

    @property
    def frozen(self) -> bool:
        """Whether any asset's account is frozen by its drawdown."""
        return any(a.frozen for a in self.accounts.values())

    @property
    def day(self) -> date | None:
        return min((a.day for a in self.accounts.values() if a.day is not None), default=None)

    def quote(self, symbol: str) -> str | None:
        """The quote asset of `symbol` among the book's accounts (`limits.quote_asset`, cached): the
        funded ones and any a former configuration funded, whose longs must still be managed."""
        try:
            return self._quotes[symbol]
        except KeyError:
            asset = self._quotes[symbol] = quote_asset(symbol, tuple(self.accounts))
            return asset

    # ----------------------------------------------------------------- figures
    def equity(self, asset: str | None = None) -> Decimal:
        """An asset's cash plus its open longs marked at their symbols' last 1m close (the home asset by default)."""
        asset = asset or self._home()
        holdings: Iterable[Holding] = self.holdings.values()
        if len(self.accounts) > 1:  # else the one account holds every long (only funded assets trade)
            holdings = [h for h in holdings if self.quote(h.symbol) == asset]
        with accounting():
            return self.accounts[asset].cash + sum((self.market_value(h) for h in holdings), Decimal(0))

    def market_value(self, holding: Holding) -> Decimal:
        return self.money.value(holding.quantity, holding.mark_price)

    def entry_cost(self, holding: Holding) -> Decimal:
        """The notional paid for the holding (its fee is booked apart, in `fees`)."""
        return self.money.notional(holding.quantity, holding.entry_price, Side.BUY)

    def unrealized_of(self, holding: Holding) -> Decimal:
        with accounting():
            return self.market_value(holding) - self.entry_cost(holding)

    def unrealized(self, asset: str | None = None) -> Decimal:
        asset = asset or self._home()
        with accounting():
            held = (self.unrealized_of(h) for h in self.holdings.values() if self.quote(h.symbol) == asset)
            return sum(held, Decimal(0))

    def drawdown(self, equity: Decimal | None = None, asset: str | None = None) -> Decimal:
        """Fall from the asset's peak equity as a fraction of the peak (0 at a new high); `equity` if known."""
        asset = asset or self._home()
        peak = self.accounts[asset].peak_equity
        if peak <= 0:
            return Decimal(0)
        return max(Decimal(0), (peak - (self.equity(asset) if equity is None else equity)) / peak)

    def exposure(self, asset: str) -> dict[str, Decimal]:
        """Per symbol of `asset`: its open long at the mark plus its pending entry at the planned price."""
        out: dict[str, Decimal] = {}
        for h in self.holdings.values():
            if self.quote(h.symbol) == asset:
                out[h.symbol] = self.market_value(h)
        for o in self.pending.values():
            if o.purpose == "entry" and self.quote(o.symbol) == asset:
                out[o.symbol] = out.get(o.symbol, Decimal(0)) + o.quantity * (o.est_price or Decimal(0))
        return out

    def correlated(self, symbol: str, others: list[str], at: datetime) -> tuple[str, ...]:
        """Those of `others` whose return correlation with `symbol` up to `at` reaches the threshold."""
        if not others:
            return ()
        mine = self._returns(symbol, at)
        threshold = float(self.limits.correlation_threshold)
        group = []
        for other in sorted(others):
            r = correlation(mine, self._returns(other, at))
            if r is not None and r >= threshold:
                group.append(other)
        return tuple(group)

    def open_count(self) -> int:
        """Open longs plus entries waiting for their fill (both count against the limit)."""
        waiting = sum(1 for o in self.pending.values() if o.purpose == "entry")
        return len(self.holdings) + waiting

    def snapshot(self, symbol: str, at: datetime | None = None) -> Snapshot:
        """The account of `symbol`'s quote asset as the rules see it at `at` (exposure and group
        only when `at` is given: an entry is being judged)."""
        asset = self.quote(symbol)
        a = self.accounts.get(asset) if asset is not None else None
        has_position = symbol in self.holdings
        has_pending_order = any(o.symbol == symbol for o in self.pending.values())
        if a is None or asset is None or asset not in self._funded:  # unfunded, or no longer (its longs still exit)
            zero = Decimal(0)
            count = self.open_count()
            return Snapshot(zero, zero, zero, False, zero, zero, count, has_position, has_pending_order, asset, False)
        exposure = self.exposure(asset) if at is not None else {}
        with accounting():
            total = sum(exposure.values(), Decimal(0))

        def group_of() -> tuple[tuple[str, ...], Decimal]:
            if at is None:
                return (), Decimal(0)
            group = self.correlated(symbol, [s for s in exposure if s != symbol], at)
            with accounting():
                return group, sum((exposure[s] for s in group), Decimal(0))

        return Snapshot(
            equity=self.equity(asset),
            cash=a.cash,
            peak_equity=a.peak_equity,
            frozen=a.frozen,
            day_start_equity=a.day_start_equity,
            day_realized=a.day_realized,
            open_positions=self.open_count(),
            has_position=has_position,
            has_pending_order=has_pending_order,
            asset=asset,
            funded=True,
            exposure=total,
            group_of=group_of,
            min_notional=self.limits.min_notional_of(asset),
        )

    # ----------------------------------------------------------------- signals
    def decide(self, event: SignalMessage, wall_clock: datetime, *, late: bool = False) -> Verdict:
        """Judge one signal at its decision point; an accepted one submits a market order. `late`:
        the account is past the signal's event time already (no entry is opened on it)."""
        signal = event.data
        at = decision_time(signal)
        self._roll_day(at)
        live = event.mode is Mode.LIVE
        if signal.state is SignalState.NEUTRAL:
            snapshot = _IDLE  # a NEUTRAL signal is a hold whatever the account (the rules' first check)
        else:
            judged = signal.plan is not None and signal.state in BUY_STATES  # an entry: exposure counts
            snapshot = self.snapshot(signal.symbol, at if judged else None)
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
            self._emit_rejection(rejection, f"rejected:{event.event_id}", event.trace_id, event.mode)
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
                    est_price=signal.plan.entry,
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
        day = self.day
        return (
            (last is None or at > last)
            and day is not None
            and at.date() <= day
            and self._drawdown_watched
            and symbol not in self.holdings
            and all(order.symbol != symbol for order in self.pending.values())
            and not is_sample(at + _MINUTE, self.limits.correlation_step_m)
            and not self._stale_holdings(at)
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
        stale = self._stale_holdings(bar.open_time) if self.holdings else []
        for silent in stale:
            self._close_stale(silent, bar.open_time)
        due = sorted(
            (o for o in self.pending.values() if o.symbol == bar.symbol and o.submitted_at <= bar.open_time),
            key=lambda o: (o.submitted_at, o.order_id),
        )
        for order in due:
            if order.order_id not in self.pending:
                continue  # an exit fill cancels the position's other orders
            if bar.open_time - order.submitted_at > self._expire_after:
                self._expire(order, bar.open_time)
            else:
                self._fill(order, bar.open, bar.open_time)
        if is_sample(bar.open_time + _MINUTE, self.limits.correlation_step_m):
            self._sample(bar.symbol, bar.open_time + _MINUTE, bar.close)
        holding = self.holdings.get(bar.symbol)
        if holding is not None:
            trigger = exit_trigger(bar, holding.stop, holding.targets[0] if holding.targets else None)
            if trigger is not None:
                order = self._exit_order(holding, trigger.reason, bar.open_time)
                self._submit(order)
                self._fill(order, trigger.price, bar.open_time)
            else:
                holding.mark_price = bar.close
        moved = bool(due) or bool(stale) or holding is not None
        if moved or not self._drawdown_watched:
            self._watch_drawdown(bar.open_time, event.mode, moved=moved)
        # else: no fill and no mark moved, so the equity is the one last checked: nothing to do

    # ----------------------------------------------------------------- account
    def reset(self, at: datetime, mode: Mode) -> None:
        """Lift every asset's drawdown freeze and restart its drawdown from its current equity."""
        parts = []
        for asset, account in sorted(self.accounts.items()):
            was_frozen = account.frozen
            account.frozen = False
            account.peak_equity = self.equity(asset)
            was = "frozen" if was_frozen else "not frozen"
            parts.append(f"{asset} peak reset to {plain(account.peak_equity)}; was {was}")
        detail = "; ".join(parts)
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
    def _home(self) -> str:
        home = self.limits.home_asset
        return home if home in self.accounts else next(iter(self.accounts))

    def _roll_day(self, at: datetime) -> None:
        day = at.date()
        for asset, account in self.accounts.items():
            if account.day is None or day > account.day:
                account.day = day
                account.day_start_equity = self.equity(asset)
                account.day_realized = Decimal(0)

    def _watch_drawdown(self, at: datetime, mode: Mode, *, moved: bool) -> None:
        """Freeze at the drawdown limit; `moved`: a fill or a mark moved the equity (else this is
        the first check of a reloaded book, which an uninterrupted run did not make: the breaker's
        equity reference must not see it, or its window would restart at another time)."""
        self._drawdown_watched = True
        limit = self.limits.max_drawdown_pct
        for asset, account in self.accounts.items():
            equity = self.equity(asset)
            account.peak_equity = max(account.peak_equity, equity)
            drawdown = self.drawdown(equity, asset)
            if not account.frozen and drawdown >= limit:
                account.frozen = True
                peak = plain(account.peak_equity)
                detail = f"{asset} drawdown {drawdown:.4%} from peak {peak} (limit {plain(limit)})"
                self.changes.audits.append(AuditEntry(None, None, "freeze", Reason.DRAWDOWN_FREEZE, detail, at, mode))
        if moved:  # the equity-drop breaker watches the home asset's account (services/risk/README.md)
            self.breakers.equity(at, self.equity(), mode)
            self._record_breakers()

    def _returns(self, symbol: str, at: datetime) -> dict[datetime, float]:
        """The symbol's sampled returns up to `at`, computed once per new sample (a Decimal
        division each: per decision they were most of an entry's cost)."""
        samples = self.samples.get(symbol, [])
        last = samples[-1][0] if samples else None
        cached = self._returns_of.get(symbol)
        if cached is None or cached[0] != last:
            cached = self._returns_of[symbol] = (last, returns(samples, self._step, datetime.max.replace(tzinfo=UTC)))
        if last is not None and last > at:  # a bar closing after the decision (a quiet live bar applied ahead)
            return {t: r for t, r in cached[1].items() if t <= at}
        return cached[1]

    def _sample(self, symbol: str, close_time: datetime, close: Decimal) -> None:
        kept = self.samples.get(symbol)
        if kept is None:
            kept = self.samples[symbol] = []
        taken = self.changes.samples.setdefault(symbol, [])
        for samples in (kept, taken):
            samples.append((close_time, close))
            if len(samples) > self.limits.correlation_window + 1:
                del samples[0]

    def _stale_holdings(self, at: datetime) -> list[Holding]:
        """Open longs whose symbol's last bar opened more than `stale_feed_h` before `at`, by symbol."""
        after = self._stale_after
        out = []
        for symbol in sorted(self.holdings):
            last = self.bar_applied.get(symbol)
            if last is not None and at - last > after:
                out.append(self.holdings[symbol])
        return out

    def _close_stale(self, holding: Holding, at: datetime) -> None:
        """Close a long whose feed went silent at its last price (see the module docstring)."""
        last = self.bar_applied.get(holding.symbol)
        silent = f"no {holding.symbol} bar since {last.isoformat() if last else '?'}"
        price = plain(holding.mark_price)
        detail = f"{silent} (limit {plain(self.limits.stale_feed_h)} h): closed at the last price {price}"
        entry = AuditEntry(None, holding.symbol, "close", Reason.STALE_FEED, detail, at, holding.mode)
        self.changes.audits.append(entry)
        order = self._exit_order(holding, Reason.STALE_FEED.value, at)
        self._submit(order)
        self._fill(order, holding.mark_price, at)

    def _expire(self, order: PaperOrder, at: datetime) -> None:
        """Expire an order whose first bar opened long after it (see the module docstring)."""
        waited = (at - order.submitted_at).total_seconds()
        detail = (
            f"order {order.order_id} submitted {order.submitted_at.isoformat()}, its first bar opened"
            f" {waited:.0f} s later (limit {self.limits.order_expiry_s:.0f} s): expired unfilled"
        )
        self._close_order(order, "expired")
        self.changes.audits.append(AuditEntry(None, order.symbol, "expired", Reason.STALE, detail, at, order.mode))
        rejection = Rejection(
            signal_id=order.signal_id or order.order_id, symbol=order.symbol, reason=Reason.STALE, detail=detail
        )
        self._emit_rejection(rejection, f"expired:{order.order_id}", order.trace_id, order.mode)

    def _emit_rejection(self, rejection: Rejection, event_id: str, trace_id: str, mode: Mode) -> None:
        event = RejectionEvent.build(event_id=event_id, source=SOURCE, trace_id=trace_id, mode=mode, data=rejection)
        self._emit(subjects.exec_rejected(rejection.symbol), event)

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
        asset = self.quote(order.symbol)
        assert asset is not None and asset in self.accounts  # the rules accept entries of funded assets only
        account = self.accounts[asset]
        if order.purpose == "entry":
            cap = money.quantity(self.equity(asset) * self.limits.max_position_pct / price)  # the cap at the fill
            quantity = min(quantity, cap, self._affordable(price, account))
            minimum = self.limits.min_notional_of(asset)
            if quantity <= 0 or money.notional(quantity, price, Side.BUY) < minimum:
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
            account.fees += cost
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
            self._open(order, account, quantity, price, notional, cost, at)
        else:
            self._close(order, account, price, notional, cost, at)

    def _affordable(self, price: Decimal, account: Account) -> Decimal:
        """The most the account's cash buys at `price` with its fee, after the notional and fee round up."""
        money, rate = self.money, self.limits.fee_rate
        cash = max(account.cash, Decimal(0))
        quantity = money.quantity(cash / (price * (1 + rate)))
        while quantity > 0 and (n := money.notional(quantity, price, Side.BUY)) + money.fee(n, rate) > cash:
            quantity -= money.qty_step
        return quantity

    def _close_order(self, order: PaperOrder, status: OrderStatus) -> None:
        order.status = status
        self.pending.pop(order.order_id, None)
        self.changes.orders[order.order_id] = order

    def _open(
        self,
        order: PaperOrder,
        account: Account,
        quantity: Decimal,
        price: Decimal,
        notional: Decimal,
        cost: Decimal,
        at: datetime,
    ) -> None:
        with accounting():
            account.cash -= notional + cost
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
            quote_asset=self.quote(order.symbol),
        )
        self._emit_position(position, order)

    def _close(
        self, order: PaperOrder, account: Account, price: Decimal, notional: Decimal, cost: Decimal, at: datetime
    ) -> None:
        holding = self.holdings.pop(order.symbol)
        quantity = holding.quantity
        with accounting():
            gross = notional - self.entry_cost(holding)
            fees = holding.entry_fee + cost
            net = gross - fees
            account.cash += notional - cost
            account.realized_pnl += gross
            account.day_realized += net
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
            quote_asset=self.quote(order.symbol),
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
            quote_asset=self.quote(order.symbol),
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
        self.changes.positions.add(position.symbol)
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
