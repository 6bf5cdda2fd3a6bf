"""Preflight validation of the risk configuration (R-4.1), before the service starts.

Pure: limits and the symbol list in, findings out. A critical finding refuses the start (the
service exits listing every problem); a warning is logged and the service runs. Each limit is
reported once, at its worst severity. `tradebus preflight` can call `check` as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from tradebus_risk.limits import RiskLimits

Severity = Literal["critical", "warning"]

CRITICAL_DRAWDOWN: Final = Decimal("0.30")
WARN_DRAWDOWN: Final = Decimal("0.25")
CRITICAL_POSITION: Final = Decimal("0.50")
WARN_POSITION: Final = Decimal("0.20")
CRITICAL_DAILY_LOSS: Final = Decimal("0.10")
WARN_SYMBOLS: Final = 15
WARN_BALANCE: Final = Decimal(1000)
WARN_RISK_REWARD: Final = Decimal("1.5")


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    setting: str
    """The environment variable to change."""
    message: str

    def __str__(self) -> str:
        return f"{self.severity.upper()} {self.setting}: {self.message}"


class PreflightFailed(Exception):
    """The configuration has critical findings; the service must not start."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        lines = "\n".join(f"  - {f}" for f in self.findings)
        super().__init__(f"risk configuration refused by preflight:\n{lines}")


def check(limits: RiskLimits, symbols: Sequence[str]) -> list[Finding]:
    """Every finding on the configuration, critical ones first."""
    found = [
        _threshold("RISK_MAX_DRAWDOWN_PCT", "max drawdown", limits.max_drawdown_pct, CRITICAL_DRAWDOWN, WARN_DRAWDOWN),
        _threshold("RISK_MAX_POSITION_PCT", "position size", limits.max_position_pct, CRITICAL_POSITION, WARN_POSITION),
        _threshold("RISK_MAX_DAILY_LOSS_PCT", "max daily loss", limits.max_daily_loss_pct, CRITICAL_DAILY_LOSS, None),
    ]
    if len(symbols) > WARN_SYMBOLS:
        found.append(Finding("warning", "SYMBOLS", f"{len(symbols)} symbols, more than {WARN_SYMBOLS}"))
    if limits.initial_balance < WARN_BALANCE:
        found.append(
            Finding("warning", "RISK_INITIAL_BALANCE", f"initial balance {limits.initial_balance} below {WARN_BALANCE}")
        )
    if limits.min_rr < WARN_RISK_REWARD:
        found.append(Finding("warning", "RISK_MIN_RR", f"minimum risk/reward {limits.min_rr} below {WARN_RISK_REWARD}"))
    findings = [f for f in found if f is not None]
    return sorted(findings, key=lambda f: f.severity != "critical")


def enforce(limits: RiskLimits, symbols: Sequence[str]) -> list[Finding]:
    """The warnings, or `PreflightFailed` listing every finding when any is critical."""
    findings = check(limits, symbols)
    if any(f.severity == "critical" for f in findings):
        raise PreflightFailed(findings)
    return findings


def _threshold(setting: str, what: str, value: Decimal, critical: Decimal, warning: Decimal | None) -> Finding | None:
    if value > critical:
        return Finding("critical", setting, f"{what} {value:%} above {critical:%}")
    if warning is not None and value > warning:
        return Finding("warning", setting, f"{what} {value:%} above {warning:%}")
    return None
