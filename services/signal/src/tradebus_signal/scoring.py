"""Per-horizon direction, strength and confidence, the cross-horizon consensus and the state.

Scores are floats in [-1, 1] (positive = long); the model turns them into `Decimal` in [0, 1]
only at its edge. Every function here is pure and deterministic.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from tradebus.events import Direction, SignalState
from tradebus.timeframes import minutes_in
from tradebus_signal.params import ModelParams
from tradebus_signal.series import HorizonView


def _clamp(x: float, low: float = -1.0, high: float = 1.0) -> float:
    return max(low, min(high, x))


@dataclass(frozen=True, slots=True)
class HorizonScore:
    view: HorizonView
    components: dict[str, float]
    """trend, momentum, rsi, bollinger in [-1, 1]; absent when the inputs are not there yet."""
    score: float
    direction: Direction
    strength: float
    confidence: float
    quality: float
    tags: tuple[str, ...]


def components(view: HorizonView, params: ModelParams) -> dict[str, float]:
    """Each component in [-1, 1]: trend and momentum scaled by ATR so horizons compare."""
    f = view.features
    out: dict[str, float] = {}
    atr = f.get("atr", 0.0)
    if atr > 0.0:
        if "ema_fast" in f and "ema_slow" in f:
            out["trend"] = math.tanh((f["ema_fast"] - f["ema_slow"]) / (params.trend_scale * atr))
        if "macd_hist" in f:
            out["momentum"] = math.tanh(f["macd_hist"] / (params.momentum_scale * atr))
    if "rsi" in f:
        out["rsi"] = _clamp((f["rsi"] - 50.0) / params.rsi_span)
    if "bb_upper" in f and f["bb_upper"] > f["bb_middle"]:
        out["bollinger"] = _clamp((f["close"] - f["bb_middle"]) / (f["bb_upper"] - f["bb_middle"]))
    return out


def quality(view: HorizonView, params: ModelParams) -> float:
    """1 with a full warm-up of complete bars; less with fewer bars or missing minutes."""
    if view.bars == 0:
        return 0.0
    coverage = min(1.0, view.bars / params.warmup)
    incomplete_share = view.incomplete / min(view.bars, params.warmup)
    return coverage * (1.0 - params.incomplete_penalty * incomplete_share)


def _direction(score: float, threshold: float) -> Direction:
    if score >= threshold:
        return Direction.LONG
    if score <= -threshold:
        return Direction.SHORT
    return Direction.FLAT


def _tags(view: HorizonView, comps: dict[str, float], params: ModelParams, q: float) -> tuple[str, ...]:
    f = view.features
    tags: list[str] = []
    if "trend" in comps:
        tags.append("trend_up" if comps["trend"] > 0 else "trend_down")
    if "macd_hist" in f:
        tags.append("macd_bullish" if f["macd_hist"] > 0 else "macd_bearish")
    if "rsi" in f and f["rsi"] >= params.rsi_overbought:
        tags.append("rsi_overbought")
    if "rsi" in f and f["rsi"] <= params.rsi_oversold:
        tags.append("rsi_oversold")
    if "bb_upper" in f and f["close"] > f["bb_upper"]:
        tags.append("above_upper_band")
    if "bb_lower" in f and f["close"] < f["bb_lower"]:
        tags.append("below_lower_band")
    if q < 1.0:
        tags.append("low_data_quality")
    return tuple(tags)


def score_horizon(view: HorizonView, params: ModelParams) -> HorizonScore:
    """Weighted components give the score; confidence blends its size with how many components
    agree with the direction, scaled down by the data-quality factor."""
    weights = {
        "trend": params.weight_trend,
        "momentum": params.weight_momentum,
        "rsi": params.weight_rsi,
        "bollinger": params.weight_bollinger,
    }
    total = sum(weights.values())
    comps = components(view, params)
    score = sum(weights[name] * value for name, value in comps.items()) / total
    direction = _direction(score, params.direction_threshold)
    if direction is Direction.FLAT:
        agreeing = sum(weights[n] for n, v in comps.items() if abs(v) < params.direction_threshold)
    else:
        sign = 1.0 if direction is Direction.LONG else -1.0
        agreeing = sum(weights[n] for n, v in comps.items() if v * sign > 0)
    q = quality(view, params)
    strength = abs(score)
    confidence = q * (strength + agreeing / total) / 2.0
    return HorizonScore(view, comps, score, direction, strength, confidence, q, _tags(view, comps, params, q))


@functools.cache
def horizon_weight(interval: str) -> float:
    """Longer horizons weigh more: log2 of the horizon's minutes (5m 2.3, 1h 5.9, 1d 10.5).
    Kept per interval: the consensus asks for every horizon's weight on every signal."""
    return math.log2(minutes_in(interval))


@dataclass(frozen=True, slots=True)
class ConsensusScore:
    score: float
    direction: Direction
    confidence: float
    agreement: float


def consensus(scores: list[HorizonScore], params: ModelParams) -> ConsensusScore:
    """Quality-weighted mean score; agreement is the weight share of horizons on its side."""
    weights = [horizon_weight(s.view.interval) for s in scores]
    total = sum(weights)
    score = sum(w * s.quality * s.score for w, s in zip(weights, scores, strict=True)) / total
    direction = _direction(score, params.buy_threshold)
    agreeing = [(w, s) for w, s in zip(weights, scores, strict=True) if s.direction is direction]
    agreement = sum(w for w, _ in agreeing) / total
    confidence = sum(w * s.confidence for w, s in agreeing) / total
    return ConsensusScore(score, direction, confidence, agreement)


def state_of(c: ConsensusScore, params: ModelParams) -> SignalState:
    strong = abs(c.score) >= params.strong_threshold and c.agreement >= params.strong_agreement
    if c.direction is Direction.LONG:
        return SignalState.STRONG_BUY if strong else SignalState.BUY
    if c.direction is Direction.SHORT:
        return SignalState.STRONG_SELL if strong else SignalState.SELL
    return SignalState.NEUTRAL
