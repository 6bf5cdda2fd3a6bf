"""Pre-trade rules: every signal gets a verdict (accepted, rejected or hold) with a stable reason.

Spot, long only: BUY and STRONG_BUY open a long when none is open for the symbol, SELL and
STRONG_SELL close it, NEUTRAL holds. Rules run in a fixed order so that the reason recorded is
the most fundamental one (a stale signal is `stale_data` even when trading is also frozen).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from tradebus.events import SignalState
from tradebus.timeframes import interval_ms
from tradebus_risk.inbound import SignalFacts
from tradebus_risk.limits import RiskLimits
from tradebus_risk.precision import plain
from tradebus_risk.sizing import size_entry


class Reason(StrEnum):
    """Stable reason codes (the audit log, `exec.rejected.*` and metrics use them)."""

    ENTRY = "entry"
    EXIT = "exit_signal"
    NEUTRAL = "neutral"
    POSITION_OPEN = "position_open"
    ORDER_PENDING = "order_pending"
    MAX_OPEN_POSITIONS = "max_open_positions"
    POSITION_SIZE = "position_size"
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    DRAWDOWN_FREEZE = "drawdown_freeze"
    RISK_REWARD_TOO_LOW = "risk_reward_too_low"
    STALE_DATA = "stale_data"
    DUPLICATE_SIGNAL = "duplicate_signal"
    NO_PLAN = "no_plan"
    NO_POSITION = "no_position"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    CIRCUIT_BREAKER = "circuit_breaker"
    READINESS_BLOCKED = "readiness_blocked"
    READINESS_DEGRADED = "readiness_degraded"
    NO_QUOTE_BALANCE = "no_quote_balance"
    EXPOSURE_LIMIT = "exposure_limit"
    STALE = "stale"
    """An accepted order expired: the first bar that could fill it opened long after it (`book`)."""
    STALE_FEED = "stale_feed"
    """An open long closed at its last price: its symbol's feed was silent too long (`book`)."""


_SHOWN = Decimal("1e-8")
Decision = Literal["accepted", "rejected", "hold"]
BUY_STATES = frozenset({SignalState.BUY, SignalState.STRONG_BUY})
SELL_STATES = frozenset({SignalState.SELL, SignalState.STRONG_SELL})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the rules need to know about the account when a signal is decided."""

    equity: Decimal
    cash: Decimal
    peak_equity: Decimal
    frozen: bool
    day_start_equity: Decimal
    day_realized: Decimal
    open_positions: int
    """Open longs plus entries submitted but not yet filled."""
    has_position: bool
    has_pending_order: bool
    asset: str | None = None
    """The symbol's quote asset; None: no funded asset quotes it (`limits.quote_asset`)."""
    funded: bool = True
    """Whether `asset` has a balance: equity, cash and the day's figures above are that asset's."""
    exposure: Decimal = Decimal(0)
    """The asset's open longs at their marks plus its pending entries (`exposure`)."""
    group_of: Callable[[], tuple[tuple[str, ...], Decimal]] = lambda: ((), Decimal(0))
    """The symbols correlated with this one (by name) and their part of `exposure`: called only
    when the group cap could be reached (the correlations are the costly part of an entry)."""
    min_notional: Decimal | None = None
    """The asset's minimum notional; None: the limits' `min_notional`."""


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    reason: Reason
    detail: str
    quantity: Decimal = Decimal(0)


def decision_time(signal: SignalFacts) -> datetime:
    """C: the close of the bar that triggered the signal (its open time + its interval)."""
    return signal.bar_time + timedelta(milliseconds=interval_ms(signal.interval))


def evaluate(
    signal: SignalFacts, account: Snapshot, limits: RiskLimits, *, wall_clock: datetime | None, late: bool = False
) -> Verdict:
    """The verdict on `signal`; `wall_clock` is given for live signals only (staleness); `late`:
    the account's event time is past the signal's already (see `merge`: its stream was excused)."""
    if signal.state is SignalState.NEUTRAL:
        return Verdict("hold", Reason.NEUTRAL, "neutral signal: nothing to do")
    if wall_clock is not None:
        age = (wall_clock - decision_time(signal)).total_seconds()
        if age > limits.stale_after_s:
            return _reject(Reason.STALE_DATA, f"bar closed {age:.0f} s ago, limit {limits.stale_after_s:.0f} s")
    if account.has_pending_order:
        return Verdict("hold", Reason.ORDER_PENDING, "an order for this symbol is waiting for its fill")
    if signal.state in SELL_STATES:
        if not account.has_position:
            return _reject(Reason.NO_POSITION, f"{signal.state} without an open long (spot, long only)")
        return Verdict("accepted", Reason.EXIT, f"{signal.state} closes the open long")
    return _entry(signal, account, limits, late=late)


