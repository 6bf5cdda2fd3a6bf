"""What risk reads of the events it consumes: `RiskSignalEvent` and `RiskBarEvent` decode a
`signals.*` or `bars.1m.*` message into only those facts.

A contract `SignalEvent` carries ~80 Decimals risk never looks at (each horizon's `features`, the
signal's own `features`, `rationale`, `explanation`), and a `BarEvent` volumes, trade count and
close time; validating them made up most of risk's decoding cost. The slim models keep the
contract's fields risk reads with the SAME types and constraints (a test pins them), so these
are validated as strictly as before, and ignore the rest like any extra field. Inbox rows
written with the full models load the same way.

Their times are made UTC (`datetime.UTC`) as they are decoded: pydantic's own UTC tzinfo makes
every comparison of two times call `utcoffset` on both (~1.8 us instead of ~0.2), and the merge
and the book compare a bar's open time several times. The value and its JSON stay the same.

The book and the rules take either model through the protocols below: the service decodes slim
events, tests and the bench build full ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Protocol, Self

from pydantic import AfterValidator, BaseModel, Field, model_validator

from tradebus.events import (
    Amount,
    Bar,
    BarEvent,
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
    ohlc_problem,
    time_problem,
)
from tradebus.timeframes import Interval


def _in_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcTime = Annotated[UtcDatetime, AfterValidator(_in_utc)]
"""The contract's `UtcDatetime`, in `datetime.UTC` (see the module docstring)."""


class RiskSignal(BaseModel):
    """The fields of the contract's `Signal` that risk reads (and its headline: price, direction,
    confidence); per-horizon detail, features and explanation are ignored."""

    model_config = Signal.model_config

    symbol: Symbol
    interval: Interval = Field(description="The horizon whose closed bar triggered the signal.")
    bar_time: UtcTime = Field(description="Open time of the triggering bar (event time).")
    price: Amount = Field(gt=0, description="Close of the triggering bar.")
    state: SignalState
    direction: Direction
    confidence: Amount = Field(ge=0, le=1)
    plan: TradePlan | None = None
    model: ModelInfo


class RiskSignalEvent(Envelope):
    """A `signal.generated` event (the contract's `SignalEvent`) as risk decodes it."""

    EVENT_TYPE: ClassVar[str] = SignalEvent.EVENT_TYPE
    data: RiskSignal


class RiskBar(BaseModel):
    """The fields of the contract's `Bar` that risk reads: when, and its prices."""

    model_config = Bar.model_config

    symbol: Symbol
    interval: Interval
    open_time: UtcTime
    open: Amount
    high: Amount
    low: Amount
    close: Amount

    @model_validator(mode="after")
    def _is_a_bar(self) -> Self:
        """The contract `Bar`'s own facts, on the fields risk reads."""
        problem = ohlc_problem(self.open, self.high, self.low, self.close)
        problem = problem or time_problem(self.interval, self.open_time)
        if problem is not None:
            raise ValueError(problem)
        return self


class RiskBarEvent(Envelope):
    """A `bar.closed` event (the contract's `BarEvent`) as risk decodes it."""

    EVENT_TYPE: ClassVar[str] = BarEvent.EVENT_TYPE
    data: RiskBar


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


class BarFacts(Protocol):
    """What the book and the paper exchange read of a bar: a contract `Bar` or a `RiskBar`."""

    @property
    def symbol(self) -> str: ...
    @property
    def open_time(self) -> datetime: ...
    @property
    def open(self) -> Decimal: ...
    @property
    def high(self) -> Decimal: ...
    @property
    def low(self) -> Decimal: ...
    @property
    def close(self) -> Decimal: ...


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


class BarMessage(Protocol):
    """A bar's envelope as the book reads it: a `BarEvent` or a `RiskBarEvent`."""

    @property
    def mode(self) -> Mode: ...
    @property
    def data(self) -> BarFacts: ...
