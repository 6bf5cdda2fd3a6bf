"""The book's mutable records: the account, open longs, paper orders and audit entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from tradebus.events import Mode, Side


@dataclass(slots=True)
class Account:
    """One quote asset's cash and running totals (`Book.accounts`); realised P&L is gross, fees
    are counted apart. Amounts of different assets are never added together."""

    initial_balance: Decimal
    cash: Decimal
    realized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    peak_equity: Decimal = Decimal(0)
    frozen: bool = False
    day: date | None = None
    day_start_equity: Decimal = Decimal(0)
    day_realized: Decimal = Decimal(0)
    """Net P&L of the trades closed on `day` (event time)."""


@dataclass(slots=True)
class Holding:
    """An open long; `position_id` is the id of the signal that opened it."""

    symbol: str
    position_id: str
    quantity: Decimal
    entry_price: Decimal
    entry_fee: Decimal
    stop: Decimal | None
    targets: list[Decimal]
    mark_price: Decimal
    opened_at: datetime
    strategy: str
    trace_id: str
    mode: Mode


OrderStatus = Literal["submitted", "filled", "cancelled", "expired"]


@dataclass(slots=True)
class PaperOrder:
    """A market order: submitted at its decision time, filled by the first bar opening at or after it."""

    order_id: str
    symbol: str
    side: Side
    purpose: Literal["entry", "exit"]
    quantity: Decimal
    reason: str
    signal_id: str | None
    position_id: str
    submitted_at: datetime
    trace_id: str
    mode: Mode
    strategy: str
    stop: Decimal | None = None
    targets: list[Decimal] = field(default_factory=list)
    status: OrderStatus = "submitted"
    fill_price: Decimal | None = None
    fee: Decimal | None = None
    filled_at: datetime | None = None
    est_price: Decimal | None = None
    """An entry's planned price: what its notional counts for in the exposure until it fills."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log: a signal's verdict, or an account event (freeze, reset, an
    expired order, a stale-feed close)."""

    signal_id: str | None
    symbol: str | None
    decision: str
    reason: str
    detail: str
    event_time: datetime
    mode: Mode