def _entry(signal: SignalFacts, account: Snapshot, limits: RiskLimits, *, late: bool) -> Verdict:
    if late:
        detail = "arrived after the account's event time passed it (its feed was silent past RISK_WATERMARK_HOLD_S)"
        return _reject(Reason.STALE_DATA, detail)
    if account.has_position:
        return Verdict("hold", Reason.POSITION_OPEN, "a long is already open for this symbol")
    if not account.funded:
        asset = account.asset or "unknown"
        detail = f"quote asset {asset} of {signal.symbol} has no balance (RISK_BALANCES)"
        return _reject(Reason.NO_QUOTE_BALANCE, detail)
    if account.frozen:
        detail = f"{account.asset} trading frozen by its drawdown limit until POST /v1/risk/reset"
        return _reject(Reason.DRAWDOWN_FREEZE, detail)
    loss_limit = account.day_start_equity * limits.max_daily_loss_pct
    if -account.day_realized >= loss_limit:
        detail = f"{account.asset} realised {plain(account.day_realized)} today, limit -{plain(loss_limit)}"
        return _reject(Reason.DAILY_LOSS_LIMIT, detail)
    if account.open_positions >= limits.max_open_positions:
        return _reject(Reason.MAX_OPEN_POSITIONS, f"{account.open_positions} open, limit {limits.max_open_positions}")
    plan = signal.plan
    if plan is None or plan.stop <= 0 or plan.stop >= plan.entry:
        return _reject(Reason.NO_PLAN, "no trade plan with a stop below the entry")
    if plan.risk_reward < limits.min_rr:
        detail = f"risk/reward {plain(plan.risk_reward)} below {plain(limits.min_rr)}"
        return _reject(Reason.RISK_REWARD_TOO_LOW, detail)
    size = size_entry(
        equity=account.equity,
        cash=account.cash,
        entry=plan.entry,
        stop=plan.stop,
        limits=limits,
        min_notional=account.min_notional,
    )
    if size.reason is not None:
        return _reject(Reason(size.reason), f"{account.asset}: {size.detail}")
    capped = _exposure(account, size.quantity * plan.entry, limits)
    if capped is not None:
        return capped
    return Verdict("accepted", Reason.ENTRY, f"{account.asset}: {size.detail}", size.quantity)


def _exposure(account: Snapshot, notional: Decimal, limits: RiskLimits) -> Verdict | None:
    """`exposure_limit` when the entry's notional takes its quote asset or its correlated group past the cap."""
    asset, equity = account.asset, account.equity
    total_cap = equity * limits.max_exposure_pct
    if account.exposure + notional > total_cap:
        held = f"{asset} exposure {plain(account.exposure.quantize(_SHOWN))} + {plain(notional.quantize(_SHOWN))}"
        cap = f"{plain(limits.max_exposure_pct)} of equity {plain(equity)}"
        return _reject(Reason.EXPOSURE_LIMIT, f"{held} above {cap}")
    group_cap = equity * limits.max_correlated_pct
    if account.exposure + notional <= group_cap:
        return None  # no group holds more than the asset does
    members, in_group = account.group_of()
    if members and in_group + notional > group_cap:
        held = f"{plain(in_group.quantize(_SHOWN))} + {plain(notional.quantize(_SHOWN))}"
        group = ", ".join(members)
        cap = f"{plain(limits.max_correlated_pct)} of equity {plain(equity)}"
        detail = f"correlated with {group}: {asset} {held} above {cap}"
        return _reject(Reason.EXPOSURE_LIMIT, detail)
    return None


def _reject(reason: Reason, detail: str) -> Verdict:
    return Verdict("rejected", reason, detail)
