"""Subject names and the JetStream streams that hold them (docs/ARCHITECTURE.md, "The contract")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DUPLICATE_WINDOW_S: Final = 120.0
"""How long JetStream remembers a `Nats-Msg-Id` to drop a duplicate publish."""


def bars(interval: str, symbol: str) -> str:
    return f"bars.{interval}.{symbol}"


def signals(symbol: str) -> str:
    return f"signals.{symbol}"


def exec_order(symbol: str) -> str:
    return f"exec.order.{symbol}"


def exec_fill(symbol: str) -> str:
    return f"exec.fill.{symbol}"


def exec_trade(symbol: str) -> str:
    return f"exec.trade.{symbol}"


def exec_position(symbol: str) -> str:
    return f"exec.position.{symbol}"


def exec_rejected(symbol: str) -> str:
    return f"exec.rejected.{symbol}"


def exec_breaker(scope: str) -> str:
    """A symbol's circuit breaker, or the account-wide one (`ACCOUNT`)."""
    return f"exec.breaker.{scope}"


def quality(symbol: str) -> str:
    return f"telemetry.quality.{symbol}"


READINESS: Final = "telemetry.readiness"
ROLLUP_DAILY: Final = "rollups.daily"
ROLLUP_STRATEGY: Final = "rollups.strategy"


def heartbeat(service: str) -> str:
    return f"telemetry.heartbeat.{service}"


def dlq(service: str) -> str:
    return f"dlq.{service}"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One JetStream stream: its name, subjects and how long it keeps messages."""

    name: str
    subjects: tuple[str, ...]
    max_age_s: float
    description: str


_DAY: Final = 86_400.0

STREAMS: Final[tuple[StreamSpec, ...]] = (
    StreamSpec("BARS", ("bars.>",), 90 * _DAY, "1m bars from ingest, 5m..1w from aggregator"),
    StreamSpec("SIGNALS", ("signals.>",), 90 * _DAY, "multi-horizon signals"),
    StreamSpec("EXEC", ("exec.>",), 365 * _DAY, "orders, fills, trades, positions, rejections"),
    StreamSpec("TELEMETRY", ("telemetry.>",), 7 * _DAY, "quality issues, readiness, heartbeats"),
    StreamSpec("ROLLUPS", ("rollups.>",), 365 * _DAY, "daily and per-strategy performance"),
    StreamSpec("DLQ", ("dlq.>",), 30 * _DAY, "messages a service could not process"),
)


def subject_problem(subject: str) -> str | None:
    """Why `subject` is not a NATS subject to subscribe to (None when it is one): NATS answers a
    bad one with an exception, after the connection is made."""
    if not subject or any(c.isspace() for c in subject):
        return "it is empty or has white space"
    tokens = subject.split(".")
    if "" in tokens:
        return "a token between dots is empty"
    if any(">" in t and t != ">" for t in tokens) or ">" in tokens[:-1]:
        return "'>' stands alone, as the last token"
    if any("*" in t and t != "*" for t in tokens):
        return "'*' stands alone, as a whole token"
    return None
