"""`tradebus preflight` reads the risk settings from the environment, as the risk service does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TRADEBUS = str(Path(sys.executable).parent / "tradebus")


def _preflight(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RISK_", "TRADEBUS_")) and k != "SYMBOLS"}
    cmd = [TRADEBUS, "preflight"]
    return subprocess.run(cmd, check=False, env={**clean, "COLUMNS": "200", **env}, capture_output=True, text=True)


def test_defaults_pass() -> None:
    result = _preflight()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passes" in result.stdout


def test_critical_limits_fail_and_warnings_do_not() -> None:
    critical = _preflight(RISK_MAX_DRAWDOWN_PCT="0.35", RISK_MAX_POSITION_PCT="0.6")
    assert critical.returncode == 1
    assert "RISK_MAX_DRAWDOWN_PCT" in critical.stdout and "RISK_MAX_POSITION_PCT" in critical.stdout
    assert "refuse" in critical.stdout
    warning = _preflight(RISK_INITIAL_BALANCE="500")
    assert warning.returncode == 0
    assert "RISK_INITIAL_BALANCE" in warning.stdout and "warning" in warning.stdout


def test_shows_the_effective_configuration_and_where_each_value_came_from() -> None:
    result = _preflight(RISK_PER_TRADE="0.02")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") == 4}
    assert "0.02 (2.00% of equity)" in rows["RISK_PER_TRADE"] and "environment" in rows["RISK_PER_TRADE"]
    assert "0.2 (20.00% of equity)" in rows["RISK_MAX_DRAWDOWN_PCT"] and "default" in rows["RISK_MAX_DRAWDOWN_PCT"]
    assert "BTCUSDT,ETHUSDT" in rows["SYMBOLS"]


def test_warns_about_variables_nothing_reads() -> None:
    result = _preflight(RISK_MAX_DRAWDOWN_PTC="5", TRADEBUS_RISKK_PORT="1", TRADEBUS_RISK_PORT="18084")
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: RISK_MAX_DRAWDOWN_PTC is set but nothing reads it; did you mean RISK_MAX_DRAWDOWN_PCT?",
        "warning: TRADEBUS_RISKK_PORT is set but nothing reads it; did you mean TRADEBUS_RISK_PORT?",
    ]


def test_every_tradebus_variable_the_code_reads_is_known() -> None:
    """A TRADEBUS_* variable added to the code but not to TRADEBUS_VARIABLES would make preflight
    warn that nothing reads it."""
    from tradebus.settings import TRADEBUS_VARIABLES

    repo = Path(__file__).resolve().parents[3]
    sources = [
        *repo.glob("libs/*/src/**/*.py"),
        *repo.glob("services/*/src/**/*.py"),
        *repo.glob("deploy/**/*.yml"),
        repo / "docker-compose.yml",
        repo / "Makefile",
    ]
    named = {m for path in sources for m in re.findall(r"TRADEBUS_[A-Z0-9_]*[A-Z0-9]", path.read_text())}
    assert named - {"TRADEBUS_VARIABLES"} <= TRADEBUS_VARIABLES, sorted(named - TRADEBUS_VARIABLES)


def test_zero_negative_and_unreadable_limits_are_findings_not_tracebacks() -> None:
    zero = _preflight(RISK_MAX_OPEN_POSITIONS="0", RISK_PER_TRADE="0.5")
    assert zero.returncode == 1 and "Traceback" not in zero.stderr
    assert "RISK_MAX_OPEN_POSITIONS" in zero.stdout and "RISK_PER_TRADE" in zero.stdout
    unreadable = _preflight(RISK_PER_TRADE="abc")
    assert unreadable.returncode == 2 and "Traceback" not in unreadable.stderr  # a usage error (main)
    said = unreadable.stdout + unreadable.stderr
    assert "RISK_PER_TRADE" in said and "valid decimal" in said
