"""`tradebus preflight`: the risk service's configuration check, before anything starts.

It shows the configuration risk would run with (each value and whether it came from the
environment or the default), warns about `RISK_*` and `TRADEBUS_*` variables nothing reads (a
misspelled limit is otherwise silently replaced by its default), then lists the findings."""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table

from tradebus.settings import TRADEBUS_VARIABLES, unknown_variables
from tradebus_risk.preflight import check
from tradebus_risk.settings import RiskSettings


def run(console: Console) -> int:
    """Print the effective risk configuration and every finding on it; 1 when any is critical."""
    settings = RiskSettings()  # a value not even of its type is one line (tradebus_cli.main)
    findings = check(settings.limits(), settings.symbols)
    console.print(configuration_table(settings))
    risk_variables = {name.upper() for name in RiskSettings.model_fields if name.startswith("risk_")}
    for warning in [
        *unknown_variables(os.environ, "RISK_", risk_variables),
        *unknown_variables(os.environ, "TRADEBUS_", TRADEBUS_VARIABLES),
    ]:
        console.print(f"[yellow]warning: {warning}[/yellow]")
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


def configuration_table(settings: RiskSettings) -> Table:
    """`SYMBOLS` and every `RISK_*` setting with its value and where it came from."""
    table = Table(title="Effective risk configuration", title_justify="left")
    for column in ("variable", "value", "from"):
        table.add_column(column)
    names = ["symbols", *sorted(n for n in RiskSettings.model_fields if n.startswith("risk_"))]
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, tuple):  # SYMBOLS, or ASSET=amount pairs (RISK_BALANCES)
            shown = ",".join(v if isinstance(v, str) else f"{v[0]}={v[1]}" for v in value)
        else:
            shown = str(value)
        if name.endswith("_pct") or name == "risk_per_trade":  # fractions of equity, not percents
            shown += f" ({value:.2%} of equity)"
        table.add_row(name.upper(), shown, "environment" if name in settings.model_fields_set else "default")
    return table
