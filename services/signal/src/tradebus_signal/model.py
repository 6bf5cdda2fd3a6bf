"""The signal model: horizon views in, one `tradebus.events.Signal` out (pure, deterministic)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tradebus.events import (
    Bar,
    Consensus,
    Direction,
    HorizonSignal,
    ModelInfo,
    Signal,
    SignalState,
)
from tradebus_signal.encoded import EncodedHorizon, plain_text
from tradebus_signal.explain import explanation, horizon_line
from tradebus_signal.params import MODEL_VERSION, ModelParams
from tradebus_signal.plan import trade_plan
from tradebus_signal.scoring import ConsensusScore, HorizonScore, consensus, score_horizon, state_of
from tradebus_signal.series import HorizonView

_UNIT = Decimal("0.0001")


def _text(value: float) -> str:
    """A feature with 12 significant digits: stable text, no binary noise. Refused when not
    finite: the signal's models are built without validation, which used to catch that."""
    if not math.isfinite(value):
        raise ValueError(f"feature value {value} is not finite")
    return format(value, ".12g")


def to_decimal(value: float) -> Decimal:
    """A feature as a decimal with 12 significant digits."""
    return Decimal(_text(value))


def unit(value: float) -> Decimal:
    """A score in [0, 1] with four decimals."""
    return Decimal(format(max(0.0, min(1.0, value)), ".4f")).quantize(_UNIT)


@dataclass(frozen=True, slots=True)
class ScoredHorizon:
    """One horizon's share of a signal: score, signal, JSON and explanation line. It changes
    only when that horizon's series does, so the engine keeps it until then instead of
    rescoring (and re-encoding) every horizon on every base bar."""

    score: HorizonScore
    signal: HorizonSignal
    encoded: EncodedHorizon
    line: str
    """The horizon's line of the signal's explanation."""


def scored(view: HorizonView, params: ModelParams) -> ScoredHorizon:
    score = score_horizon(view, params)
    features: dict[str, Decimal] = {}
    texts: dict[str, str] = {}
    for name, value in _features(score):
        text = _text(value)
        features[name] = Decimal(text)
        texts[name] = plain_text(text)
    signal = _horizon_signal(score, features)
    return ScoredHorizon(score, signal, EncodedHorizon.of(signal, texts), horizon_line(signal, score.tags))


def _features(h: HorizonScore) -> list[tuple[str, float]]:
    """The horizon's features in the signal's order: indicators, components, score, quality."""
    components = [(f"component.{name}", v) for name, v in sorted(h.components.items())]
    return [*sorted(h.view.features.items()), *components, ("score", h.score), ("quality", h.quality)]


def _horizon_signal(h: HorizonScore, features: dict[str, Decimal]) -> HorizonSignal:
    """Built without validation (`model_construct`), as every signal model here: the values
    are made to fit (symbols and intervals come from validated bars, scores through `unit`)."""
    return HorizonSignal.model_construct(
        interval=h.view.interval,
        direction=h.direction,
        strength=unit(h.strength),
        confidence=unit(h.confidence),
        bars=h.view.bars,
        features=features,
    )


def _rationale(scores: Sequence[HorizonScore], agreement: float) -> list[str]:
    tags = [f"{h.view.interval}:{t}" for h in scores for t in h.tags if t != "low_data_quality"]
    if any("low_data_quality" in h.tags for h in scores):
        tags.append("low_data_quality")
    if len(scores) > 1 and agreement >= 1.0:
        tags.append("horizons_aligned")
    elif agreement < 0.5:
        tags.append("horizons_mixed")
    return tags


def decide(
    trigger: Bar,
    views: Sequence[HorizonView],
    recent: Sequence[Bar],
    params: ModelParams,
    *,
    explain: bool = True,
) -> Signal:
    """The signal for the close of `trigger` (the base horizon's bar, `views[0]`); `recent` are
    the base bars up to and including it, for swing levels."""
    return decide_scored(trigger, [scored(v, params) for v in views], recent, params, explain=explain)


def decide_scored(
    trigger: Bar,
    horizons: Sequence[ScoredHorizon],
    recent: Sequence[Bar],
    params: ModelParams,
    *,
    explain: bool = True,
) -> Signal:
    """`decide` from already scored horizons."""
    scores = [h.score for h in horizons]
    agreed: ConsensusScore = consensus(scores, params)
    state = state_of(agreed, params)
    rationale = _rationale(scores, agreed.agreement)
    atr = scores[0].view.features.get("atr")
    plan = None
    if state is not SignalState.NEUTRAL:
        plan = trade_plan(agreed.direction, trigger.close, to_decimal(atr) if atr else Decimal(0), recent, params)
        if plan is None:
            state = SignalState.NEUTRAL
            rationale.append("no_plan")
        elif plan.swing_target:
            rationale.append("swing_target")
    features: dict[str, Decimal] = {}
    for h in horizons:
        features |= h.encoded.features
    features["consensus.score"] = to_decimal(agreed.score)
    confidence = unit(agreed.confidence)
    signal = Signal.model_construct(
        symbol=trigger.symbol,
        interval=trigger.interval,
        bar_time=trigger.open_time,
        price=trigger.close,
        state=state,
        direction=agreed.direction if state is not SignalState.NEUTRAL else Direction.FLAT,
        confidence=confidence,
        horizons=[h.signal for h in horizons],
        consensus=Consensus.model_construct(
            consensus_direction=agreed.direction,
            consensus_confidence=confidence,
            agreement_score=unit(agreed.agreement),
        ),
        plan=plan.plan if plan else None,
        rationale=rationale,
        model=_model_info(params.model_hash),
        features=features,
    )
    if not explain:
        return signal
    return signal.model_copy(update={"explanation": explanation(signal, [h.line for h in horizons])})


@functools.cache
def _model_info(model_hash: str) -> ModelInfo:
    """One per parameter set, shared by its signals (it is frozen)."""
    return ModelInfo(version=MODEL_VERSION, hash=model_hash)
