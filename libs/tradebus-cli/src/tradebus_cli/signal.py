"""`tradebus signal SYMBOL --horizons …`: ask the signal service for a fresh multi-horizon signal."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from tradebus.settings import url_for
from tradebus.timeframes import INTERVALS

HORIZONS = tuple(iv for iv in INTERVALS if iv not in ("1m", "1w"))


def parse_horizons(text: str) -> list[str]:
    """`--horizons 5m,15m` as a list; typer.BadParameter names the ones the service knows."""
    parts = [h.strip() for h in text.split(",") if h.strip()]
    unknown = [h for h in parts if h not in HORIZONS]
    if not parts or unknown:
        raise typer.BadParameter(
            f"unknown horizon(s) {', '.join(unknown) or '(none given)'}; one of: {', '.join(HORIZONS)}"
        )
    return parts


def run(console: Console, symbol: str, horizons: list[str], bar_limit: int, as_json: bool) -> int:
    """POST /v1/signal and print it; the service's own 4xx message is shown as it is."""
    body = {"symbol": symbol.upper(), "horizons": horizons, "bar_limit": bar_limit, "explain": True}
    try:
        response = httpx.post(f"{url_for('signal')}/v1/signal", json=body, timeout=10)
    except httpx.TransportError as exc:
        console.print(f"[red]signal service unreachable at {url_for('signal')}: {exc}[/red]")
        return 1
    if response.status_code != 200:
        console.print(f"[red]{response.status_code}[/red] {response.text}")
        return 1
    signal: dict[str, Any] = response.json()
    if as_json:
        console.print_json(response.text)
        return 0
    consensus = signal["consensus"]
    console.print(
        f"[bold]{signal['symbol']}[/bold] {signal['state']} confidence {signal['confidence']} "
        f"(consensus {consensus['consensus_direction']}, agreement {consensus['agreement_score']}) "
        f"at {signal['price']} on the {signal['interval']} bar of {signal['bar_time']}"
    )
    table = Table()
    for column in ("horizon", "direction", "strength", "confidence", "bars"):
        table.add_column(column)
    for h in signal["horizons"]:
        table.add_row(h["interval"], h["direction"], str(h["strength"]), str(h["confidence"]), str(h["bars"]))
    console.print(table)
    if plan := signal.get("plan"):
        targets = ", ".join(str(t) for t in plan["targets"])
        console.print(f"plan: entry {plan['entry']} stop {plan['stop']} targets {targets} R/R {plan['risk_reward']}")
    if signal.get("explanation"):
        console.print(signal["explanation"])
    return 0
