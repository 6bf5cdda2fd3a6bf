"""Circuit breakers (R-4.7, R-4.10): closed / open / half-open, decided in event time.

One breaker per symbol and one for the whole account (scope `ACCOUNT`). A breaker trips (opens)
on:
- `fill_failures`: `fill_failures` consecutive paper-fill failures of the symbol. The paper
  exchange cannot reject an order, so a FILL FAILURE here is an entry order that the book could
  not execute on the bar that was to fill it: cancelled because the cash no longer buys the
  minimum notional at the fill price (see `Book._fill`). Any other cancellation of an entry at
  its fill bar goes through the same hook. A filled entry of the symbol resets the count.
- `data_quality`: a bar of the symbol whose prices are a CRITICAL quality issue
  (`tradebus.events.critical_price_problem`, the rule telemetry reports as `ohlc`), judged on
  the bar itself when the book applies it; and, live only, a critical issue telemetry publishes
  on `telemetry.quality.<SYMBOL>` that the bar alone cannot show (a stale feed) — see
  `Desk.quality_issue`.
- `equity_drop` (account-wide): equity fell by `equity_drop_pct` or more below the reference:
  the last high (equity at a fill or a mark, ACCOUNT's `ref_equity`), which restarts at the
  current equity once it is older than `equity_window`. So a fall of the rate from a high within
  the window after it trips; a slower bleed does not (the drawdown freeze covers that).

Open: entries of the scope are rejected `circuit_breaker` (exits, stops and targets still run)
until `reopens_at` = trip time + `cooldown`. The first entry decided at or after it finds the
breaker HALF-OPEN (an event stamped `reopens_at`): that one entry is let through as the probe,
further ones are rejected while it waits; the probe's fill closes the breaker, its fill failure
opens it again. A manual reset (`POST /v1/risk/breaker/reset`, the API token) closes it at once.

Every decision uses event times only (bar open times, decision points, fill times) and the
state is saved in the batch's transaction, so a replay trips the same breakers at the same
bars whatever the batching, and after a crash. Only a live telemetry issue and a manual reset
happen in wall-clock time. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final, Literal

from tradebus import subjects
from tradebus.events import Breaker, BreakerEvent, Envelope, Mode, trace_id_for
from tradebus.timeframes import datetime_to_ms, iso_utc
from tradebus_risk.precision import plain
from tradebus_risk.records import AuditEntry
from tradebus_risk.rules import Reason, Verdict

ACCOUNT: Final = "ACCOUNT"
"""The account-wide breaker's scope (its events go to `exec.breaker.ACCOUNT`)."""
State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerLimits:
    """`RISK_BREAKER_*` settings."""

    fill_failures: int = 3
    cooldown: timedelta = timedelta(minutes=30)
    equity_drop_pct: Decimal = Decimal("0.05")
    equity_window: timedelta = timedelta(hours=1)


@dataclass(slots=True)
class BreakerState:
    """One breaker, as saved in the `breaker` table."""

    scope: str
    state: State = "closed"
    since: datetime | None = None
    reopens_at: datetime | None = None
    trigger: str = ""
    detail: str = ""
    fill_failures: int = 0
    probe: str | None = None
    """Half-open: the order id of the entry let through as the probe."""
    ref_equity: Decimal | None = None
    """ACCOUNT only: the equity the drop is measured from, and since when (`ref_at`)."""
    ref_at: datetime | None = None
    trips: int = 0


@dataclass(slots=True)
class Transition:
    """What one change of state adds to a batch: its audit row and its event."""

    audit: AuditEntry
    subject: str
    event: Envelope
    data: Breaker


