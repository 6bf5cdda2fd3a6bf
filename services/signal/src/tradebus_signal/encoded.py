"""A signal event encoded once, from parts encoded once: the publisher and the database get the
same JSON, and a horizon's part of it is encoded when that horizon changes, not for every signal.

Encoding a signal through pydantic called a Python serializer for each of its ~160 decimals
(~135 µs a signal, a quarter of the engine's time). Here each decimal is formatted once, a higher
horizon's part is reused for every base bar until that horizon's next bar, and orjson writes
the rest. The bytes equal pydantic's `SignalEvent.model_dump_json()`; a test holds them to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import Any, Self

import orjson
from pydantic import PrivateAttr

from tradebus.events import HorizonSignal, Mode, Signal, SignalEvent


def _now_ms() -> datetime:
    """The wall clock to the millisecond, as `Envelope.build` stamps events."""
    now = datetime.now(tz=UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def amount(value: Decimal) -> str:
    """A decimal as `tradebus.events.Amount` puts it on the wire: plain notation, never `1E-8`."""
    return format(value, "f")


def plain_text(text: str) -> str:
    """`amount(Decimal(text))` for a float's `format(x, "g")` text, without the decimal: the
    same text unless it has an exponent (`1.5e-05` -> `0.000015`)."""
    return amount(Decimal(text)) if "e" in text else text


def _members(texts: Mapping[str, str]) -> str:
    """`texts` as the members of a JSON object (`"name":"1.5",…` without the braces)."""
    return orjson.dumps(texts).decode()[1:-1]


@dataclass(frozen=True, slots=True)
class EncodedHorizon:
    """One horizon's share of a signal's JSON."""

    json: orjson.Fragment
    """The `HorizonSignal` as it appears in the signal's `horizons`."""
    features: dict[str, Decimal]
    """Its features under the horizon's prefix (`5m.rsi`), as the signal's flat `features` has them."""
    members: str
    """`features` as JSON object members."""

    @classmethod
    def of(cls, signal: HorizonSignal, texts: Mapping[str, str]) -> EncodedHorizon:
        """`texts` are `amount()` of `signal.features`, in the same order (the caller has them)."""
        prefix = f"{signal.interval}."
        body = {
            "interval": signal.interval,
            "direction": signal.direction.value,
            "strength": amount(signal.strength),
            "confidence": amount(signal.confidence),
            "bars": signal.bars,
            "features": texts,
        }
        return cls(
            json=orjson.Fragment(orjson.dumps(body)),
            features={prefix + name: value for name, value in signal.features.items()},
            members=_members({prefix + name: text for name, text in texts.items()}),
        )


def _features_json(features: Mapping[str, Decimal], horizons: Sequence[EncodedHorizon]) -> orjson.Fragment:
    """`features` begin with the horizons' own, in order; only the signal's own are encoded here."""
    known = sum(len(h.features) for h in horizons)
    own = {name: amount(value) for name, value in islice(features.items(), known, None)}
    parts = [h.members for h in horizons if h.members]
    if own:
        parts.append(_members(own))
    return orjson.Fragment("{" + ",".join(parts) + "}")


def _signal_body(s: Signal, horizons: Sequence[EncodedHorizon]) -> dict[str, Any]:
    """`Signal`'s fields in declaration order, as pydantic's JSON mode writes them."""
    plan = s.plan
    c = s.consensus
    return {
        "symbol": s.symbol,
        "interval": s.interval,
        "bar_time": s.bar_time,
        "price": amount(s.price),
        "state": s.state.value,
        "direction": s.direction.value,
        "confidence": amount(s.confidence),
        "horizons": [h.json for h in horizons],
        "consensus": {
            "consensus_direction": c.consensus_direction.value,
            "consensus_confidence": amount(c.consensus_confidence),
            "agreement_score": amount(c.agreement_score),
        },
        "plan": None
        if plan is None
        else {
            "entry": amount(plan.entry),
            "stop": amount(plan.stop),
            "targets": [amount(t) for t in plan.targets],
            "risk_reward": amount(plan.risk_reward),
        },
        "rationale": s.rationale,
        "explanation": s.explanation,
        "model": {"version": s.model.version, "hash": s.model.hash},
        "features": _features_json(s.features, horizons),
    }


class EncodedSignalEvent(SignalEvent):
    """`model_dump_json()` without options, which the publisher's `encode` and the repository's
    row both call, returns the JSON made when the event was built (or, for an event made any
    other way, computed on first use and kept); any option encodes afresh through pydantic."""

    _json: str | None = PrivateAttr(default=None)

    @classmethod
    def encoded(
        cls,
        *,
        event_id: str,
        source: str,
        trace_id: str,
        mode: Mode,
        data: Signal,
        horizons: Sequence[EncodedHorizon],
    ) -> EncodedSignalEvent:
        """The event of `data`, whose `horizons` are these, in order, and whose flat features are
        theirs followed by its own; built, like `data`, without validation (all of it is ours)."""
        event = cls.model_construct(
            event_id=event_id,
            event_type=cls.EVENT_TYPE,
            schema_version=cls.SCHEMA_VERSION,
            source=source,
            emitted_at=_now_ms(),
            trace_id=trace_id,
            mode=mode,
            data=data,
        )
        envelope = {
            "event_id": event.event_id,
            "event_type": event.event_type,
            "schema_version": event.schema_version,
            "source": event.source,
            "emitted_at": event.emitted_at,
            "trace_id": event.trace_id,
            "mode": event.mode.value,
            "data": _signal_body(data, horizons),
        }
        event._json = orjson.dumps(envelope, option=orjson.OPT_UTC_Z).decode()
        return event

    def model_dump_json(self, **options: Any) -> str:
        if options:
            return super().model_dump_json(**options)
        if self._json is None:
            self._json = super().model_dump_json()
        return self._json

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy encodes afresh: `update` may have changed what the kept JSON says."""
        copy = super().model_copy(update=update, deep=deep)
        copy._json = None
        return copy
