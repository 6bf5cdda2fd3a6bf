"""`tradebus preflight` reads the risk settings from the environment, as the risk service does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TRADEBUS = str(Path(sys.executable).parent / "tradebus")


def _preflight(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RISK_") and k != "SYMBOLS"}
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


def test_zero_negative_and_unreadable_limits_are_findings_not_tracebacks() -> None:
    zero = _preflight(RISK_MAX_OPEN_POSITIONS="0", RISK_PER_TRADE="0.5")
    assert zero.returncode == 1 and "Traceback" not in zero.stderr
    assert "RISK_MAX_OPEN_POSITIONS" in zero.stdout and "RISK_PER_TRADE" in zero.stdout
    unreadable = _preflight(RISK_PER_TRADE="abc")
    assert unreadable.returncode == 1 and "Traceback" not in unreadable.stderr
    assert "RISK_PER_TRADE" in unreadable.stdout and "valid decimal" in unreadable.stdout
