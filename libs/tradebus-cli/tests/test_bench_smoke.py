"""`tradebus bench --smoke` runs every benchmark at tiny sizes and writes the five required figures.

Speed is not asserted (a smoke run proves the harness and every service's bench still work);
the run brings up its own nats-server and database like `make bench` does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from tradebus_cli.bench.report import REQUIRED


def test_smoke_run_writes_the_five_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [str(Path(sys.executable).parent / "tradebus"), "bench", "--smoke", "--no-docs", "--json", str(out)],
        check=False,  # exit 1 while a service's figure (e.g. backfill) is missing; the file says what ran
        capture_output=True,
        text=True,
        timeout=120,
    )
    figures = orjson.loads(out.read_bytes())
    for key in REQUIRED:
        assert key in figures, run.stdout[-3000:]
        for field in ("value", "baseline", "ratio", "unit"):
            assert field in figures[key]
    measured = {k for k in REQUIRED if figures[k]["value"] is not None}
    assert measured >= {"replay", "latency_p99", "indicators", "resources"}, run.stdout[-3000:]
    assert figures["replay"]["value"] > 0 and figures["latency_p99"]["value"] > 0
    replay = figures["replay"]["notes"]
    # every 1m bar is stored once and delivered to aggregator, risk and telemetry; higher bars and signals add more
    assert replay["bus_published"] >= replay["bars"]
    assert replay["bus_delivered"] >= 3 * replay["bars"]
    assert 4 <= replay["bus_moves_per_bar"] <= 8
    assert figures["latency_durable_p99"]["baseline"] > 0
    live = figures["latency_p99"]["notes"]
    # the first two closes of each of the 20 symbols warm the stack up: sent, decided, not counted
    assert live["warmup_decisions"] == 2 * 20 and 0 < live["decision_n_ms"] <= live["expected_decisions"]
