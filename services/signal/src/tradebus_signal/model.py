"""The signal model: horizon views in, one `tradebus.events.Signal` out (pure, deterministic)."""

from __future__ import annotations

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
from tradebus_signal.explain import explanation
from tradebus_signal.params import MODEL_VERSION, ModelParams
from tradebus_signal.plan import trade_plan
from tradebus_signal.scoring import ConsensusScore, HorizonScore, consensus, score_horizon, state_of
from tradebus_signal.series import HorizonView

_UNIT = Decimal("0.0001")


def to_decimal(value: float) -> Decimal:
    """A feature as a decimal with 12 significant digits: stable text, no binary noise."""
    return Decimal(format(value, ".12g"))


def unit(value: float) -> Decimal:
    """A score in [0, 1] with four decimals."""
    return Decimal(format(max(0.0, min(1.0, value)), ".4f")).quantize(_UNIT)


@dataclass(frozen=True, slots=True)
class ScoredHorizon:
    """One horizon's share of a signal. It changes only when that horizon's series does, so
    the engine keeps it until then instead of rescoring every horizon on every base bar."""

    score: HorizonScore
    signal: HorizonSignal
    features: dict[str, Decimal]
    """`signal.features` under the horizon's prefix, as the signal's flat `features` has them."""


def scored(view: HorizonView, params: ModelParams) -> ScoredHorizon:
    score = score_horizon(view, params)
    signal = _horizon_signal(score)
    prefix = f"{signal.interval}."
    return ScoredHorizon(score, signal, {prefix + name: value for name, value in signal.features.items()})


def _horizon_signal(h: HorizonScore) -> HorizonSignal:
    features = {name: to_decimal(v) for name, v in sorted(h.view.features.items())}
    features |= {f"component.{n}": to_decimal(v) for n, v in sorted(h.components.items())}
    features |= {"score": to_decimal(h.score), "quality": to_decimal(h.quality)}
    return HorizonSignal(
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
        features |= h.features
    features["consensus.score"] = to_decimal(agreed.score)
    signal = Signal(
        symbol=trigger.symbol,
        interval=trigger.interval,
        bar_time=trigger.open_time,
        price=trigger.close,
        state=state,
        direction=agreed.direction if state is not SignalState.NEUTRAL else Direction.FLAT,
        confidence=unit(agreed.confidence),
        horizons=[h.signal for h in horizons],
        consensus=Consensus(
            consensus_direction=agreed.direction,
            consensus_confidence=unit(agreed.confidence),
            agreement_score=unit(agreed.agreement),
        ),
        plan=plan.plan if plan else None,
        rationale=rationale,
        model=ModelInfo(version=MODEL_VERSION, hash=params.model_hash),
        features=features,
    )
    return signal.model_copy(update={"explanation": explanation(signal)}) if explain else signal
