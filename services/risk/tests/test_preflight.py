"""Preflight (R-4.1): critical findings refuse the start, warnings are only reported."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal

import pytest

from tradebus_risk.limits import RiskLimits
from tradebus_risk.preflight import PreflightFailed, check, enforce

D = Decimal
SAFE = RiskLimits()
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _settings_of(findings: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(f.severity, f.setting) for f in findings]


def test_the_defaults_pass_clean() -> None:
    assert check(SAFE, SYMBOLS) == []


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"max_drawdown_pct": D("0.31")}, "RISK_MAX_DRAWDOWN_PCT"),
        ({"max_position_pct": D("0.51")}, "RISK_MAX_POSITION_PCT"),
        ({"max_daily_loss_pct": D("0.11")}, "RISK_MAX_DAILY_LOSS_PCT"),
    ],
)
def test_critical_findings_refuse(change: dict[str, Decimal], setting: str) -> None:
    limits = replace(SAFE, **change)
    assert _settings_of(check(limits, SYMBOLS)) == [("critical", setting)]  # once, at its worst
    with pytest.raises(PreflightFailed, match=setting):
        enforce(limits, SYMBOLS)


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"max_drawdown_pct": D("0.26")}, "RISK_MAX_DRAWDOWN_PCT"),
        ({"max_position_pct": D("0.21")}, "RISK_MAX_POSITION_PCT"),
        ({"initial_balance": D("999.99")}, "RISK_INITIAL_BALANCE"),
        ({"min_rr": D("1.49")}, "RISK_MIN_RR"),
    ],
)
def test_warnings_do_not_refuse(change: dict[str, Decimal], setting: str) -> None:
    limits = replace(SAFE, **change)
    assert _settings_of(enforce(limits, SYMBOLS)) == [("warning", setting)]


def test_boundaries_are_allowed_and_symbols_counted() -> None:
    edge = replace(SAFE, max_drawdown_pct=D("0.25"), max_position_pct=D("0.2"), max_daily_loss_pct=D("0.1"))
    assert check(edge, [f"S{i}USDT" for i in range(15)]) == []
    assert _settings_of(check(edge, [f"S{i}USDT" for i in range(16)])) == [("warning", "SYMBOLS")]


def test_every_problem_listed_critical_first() -> None:
    limits = replace(SAFE, min_rr=D(1), max_drawdown_pct=D("0.5"), max_daily_loss_pct=D("0.2"))
    with pytest.raises(PreflightFailed) as failed:
        enforce(limits, SYMBOLS)
    assert _settings_of(failed.value.findings) == [
        ("critical", "RISK_MAX_DRAWDOWN_PCT"),
        ("critical", "RISK_MAX_DAILY_LOSS_PCT"),
        ("warning", "RISK_MIN_RR"),
    ]
    assert "max drawdown 50% above 30%" in str(failed.value)


def test_the_service_refuses_to_start_with_a_clear_message() -> None:
    env = {**os.environ, "RISK_MAX_DRAWDOWN_PCT": "0.4", "RISK_MAX_POSITION_PCT": "0.6"}
    done = subprocess.run(
        [sys.executable, "-m", "tradebus_risk"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 1
    assert "RISK_MAX_DRAWDOWN_PCT" in done.stderr and "RISK_MAX_POSITION_PCT" in done.stderr


@pytest.mark.parametrize(
    ("per_trade", "severity"), [(D("0.02"), None), (D("0.03"), "warning"), (D("0.051"), "critical"), (D(1), "critical")]
)
def test_risk_per_trade_has_a_documented_bound(per_trade: Decimal, severity: str | None) -> None:
    found = check(replace(SAFE, per_trade=per_trade), SYMBOLS)
    assert _settings_of(found) == ([(severity, "RISK_PER_TRADE")] if severity else [])


@pytest.mark.parametrize(
    ("change", "setting", "message"),
    [
        ({"per_trade": D("-0.01")}, "RISK_PER_TRADE", "-0.01 is not a fraction above 0 and at most 1"),
        ({"max_position_pct": D(0)}, "RISK_MAX_POSITION_PCT", "0 is not a fraction above 0 and at most 1"),
        ({"max_drawdown_pct": D("1.5")}, "RISK_MAX_DRAWDOWN_PCT", "1.5 is not a fraction above 0 and at most 1"),
        ({"max_open_positions": 0}, "RISK_MAX_OPEN_POSITIONS", "0 must be above 0"),
        ({"initial_balance": D(-5)}, "RISK_INITIAL_BALANCE", "-5 must be above 0"),
        ({"fee_rate": D("-0.001")}, "RISK_FEE_RATE", "-0.001 must not be negative"),
        ({"balances": (("USDT", D(0)),)}, "RISK_BALANCES", "USDT=0 must be above 0"),
    ],
)
def test_a_zero_or_negative_limit_is_one_critical_line(change: dict[str, object], setting: str, message: str) -> None:
    (finding,) = check(replace(SAFE, **change), SYMBOLS)  # type: ignore[arg-type]
    assert str(finding) == f"CRITICAL {setting}: {message}"


@pytest.mark.parametrize(
    ("env", "lines"),
    [
        (
            {"RISK_MAX_OPEN_POSITIONS": "0", "RISK_PER_TRADE": "-1"},
            ["CRITICAL RISK_PER_TRADE: -1 is not a fraction", "CRITICAL RISK_MAX_OPEN_POSITIONS: 0 must be above 0"],
        ),
        ({"RISK_PER_TRADE": "abc"}, ["RISK_PER_TRADE: Input should be a valid decimal"]),
        ({"RISK_BALANCES": "USDT:100"}, ["RISK_BALANCES: Value error, expected ASSET=amount like USDT=10000"]),
    ],
)
def test_the_service_refuses_a_bad_limit_without_a_traceback(env: dict[str, str], lines: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tradebus_risk"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and all(line in done.stderr for line in lines), done.stderr