class Breakers:
    """Every breaker of the account; `transitions` and `dirty` collect what a batch changed."""

    def __init__(self, limits: BreakerLimits, states: dict[str, BreakerState] | None = None) -> None:
        self.limits = limits
        self.states: dict[str, BreakerState] = states or {}
        self.dirty: set[str] = set()
        self.transitions: list[Transition] = []

    def get(self, scope: str) -> BreakerState:
        found = self.states.get(scope)
        if found is None:
            found = self.states[scope] = BreakerState(scope)
        return found

    def open_scopes(self) -> dict[str, BreakerState]:
        return {scope: s for scope, s in sorted(self.states.items()) if s.state != "closed"}

    # ----------------------------------------------------------------- the book's hooks
    def screen(self, symbol: str, at: datetime, mode: Mode, verdict: Verdict, order_id: str) -> Verdict:
        """An accepted entry of `symbol` decided at `at`: let through, or rejected `circuit_breaker`."""
        for scope in (ACCOUNT, symbol):
            s = self.states.get(scope)
            if s is None or s.state == "closed":
                continue
            if s.state == "open" and s.reopens_at is not None and at >= s.reopens_at:
                detail = "cool-down over: the next entry is the probe"
                self._move(s, "half_open", "cooldown", detail, s.reopens_at, mode)
            if s.state == "open":
                until = iso_utc(s.reopens_at) if s.reopens_at else "a manual reset"
                return _blocked(f"{scope} breaker open ({s.trigger}: {s.detail}) until {until}")
            if s.probe is not None and s.probe != order_id:
                return _blocked(f"{scope} breaker half-open: waiting for the fill of probe {s.probe}")
        for scope in (ACCOUNT, symbol):
            s = self.states.get(scope)
            if s is not None and s.state == "half_open":
                s.probe = order_id
                self.dirty.add(scope)
                verdict = replace(verdict, detail=f"{verdict.detail}; probe of the half-open {scope} breaker")
        return verdict

    def fill_failed(self, symbol: str, order_id: str, at: datetime, mode: Mode, detail: str) -> None:
        s = self.get(symbol)
        s.fill_failures += 1
        self.dirty.add(symbol)
        for scope in (ACCOUNT, symbol):
            probing = self.states.get(scope)
            if probing is not None and probing.probe == order_id:
                self.trip(scope, "fill_failures", f"probe {order_id} not filled: {detail}", at, mode)
        if s.state == "closed" and s.fill_failures >= self.limits.fill_failures:
            self.trip(symbol, "fill_failures", f"{s.fill_failures} consecutive fill failures, last: {detail}", at, mode)

    def fill_ok(self, symbol: str, order_id: str, at: datetime, mode: Mode) -> None:
        s = self.states.get(symbol)
        if s is not None and s.fill_failures:
            s.fill_failures = 0
            self.dirty.add(symbol)
        for scope in (ACCOUNT, symbol):
            probing = self.states.get(scope)
            if probing is not None and probing.probe == order_id:
                self._move(probing, "closed", "probe_filled", f"probe {order_id} filled", at, mode)

    def bad_bar(self, symbol: str, at: datetime, mode: Mode, problem: str) -> None:
        self.trip(symbol, "data_quality", f"critical bar at {iso_utc(at)}: {problem}", at, mode)

    def equity(self, at: datetime, equity: Decimal, mode: Mode) -> None:
        """The account's equity at `at` (after a fill or a mark): trips ACCOUNT on a fast drop."""
        s = self.get(ACCOUNT)
        ref, since = s.ref_equity, s.ref_at
        if ref is None or since is None or equity > ref or at - since > self.limits.equity_window:
            s.ref_equity, s.ref_at = equity, at  # a new high, or a reference too old: start again here
            self.dirty.add(ACCOUNT)
            return
        if ref <= 0 or s.state == "open":
            return
        drop = (ref - equity) / ref
        if drop >= self.limits.equity_drop_pct:
            window = int(self.limits.equity_window.total_seconds() // 60)
            detail = (
                f"equity {plain(equity)} is {drop:.4%} below {plain(ref)} of {iso_utc(since)} "
                f"(limit {plain(self.limits.equity_drop_pct)} within {window} min)"
            )
            self.trip(ACCOUNT, "equity_drop", detail, at, mode)
            s.ref_equity, s.ref_at = equity, at

    # ----------------------------------------------------------------- transitions
    def trip(self, scope: str, trigger: str, detail: str, at: datetime, mode: Mode) -> None:
        """Open `scope`'s breaker at `at` (again, if half-open; a trip while open is ignored)."""
        s = self.get(scope)
        if s.state == "open":
            return
        s.reopens_at = at + self.limits.cooldown
        s.trips += 1
        self._move(s, "open", trigger, detail, at, mode)

    def reset(self, scope: str | None, at: datetime, mode: Mode) -> list[str]:
        """Close `scope`'s breaker (every open one when None) by hand; returns the scopes closed."""
        closed = []
        for s in list(self.open_scopes().values()):
            if scope is None or s.scope == scope:
                self._move(s, "closed", "manual_reset", "closed by POST /v1/risk/breaker/reset", at, mode)
                closed.append(s.scope)
        return closed

    def _move(self, s: BreakerState, state: State, trigger: str, detail: str, at: datetime, mode: Mode) -> None:
        previous = s.state
        s.state, s.since, s.probe = state, at, None
        if state != "open":
            s.reopens_at = None
        if state == "closed":
            s.fill_failures = 0
        if trigger not in ("cooldown", "probe_filled", "manual_reset"):
            s.trigger, s.detail = trigger, detail
        self.dirty.add(s.scope)
        data = Breaker(
            scope=s.scope,
            state=state,
            previous=previous,
            trigger=trigger,
            detail=detail,
            at=at,
            reopens_at=s.reopens_at,
        )
        event = BreakerEvent.build(
            event_id=f"breaker:{s.scope}:{s.trips}:{state}:{datetime_to_ms(at)}",
            source="risk",
            trace_id=trace_id_for(f"breaker:{s.scope}:{s.trips}"),
            mode=mode,
            data=data,
        )
        symbol = None if s.scope == ACCOUNT else s.scope
        audit = AuditEntry(None, symbol, f"breaker_{state}", trigger, f"{s.scope}: {detail}", at, mode)
        self.transitions.append(Transition(audit, subjects.exec_breaker(s.scope), event, data))


def _blocked(detail: str) -> Verdict:
    return Verdict("rejected", Reason.CIRCUIT_BREAKER, detail)
