"""Benchmark plumbing: ratios point the same way whatever the unit, percentiles by nearest rank."""

from __future__ import annotations

from tradebus.bench import Figure, percentile


def test_ratio_above_one_beats_the_baseline() -> None:
    faster = Figure("x", "x", value=200, baseline=100, baseline_label="raw", unit="bars/s")
    lower_latency = Figure("y", "y", value=5, baseline=10, baseline_label="raw", unit="ms", higher_is_better=False)
    assert faster.ratio == 2.0
    assert lower_latency.ratio == 2.0


def test_percentile_nearest_rank() -> None:
    samples = [float(v) for v in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
