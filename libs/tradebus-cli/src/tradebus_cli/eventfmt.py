"""One readable line per bus message, for `tradebus tail`.

A known event type gets a summary of its key fields (a bar: symbol interval open_time O H L C V);
an unknown one its scalar fields; a payload that is not JSON is shown raw. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
from rich.text import Text

from tradebus.display import ratio

SUMMARY_WIDTH: Final = 200

Summary = str | Callable[[Mapping[str, Any]], str]


def _failing(names: list[str]) -> str:
    return "failing: " + ", ".join(names) if names else "all ok"


def _readiness(data: Mapping[str, Any]) -> str:
    points = data.get("failure_points") or []
    return f"{data['status']} " + _failing([str(p.get("name")) for p in points if not p.get("ok")])


def _heartbeat(data: Mapping[str, Any]) -> str:
    checks = data.get("checks") or {}
    failing = _failing([name for name, ok in checks.items() if not ok])
    return f"{data['service']} {data['instance']} {data['status']} {failing}"


def _performance(key: str) -> Callable[[Mapping[str, Any]], str]:
    """A daily or strategy row: win rate to 4 places, amounts as they are (max_dd is in quote currency)."""

    def summary(data: Mapping[str, Any]) -> str:
        return (
            f"{data[key]} trades={data['trades']} win_rate={ratio(data['win_rate'])} net={data['net_pnl']} "
            f"fees={data['fees']} max_dd={data['max_drawdown']}"
        )

    return summary


SUMMARIES: Final[Mapping[str, Summary]] = {
    "bar.closed": "{symbol} {interval} {open_time} O={open} H={high} L={low} C={close} V={volume}",
    "signal.generated": "{symbol} {interval} {bar_time} {state} conf={confidence} price={price}",
    "order.submitted": "{symbol} {side} {quantity} {purpose} ({reason})",
    "order.filled": "{symbol} {side} {quantity} @ {price} fee={fee}",
    "position.changed": "{symbol} {status} {direction} qty={quantity} entry={entry_price} upnl={unrealized_pnl}",
    "trade.closed": "{symbol} {strategy} qty={quantity} {entry_price} -> {exit_price} net={net_pnl} ({exit_reason})",
    "signal.rejected": "{symbol} {reason}: {detail}",
    "quality.issue_detected": "{symbol} {interval} {severity} {kind}: {detail}",
    "readiness.reported": _readiness,
    "service.heartbeat": _heartbeat,
    "performance.daily_computed": _performance("day"),
    "performance.strategy_computed": _performance("strategy"),
}


@dataclass(frozen=True, slots=True)
class EventLine:
    time: str
    subject: str
    event_type: str
    summary: str

    def render(self) -> Text:
        return Text.assemble(
            (self.time, "dim"), " ", (self.subject, "cyan"), " ", (self.event_type, "magenta"), " ", self.summary
        )


def _scalars(data: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, dict | list))


def _flags(data: Mapping[str, Any]) -> str:
    """What makes a bar unusual: missing minutes, a correction."""
    flags = []
    if data.get("complete") is False:
        flags.append("incomplete")
    if data.get("revision"):
        flags.append(f"rev={data['revision']}")
    return " ".join(flags)


def summarize(event_type: str, data: Mapping[str, Any]) -> str:
    """The key fields of `data`, as declared for `event_type` (all scalar fields otherwise)."""
    summary = SUMMARIES.get(event_type)
    try:
        text = summary(data) if callable(summary) else summary.format_map(data) if summary else _scalars(data)
    except (KeyError, IndexError, AttributeError, TypeError):
        text = _scalars(data)
    text = " ".join(filter(None, (text, _flags(data))))
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 1] + "…"


def _clock(value: Any, fallback: datetime) -> str:
    """HH:MM:SS.mmm of an ISO timestamp (UTC on the bus), else of `fallback`."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).strftime("%H:%M:%S.%f")[:-3]
        except ValueError:
            pass
    return fallback.strftime("%H:%M:%S.%f")[:-3]


def describe(subject: str, payload: bytes, received_at: datetime) -> EventLine:
    """The line for one message; never raises, whatever the payload."""
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return EventLine(_clock(None, received_at), subject, "-", payload.decode(errors="replace"))
    if not isinstance(document, dict):
        return EventLine(_clock(None, received_at), subject, "-", payload.decode(errors="replace"))
    data = document.get("data")
    event_type = str(document.get("event_type", "-"))
    summary = summarize(event_type, data if isinstance(data, dict) else document)
    return EventLine(_clock(document.get("emitted_at"), received_at), subject, event_type, summary)
