"""What risk reads of a signal: `RiskSignalEvent` decodes a `signals.*` message into only those facts.

A contract `SignalEvent` carries ~80 Decimals risk never looks at (each horizon's `features`, the
signal's own `features`, `rationale`, `explanation`); validating them made up most of risk's
decoding cost. `RiskSignal` keeps the contract `Signal`'s headline fields with the SAME types and
constraints (a test pins them), so what risk reads is validated as strictly as before, and
ignores the rest like any extra field. Inbox rows written with the full model load the same way.

The book and the rules take either model through `SignalFacts` / `SignalMessage`: the service
decodes slim events, tests and the bench build full ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Protocol

from pydantic import BaseModel, Field

from tradebus.events import (
    Amount,
    Direction,
    Envelope,
    Mode,
    ModelInfo,
    Signal,
    SignalEvent,
    SignalState,
    Symbol,
    TradePlan,
    UtcDatetime,
)
from tradebus.timeframes import Interval


class RiskSignal(BaseModel):
    """The fields of the contract's `Signal` that risk reads (and its headline: price, direction,
    confidence); per-horizon detail, features and explanation are ignored."""

    model_config = Signal.model_config

    symbol: Symbol
    interval: Interval = Field(description="The horizon whose closed bar triggered the signal.")
    bar_time: UtcDatetime = Field(description="Open time of the triggering bar (event time).")
    price: Amount = Field(description="Close of the triggering bar.")
    state: SignalState
    direction: Direction
    confidence: Amount = Field(ge=0, le=1)
    plan: TradePlan | None = None
    model: ModelInfo


class RiskSignalEvent(Envelope):
    """A `signal.generated` event (the contract's `SignalEvent`) as risk decodes it."""

    EVENT_TYPE: ClassVar[str] = SignalEvent.EVENT_TYPE
    data: RiskSignal


class SignalFacts(Protocol):
    """What the book and the rules read of a signal: a contract `Signal` or a `RiskSignal`."""

    @property
    def symbol(self) -> str: ...
    @property
    def interval(self) -> Interval: ...
    @property
    def bar_time(self) -> datetime: ...
    @property
    def state(self) -> SignalState: ...
    @property
    def plan(self) -> TradePlan | None: ...
    @property
    def model(self) -> ModelInfo: ...


class SignalMessage(Protocol):
    """A signal's envelope as the book reads it: a `SignalEvent` or a `RiskSignalEvent`."""

    @property
    def event_id(self) -> str: ...
    @property
    def trace_id(self) -> str: ...
    @property
    def mode(self) -> Mode: ...
    @property
    def data(self) -> SignalFacts: ...
