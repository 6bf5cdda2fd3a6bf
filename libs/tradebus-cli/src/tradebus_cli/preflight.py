"""`tradebus preflight`: the risk service's configuration check, before anything starts."""

from __future__ import annotations

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from tradebus_risk.preflight import check, unreadable
from tradebus_risk.settings import RiskSettings


def run(console: Console) -> int:
    """Print every finding on the risk settings in the environment; 1 when any is critical."""
    try:
        settings = RiskSettings()
        findings = check(settings.limits(), settings.symbols)
    except ValidationError as exc:  # a value that is not even of its type (RISK_PER_TRADE=abc)
        findings = unreadable(exc)
    if not findings:
        console.print("[green]preflight: the risk configuration passes[/green]")
        return 0
    table = Table(title="Risk preflight")
    for column in ("severity", "setting", "finding"):
        table.add_column(column)
    for finding in findings:
        colour = "red" if finding.severity == "critical" else "yellow"
        table.add_row(f"[{colour}]{finding.severity}[/{colour}]", finding.setting, finding.message)
    console.print(table)
    critical = any(f.severity == "critical" for f in findings)
    console.print("risk would refuse to start" if critical else "warnings only: risk would start")
    return 1 if critical else 0
