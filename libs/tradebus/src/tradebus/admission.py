"""Admission at the door: what a consumer checks of a message before its handler sees it.

An event model's validators hold the facts an event has on its own (a bar's low <= open, close <=
high, its open time aligned to its interval; a plan's stop and targets on either side of its
entry). What depends on where and when the event arrives is checked here, with the service's
settings: the message's size (before decoding), the envelope's schema version and event type,
the symbol (one the stack is configured for) and the event's times (plausible for its mode).
A refused message goes to `dlq.<service>` with the `Refusal`'s reason; nothing of it is stored.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import orjson
from pydantic import BaseModel

from tradebus.events import Envelope, Mode
from tradebus.settings import DEFAULT_MAX_MESSAGE_BYTES, Settings

E = TypeVar("E", bound=Envelope)

EARLIEST: Final = datetime(2009, 1, 3, tzinfo=UTC)
"""The first Bitcoin block: no crypto market event happened before it."""

MARKET_TIMES: Final = ("open_time", "bar_time", "exit_time", "submitted_at", "filled_at")
"""Fields that say when something happened on the market: near now for a live event."""
OTHER_TIMES: Final = ("entry_time", "started_at", "detected_at", "updated_at")
"""Times that may lie long before a live event (a position held for months, a service up for
weeks): only plausible (after `EARLIEST`, not in the future)."""


DLQ_REASONS: Final = (
    "too_large", "malformed", "event_type", "event_time", "symbol", "schema_version", "handler_error", "refused",
)  # fmt: skip
"""Why the shared consumer dead-letters a message: its admission's refusals, then a handler that
failed `MAX_ATTEMPTS` times (`handler_error`) or a publish the server refused (`refused`). A
service's own screen adds its reasons (`BatchConsumer(screen_reasons=...)`)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message is not admitted: a stable `reason` (the DLQ metric's label) and a detail."""

    reason: str
    detail: str


Screen = Callable[[Sequence[E]], Awaitable[Sequence[Refusal | None]]]
"""A service's own admission of a decoded chunk, with its state (the aggregator refuses a bar
that contradicts one it stored): one `Refusal` or None per event, in order."""


def _utc_now() -> datetime:
    return datetime.now(tz=UTC)


@functools.cache
def _time_fields(model: type[BaseModel]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    names = model.model_fields
    return tuple(n for n in MARKET_TIMES if n in names), tuple(n for n in OTHER_TIMES if n in names)


@dataclass(frozen=True, slots=True)
class Admission:
    """The checks every consumer applies; see the module docstring. `symbols` empty admits any."""

    symbols: frozenset[str]
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    live_max_age: timedelta = timedelta(days=45)
    max_skew: timedelta = timedelta(minutes=2)
    earliest: datetime = EARLIEST
    clock: Callable[[], datetime] = field(default=_utc_now, compare=False)

    @classmethod
    def of(cls, settings: Settings) -> Admission:
        return cls(
            symbols=frozenset(settings.symbols),
            max_bytes=settings.bus_max_message_bytes,
            live_max_age=timedelta(days=settings.admission_live_max_age_days),
            max_skew=timedelta(seconds=settings.admission_max_skew_s),
        )

    def oversized(self, size: int) -> Refusal | None:
        """Checked before decoding: a message larger than any real event is refused unread."""
        if size > self.max_bytes:
            return Refusal("too_large", f"{size} bytes, more than the limit of {self.max_bytes}")
        return None

    def undecodable(self, raw: bytes, model: type[Envelope]) -> Refusal | None:
        """For a message its model refused: `schema_version` when it says it is of a version this
        consumer does not know (its fields may well differ), else None (plainly malformed)."""
        try:
            version = orjson.loads(raw).get("schema_version")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return self._version(version, model)

    def refusal(self, event: Envelope, now: datetime) -> Refusal | None:
        """Why a decoded `event` is not admitted at `now`, or None."""
        model = type(event)
        found = self._version(event.schema_version, model)
        if found is not None:
            return found
        if event.event_type != model.EVENT_TYPE:
            return Refusal("event_type", f"{event.event_type!r} where {model.EVENT_TYPE!r} is expected")
        latest = now + self.max_skew
        if not self.earliest <= event.emitted_at <= latest:
            return Refusal("event_time", f"emitted_at {event.emitted_at.isoformat()} is not plausible")
        data: Any = getattr(event, "data", None)
        if not isinstance(data, BaseModel):
            return None
        symbol = getattr(data, "symbol", None)
        if self.symbols and isinstance(symbol, str) and symbol not in self.symbols:
            return Refusal("symbol", f"{symbol} is not one of the configured symbols {sorted(self.symbols)}")
        market, other = _time_fields(type(data))
        first = now - self.live_max_age if event.mode is Mode.LIVE else self.earliest
        for name in market:
            found = self._within(name, getattr(data, name), first, latest, event.mode)
            if found is not None:
                return found
        for name in other:
            found = self._within(name, getattr(data, name), self.earliest, latest, event.mode)
            if found is not None:
                return found
        return None

    @staticmethod
    def _version(version: object, model: type[Envelope]) -> Refusal | None:
        if isinstance(version, int) and not isinstance(version, bool) and version > model.SCHEMA_VERSION:
            return Refusal("schema_version", f"version {version}; this consumer knows up to {model.SCHEMA_VERSION}")
        return None

    @staticmethod
    def _within(name: str, value: object, first: datetime, last: datetime, mode: Mode) -> Refusal | None:
        if not isinstance(value, datetime) or first <= value <= last:
            return None
        return Refusal(
            "event_time",
            f"{name} {value.isoformat()} outside [{first.isoformat()}, {last.isoformat()}] for a {mode.value} event",
        )
