"""Per-horizon scoring, consensus, state, trade plan and determinism of the pure model."""

from __future__ import annotations

from decimal import Decimal

import pytest
from signal_testkit import sequence

from tradebus.events import BarEvent, BarSource, Direction, SignalState, make_bar
from tradebus.timeframes import Interval, bucket_start, interval_ms
from tradebus_signal.engine import SignalEngine, signal_from_bars
from tradebus_signal.params import ModelParams
from tradebus_signal.plan import trade_plan
from tradebus_signal.scoring import ConsensusScore, consensus, horizon_weight, score_horizon, state_of
from tradebus_signal.series import Applied, HorizonView, Series

PARAMS = ModelParams()
T0 = 1_700_000_100_000 - 1_700_000_100_000 % 300_000


def _trend_bars(n: int, interval: Interval = "5m", step: str = "1", *, complete: bool = True) -> list:
    bars = []
    price = Decimal(100)
    for i in range(n):
        close = price + Decimal(step)
        bars.append(
            make_bar(
                "BTCUSDT",
                interval,
                bucket_start(T0, interval) + i * interval_ms(interval),
                price,
                max(price, close) + Decimal("0.5"),
                min(price, close) - Decimal("0.5"),
                close,
                Decimal(1),
                Decimal(100),
                1,
                BarSource.AGGREGATED,
                complete=complete,
            )
        )
        price = close
    return bars


def _view(bars: list) -> HorizonView:
    series = Series(bars[0].interval, PARAMS, 1000)
    series.load(bars)
    return series.view()


def test_steady_uptrend_is_long_with_full_quality() -> None:
    score = score_horizon(_view(_trend_bars(60)), PARAMS)
    assert score.direction is Direction.LONG
    assert score.quality == 1.0
    assert 0 < score.strength <= 1 and 0 < score.confidence <= 1
    assert "low_data_quality" not in score.tags
    assert "trend_up" in score.tags


def test_downtrend_is_short() -> None:
    score = score_horizon(_view(_trend_bars(60, step="-0.5")), PARAMS)
    assert score.direction is Direction.SHORT
    assert "trend_down" in score.tags


def test_few_bars_are_penalised_and_tagged() -> None:
    full = score_horizon(_view(_trend_bars(60)), PARAMS)
    short = score_horizon(_view(_trend_bars(20)), PARAMS)
    assert short.quality == pytest.approx(20 / PARAMS.warmup)
    assert short.confidence < full.confidence
    assert "low_data_quality" in short.tags


def test_incomplete_bars_are_penalised_but_used() -> None:
    score = score_horizon(_view(_trend_bars(60, complete=False)), PARAMS)
    assert score.quality == pytest.approx(1 - PARAMS.incomplete_penalty)
    assert score.direction is Direction.LONG
    assert "low_data_quality" in score.tags


def test_empty_horizon_is_flat_with_zero_confidence() -> None:
    score = score_horizon(HorizonView("4h", 0, 0, {}), PARAMS)
    assert (score.direction, score.confidence, score.quality) == (Direction.FLAT, 0.0, 0.0)


def test_consensus_weights_longer_horizons_more() -> None:
    assert horizon_weight("5m") < horizon_weight("15m") < horizon_weight("1h") < horizon_weight("4h")
    up = score_horizon(_view(_trend_bars(60, "15m")), PARAMS)
    down_5m = score_horizon(_view(_trend_bars(60, step="-1")), PARAMS)
    up_1h = score_horizon(_view(_trend_bars(60, "1h")), PARAMS)
    agreed = consensus([down_5m, up, up_1h], PARAMS)
    assert agreed.direction is Direction.LONG
    expected = (horizon_weight("15m") + horizon_weight("1h")) / sum(horizon_weight(h) for h in ("5m", "15m", "1h"))
    assert agreed.agreement == pytest.approx(expected)
    assert 0 < agreed.confidence < 1


@pytest.mark.parametrize(
    ("score", "agreement", "state"),
    [
        (0.6, 1.0, SignalState.STRONG_BUY),
        (0.6, 0.5, SignalState.BUY),
        (0.2, 1.0, SignalState.BUY),
        (0.05, 1.0, SignalState.NEUTRAL),
        (-0.2, 1.0, SignalState.SELL),
        (-0.6, 0.9, SignalState.STRONG_SELL),
    ],
)
def test_state_thresholds(score: float, agreement: float, state: SignalState) -> None:
    direction = Direction.LONG if score >= 0.15 else Direction.SHORT if score <= -0.15 else Direction.FLAT
    assert state_of(ConsensusScore(score, direction, 0.5, agreement), PARAMS) is state


def test_long_plan_geometry_on_the_tick_and_its_risk_reward() -> None:
    entry, atr = Decimal("100.10"), Decimal("0.7")
    plan = trade_plan(Direction.LONG, entry, atr, [], PARAMS)
    assert plan is not None and not plan.swing_target
    p = plan.plan
    assert p.stop == entry - 2 * atr < entry
    assert p.targets == [entry + Decimal("1.5") * 2 * atr, entry + Decimal("2.5") * 2 * atr]
    assert p.risk_reward == (p.targets[0] - entry) / (entry - p.stop) == Decimal("1.5")
    assert str(p.risk_reward) == "1.5000"


