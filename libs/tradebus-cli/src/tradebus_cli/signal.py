"""`tradebus signal SYMBOL --horizons …`: ask the signal service for a fresh multi-horizon signal."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from tradebus.display import price, ratio, tick_of
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
    """POST /v1/signal and print it; the service's own 4xx message is shown in one line."""
    body = {"symbol": symbol.upper(), "horizons": horizons, "bar_limit": bar_limit, "explain": True}
    try:
        response = httpx.post(f"{url_for('signal')}/v1/signal", json=body, timeout=10)
    except httpx.TransportError as exc:
        console.print(f"[red]signal service unreachable at {url_for('signal')}: {exc}[/red]")
        return 1
    if response.status_code != 200:
        console.print(f"[red]{response.status_code}[/red] {_detail(response)}", soft_wrap=True)
        return 1
    signal: dict[str, Any] | None = response.json()
    if signal is None:
        console.print(f"no {horizons[0]} bars of {symbol.upper()} stored yet: the stack is starting or catching up")
        return 1
    if as_json:
        console.print_json(response.text)
        return 0
    render(console, signal)
    return 0


def render(console: Console, signal: dict[str, Any]) -> None:
    """A signal as `POST /v1/signal` answers it: whether it lags the clock, the summary, the
    horizons, the plan; prices on the symbol's tick and ratios to 4 decimals (R/R 2)."""
    if signal.get("stale"):
        behind = signal.get("bars_behind", 0)
        console.print(
            f"[yellow]catching up: latest bar is {behind} {signal['interval']} bar{'s' if behind != 1 else ''} "
            f"behind the clock; this signal is from the bar of {signal['bar_time']}[/yellow]"
        )
    tick = tick_of(signal["price"])
    consensus = signal["consensus"]
    console.print(
        f"[bold]{signal['symbol']}[/bold] {signal['state']} confidence {ratio(signal['confidence'])} "
        f"(consensus {consensus['consensus_direction']}, agreement {ratio(consensus['agreement_score'])}) "
        f"at {price(signal['price'], tick)} on the {signal['interval']} bar of {signal['bar_time']}"
    )
    table = Table()
    for column in ("horizon", "direction", "strength", "confidence", "bars"):
        table.add_column(column)
    for h in signal["horizons"]:
        table.add_row(h["interval"], h["direction"], ratio(h["strength"]), ratio(h["confidence"]), str(h["bars"]))
    console.print(table)
    if plan := signal.get("plan"):
        targets = ", ".join(price(t, tick) for t in plan["targets"])
        console.print(
            f"plan: entry {price(plan['entry'], tick)} stop {price(plan['stop'], tick)} targets {targets} "
            f"R/R {ratio(plan['risk_reward'], 2)}"
        )
    if signal.get("explanation"):
        console.print(signal["explanation"])


def _detail(response: httpx.Response) -> str:
    """FastAPI's `{"detail": …}` as one line (a validation error's list: each message)."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
    return str(detail)
