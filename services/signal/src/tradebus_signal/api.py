"""HTTP request models of the signal service."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from tradebus.events import Signal, Symbol
from tradebus.timeframes import Interval, datetime_to_ms, interval_ms
from tradebus_signal.settings import MAX_BAR_LIMIT

CLOSE_GRACE: Final = timedelta(seconds=60)
"""How long after its close a bar may take to reach the store (exchange, ingest, aggregator)
before the answer counts as behind the clock."""

Horizon = Literal["5m", "15m", "1h", "4h", "1d"]


def _normalise_symbol(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


RequestSymbol = Annotated[Symbol, BeforeValidator(_normalise_symbol)]


class SignalRequest(BaseModel):
    """`POST /v1/signal`: the first horizon is the base whose latest closed bar is signalled."""

    model_config = ConfigDict(extra="forbid")

    symbol: RequestSymbol
    horizons: list[Horizon] | None = Field(default=None, min_length=1, description="Default: SIGNAL_HORIZONS.")
    bar_limit: int = Field(default=200, ge=1, le=MAX_BAR_LIMIT, description="Bars per horizon, newest.")
    explain: bool = True

    @field_validator("horizons")
    @classmethod
    def _distinct(cls, value: list[Horizon] | None) -> list[Horizon] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("horizons must be distinct")
        return value


class SignalAnswer(Signal):
    """`POST /v1/signal`'s answer: the signal (as published), and whether its bar lags the clock."""

    stale: bool = Field(
        description="True when newer base bars have closed than the latest stored one: the stack is "
        "catching up (a backfill or replay still in progress), or its feed stopped."
    )
    bars_behind: int = Field(ge=0, description="Base bars closed by the wall clock after the one signalled.")


def bars_behind(bar_time: datetime, interval: Interval, now: datetime) -> int:
    """Base bars that have closed by `now` (less `CLOSE_GRACE`) after the one opening at `bar_time`."""
    step = interval_ms(interval)
    closed_by = datetime_to_ms(now - CLOSE_GRACE) // step * step  # close of the newest bar due by now
    return max(0, (closed_by - (datetime_to_ms(bar_time) + step)) // step)