def test_levels_are_rounded_to_the_entrys_tick_and_never_onto_it() -> None:
    """A trader reads (and an exchange takes) prices on the tick: 33568.45, not 33568.45472040090.
    The ratio stays the model's, so a minimum of 1.5 passes a 1.5 multiple."""
    entry, atr = Decimal("33568.45"), Decimal("123.4567891")
    p = trade_plan(Direction.LONG, entry, atr, [], PARAMS).plan  # type: ignore[union-attr]
    assert (p.stop, p.targets) == (Decimal("33321.54"), [Decimal("33938.82"), Decimal("34185.73")])
    assert p.risk_reward == Decimal("1.5000") >= Decimal("1.5")
    tiny = trade_plan(Direction.SHORT, Decimal("0.00002345"), Decimal("0.000000001"), [], PARAMS).plan  # type: ignore[union-attr]
    assert tiny.stop == Decimal("0.00002346") and tiny.targets == [Decimal("0.00002344")]  # one tick off, merged


def test_short_plan_has_stop_above_entry() -> None:
    plan = trade_plan(Direction.SHORT, Decimal(100), Decimal(1), [], PARAMS)
    assert plan is not None
    assert plan.plan.stop == Decimal(102) > Decimal(100) > plan.plan.targets[0] == Decimal(97)
    assert plan.plan.risk_reward == Decimal("1.5")


def test_plan_prefers_swing_high_within_reach() -> None:
    bars = _trend_bars(5, step="0")
    swing = bars[2].model_copy(update={"high": Decimal("104.2")})
    recent = [*bars[:2], swing, *bars[3:]]
    entry, atr = Decimal(100), Decimal(1)  # stop 98, targets 103 / 105, reach 106
    plan = trade_plan(Direction.LONG, entry, atr, recent, PARAMS)
    assert plan is not None and plan.swing_target
    assert plan.plan.targets == [Decimal("104.2"), Decimal(105)]
    assert plan.plan.risk_reward == (Decimal("104.2") - entry) / (entry - plan.plan.stop) == Decimal("2.1")
    beyond = [*bars[:2], swing.model_copy(update={"high": Decimal("107")}), *bars[3:]]
    far = trade_plan(Direction.LONG, entry, atr, beyond, PARAMS)
    assert far is not None and not far.swing_target and far.plan.targets[0] == Decimal(103)


def test_no_plan_without_atr_or_when_flat() -> None:
    assert trade_plan(Direction.LONG, Decimal(100), Decimal(0), [], PARAMS) is None
    assert trade_plan(Direction.FLAT, Decimal(100), Decimal(1), [], PARAMS) is None


def _events(bars: list) -> list[BarEvent]:
    return [BarEvent.of(b, source="aggregator", trace_id=f"trace-{b.interval}-{b.open_ms}") for b in bars]


def test_engine_emits_one_signal_per_base_bar_deterministically() -> None:
    bars = sequence()
    runs = []
    for _ in range(2):
        engine = SignalEngine(("5m", "15m", "1h"), PARAMS, 1000)
        runs.append(engine.apply(_events(bars)).signals)
    base = [b for b in bars if b.interval == "5m"]
    assert [s.event_id for s in runs[0]] == [f"signal:ETHUSDT:5m:{b.open_ms}" for b in base]
    assert [s.data for s in runs[0]] == [s.data for s in runs[1]]
    assert [s.trace_id for s in runs[0]] == [f"trace-5m-{b.open_ms}" for b in base]
    assert {s.data.state for s in runs[0]} >= {SignalState.NEUTRAL, SignalState.BUY}
    for s in runs[0]:
        signal = s.data
        assert signal.price == base[[b.open_time for b in base].index(signal.bar_time)].close
        assert signal.model.version == "consensus-v1" and signal.model.hash == PARAMS.model_hash
        assert signal.features and signal.explanation
        assert (signal.plan is None) == (signal.state is SignalState.NEUTRAL)
        if signal.plan is not None and signal.direction is Direction.LONG:
            assert signal.plan.stop < signal.plan.entry < signal.plan.targets[0]
    first = runs[0][0].data
    assert "low_data_quality" in first.rationale and first.state is SignalState.NEUTRAL


def test_engine_signal_equals_on_demand_signal_from_the_same_bars() -> None:
    bars = sequence()
    engine = SignalEngine(("5m", "15m", "1h"), PARAMS, 1000)
    live = engine.apply(_events(bars)).signals[-1].data
    by_interval = {h: [b for b in bars if b.interval == h] for h in ("5m", "15m", "1h")}
    on_demand = signal_from_bars(by_interval["5m"], by_interval, ("5m", "15m", "1h"), PARAMS)
    assert on_demand == live


def test_revision_replaces_the_bar_and_rebuilds() -> None:
    bars = _trend_bars(40)
    series = Series("5m", PARAMS, 1000)
    for b in bars:
        assert series.apply(b) is Applied.APPENDED
    assert series.apply(bars[-3]) is Applied.IGNORED
    revised = bars[-3].model_copy(update={"close": Decimal("90"), "low": Decimal("89"), "revision": 1})
    assert series.apply(revised) is Applied.REVISED
    fresh = Series("5m", PARAMS, 1000)
    fresh.load([*bars[:-3], revised, *bars[-2:]])
    assert series.view() == fresh.view()


def test_model_hash_changes_with_any_parameter() -> None:
    assert ModelParams().model_hash == PARAMS.model_hash
    assert ModelParams(stop_atr_multiple=Decimal("2.5")).model_hash != PARAMS.model_hash
    assert ModelParams(rsi=10).model_hash != PARAMS.model_hash
