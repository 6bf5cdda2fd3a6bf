"""HTTP request models of the signal service."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from tradebus.events import Symbol
from tradebus_signal.settings import MAX_BAR_LIMIT

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
