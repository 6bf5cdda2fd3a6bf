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

from pydantic import ValidationError

from tradebus_risk.limits import RiskLimits

Severity = Literal["critical", "warning"]

CRITICAL_DRAWDOWN: Final = Decimal("0.30")
WARN_DRAWDOWN: Final = Decimal("0.25")
CRITICAL_POSITION: Final = Decimal("0.50")
WARN_POSITION: Final = Decimal("0.20")
CRITICAL_DAILY_LOSS: Final = Decimal("0.10")
CRITICAL_PER_TRADE: Final = Decimal("0.05")
"""Risking more than 5 % of equity on one trade: twenty losers in a row would empty the account."""
WARN_PER_TRADE: Final = Decimal("0.02")
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
    """Every finding on the configuration, critical ones first; a limit that is out of its range
    (zero, negative, a fraction above 1) is one critical line and not checked further."""
    bad = _out_of_range(limits)
    found: list[Finding | None] = [*bad.values()]
    ranged = [
        _threshold("RISK_PER_TRADE", "risk per trade", limits.per_trade, CRITICAL_PER_TRADE, WARN_PER_TRADE),
        _threshold("RISK_MAX_DRAWDOWN_PCT", "max drawdown", limits.max_drawdown_pct, CRITICAL_DRAWDOWN, WARN_DRAWDOWN),
        _threshold("RISK_MAX_POSITION_PCT", "position size", limits.max_position_pct, CRITICAL_POSITION, WARN_POSITION),
        _threshold("RISK_MAX_DAILY_LOSS_PCT", "max daily loss", limits.max_daily_loss_pct, CRITICAL_DAILY_LOSS, None),
    ]
    found += [f for f in ranged if f is None or f.setting not in bad]
    if len(symbols) > WARN_SYMBOLS:
        found.append(Finding("warning", "SYMBOLS", f"{len(symbols)} symbols, more than {WARN_SYMBOLS}"))
    if limits.initial_balance < WARN_BALANCE and "RISK_INITIAL_BALANCE" not in bad:
        found.append(
            Finding("warning", "RISK_INITIAL_BALANCE", f"initial balance {limits.initial_balance} below {WARN_BALANCE}")
        )
    if limits.min_rr < WARN_RISK_REWARD and "RISK_MIN_RR" not in bad:
        found.append(Finding("warning", "RISK_MIN_RR", f"minimum risk/reward {limits.min_rr} below {WARN_RISK_REWARD}"))
    findings = [f for f in found if f is not None]
    return sorted(findings, key=lambda f: f.severity != "critical")


def unreadable(exc: ValidationError) -> list[Finding]:
    """A setting that is not even of its type (`RISK_PER_TRADE=abc`): one critical finding each."""
    return [Finding("critical", ".".join(map(str, e["loc"])).upper(), e["msg"]) for e in exc.errors()]


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


_FRACTIONS: Final = (
    ("RISK_PER_TRADE", "per_trade"),
    ("RISK_MAX_POSITION_PCT", "max_position_pct"),
    ("RISK_MAX_DAILY_LOSS_PCT", "max_daily_loss_pct"),
    ("RISK_MAX_DRAWDOWN_PCT", "max_drawdown_pct"),
    ("RISK_MAX_EXPOSURE_PCT", "max_exposure_pct"),
    ("RISK_MAX_CORRELATED_PCT", "max_correlated_pct"),
    ("RISK_CORRELATION_THRESHOLD", "correlation_threshold"),
)
"""Limits that are fractions: above 0, at most 1."""
_POSITIVE: Final = (
    ("RISK_INITIAL_BALANCE", "initial_balance"),
    ("RISK_MAX_OPEN_POSITIONS", "max_open_positions"),
    ("RISK_STALE_AFTER_S", "stale_after_s"),
    ("RISK_QTY_STEP", "qty_step"),
    ("RISK_CORRELATION_STEP_M", "correlation_step_m"),
    ("RISK_CORRELATION_WINDOW", "correlation_window"),
    ("RISK_STALE_FEED_H", "stale_feed_h"),
    ("RISK_ORDER_EXPIRY_S", "order_expiry_s"),
)
"""Limits that must be above 0."""
_NOT_NEGATIVE: Final = (
    ("RISK_MIN_RR", "min_rr"),
    ("RISK_FEE_RATE", "fee_rate"),
    ("RISK_SLIPPAGE_BPS", "slippage_bps"),
    ("RISK_MIN_NOTIONAL", "min_notional"),
)


def _out_of_range(limits: RiskLimits) -> dict[str, Finding]:
    """One critical finding per limit outside its range, by setting."""
    out: dict[str, Finding] = {}
    for setting, name in _FRACTIONS:
        value = getattr(limits, name)
        if not 0 < value <= 1:
            out[setting] = Finding("critical", setting, f"{value} is not a fraction above 0 and at most 1")
    for setting, name in _POSITIVE:
        value = getattr(limits, name)
        if not value > 0:
            out[setting] = Finding("critical", setting, f"{value} must be above 0")
    for setting, name in _NOT_NEGATIVE:
        value = getattr(limits, name)
        if value < 0:
            out[setting] = Finding("critical", setting, f"{value} must not be negative")
    if not 0 <= limits.fee_rate < 1 and "RISK_FEE_RATE" not in out:
        out["RISK_FEE_RATE"] = Finding("critical", "RISK_FEE_RATE", f"{limits.fee_rate} must be below 1")
    for setting, pairs in (("RISK_BALANCES", limits.balances), ("RISK_MIN_NOTIONALS", limits.min_notionals)):
        wrong = [f"{asset}={amount}" for asset, amount in pairs if not amount > 0 and setting == "RISK_BALANCES"]
        wrong += [f"{asset}={amount}" for asset, amount in pairs if amount < 0]
        if wrong:
            out[setting] = Finding("critical", setting, f"{', '.join(dict.fromkeys(wrong))} must be above 0")
    return out
