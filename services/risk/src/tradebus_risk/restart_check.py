"""The position safety check on start (R-4.6): restored positions against the latest price.

Each open position restored from the database is compared with the newest 1m bar of its symbol
in JetStream (the BARS stream's last message on `bars.1m.<SYMBOL>`; the book's own mark when
the stream has none or cannot be read). Flags:
- `no_entry_price`: the restored entry price is zero or negative (its P&L and move are unknown).
  It is restored before the book loads, from the fill of the position's own entry order, else
  set to the latest price (the detail says which): the position's exit would otherwise be a
  trade without an entry price, which no consumer accepts;
- `moved_over_50pct`: the latest price is more than 50 % away from the entry (a warning);
- `stop_crossed` / `target_crossed`: the latest price lies beyond the stop or the first target
  while the book has not applied that bar yet: it was crossed while risk was down.
A crossed position is closed at the first price risk gets for it: the bars it missed are still
in JetStream and its durable delivers them first, in order, so the book exits on the first of
them that reaches the level (at the level, or at that bar's open when it opened beyond it: the
gap rule of `paper`), exactly as an uninterrupted run would; when the feed lost those minutes
too, the first bar after the gap opens beyond the level and fills at its open.
Nothing here blocks the start: the report is logged, kept for `GET /v1/risk/restart-check`,
and its flags are shown on `GET /v1/positions` while the position is open. No I/O but `latest_bars`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from tradebus import subjects
from tradebus.logging import get_logger
from tradebus_risk.inbound import RiskBar, RiskBarEvent
from tradebus_risk.precision import plain
from tradebus_risk.records import Holding
from tradebus_risk.repository import Repository

log = get_logger(__name__)

MOVE_WARNING: Final = Decimal("0.5")


@dataclass(frozen=True, slots=True)
class PositionCheck:
    """One restored position's findings (`flags` empty when all is well)."""

    symbol: str
    position_id: str
    entry_price: Decimal
    latest_price: Decimal
    latest_at: datetime | None
    """Open time of the bar the latest price is the close of; None: the book's mark."""
    flags: tuple[str, ...]
    detail: str


def check_position(holding: Holding, latest: RiskBar | None, applied: datetime | None) -> PositionCheck:
    """The findings for `holding`, given its symbol's newest bar and the last bar the book applied."""
    newer = latest is not None and (applied is None or latest.open_time > applied)
    price = latest.close if latest is not None and newer else holding.mark_price
    entry = holding.entry_price
    flags: list[str] = []
    notes: list[str] = []
    if entry <= 0:
        flags.append("no_entry_price")
        notes.append(f"entry price {plain(entry)}: no P&L or move can be judged")
    elif abs(price / entry - 1) > MOVE_WARNING:
        flags.append("moved_over_50pct")
        notes.append(f"latest {plain(price)} is {price / entry - 1:+.2%} from entry {plain(entry)}")
    if newer:
        target = holding.targets[0] if holding.targets else None
        if holding.stop is not None and price <= holding.stop:
            flags.append("stop_crossed")
            notes.append(f"stop {plain(holding.stop)} crossed while down: closed on the first bar applied")
        elif target is not None and price >= target:
            flags.append("target_crossed")
            notes.append(f"target {plain(target)} crossed while down: closed on the first bar applied")
    return PositionCheck(
        symbol=holding.symbol,
        position_id=holding.position_id,
        entry_price=entry,
        latest_price=price,
        latest_at=latest.open_time if latest is not None and newer else None,
        flags=tuple(flags),
        detail="; ".join(notes) or f"latest {plain(price)}, entry {plain(entry)}: ok",
    )


@dataclass(slots=True)
class RestartReport:
    """The checks made at start, kept for the HTTP API."""

    checks: list[PositionCheck] = field(default_factory=list)

    def flag(self, view: dict[str, Any]) -> dict[str, Any]:
        """A position's view with the flags its restart check found (none when it opened since)."""
        found = next((c for c in self.checks if c.position_id == view["position_id"]), None)
        view["restart_flags"] = list(found.flags) if found is not None else []
        if found is not None and found.flags:
            view["restart_detail"] = found.detail
        return view


def check_all(
    holdings: Iterable[Holding], latest: Mapping[str, RiskBar], applied: Mapping[str, datetime]
) -> list[PositionCheck]:
    return [check_position(h, latest.get(h.symbol), applied.get(h.symbol)) for h in holdings]


RESTORE_ENTRY: Final = """
UPDATE positions p SET entry_price = coalesce(
    (SELECT o.fill_price FROM orders o WHERE o.order_id = p.position_id || ':entry' AND o.fill_price > 0), $2)
WHERE symbol = $1 AND entry_price <= 0
RETURNING entry_price, entry_price = $2 AS assumed"""


async def restore_entry_prices(pool: Any, checks: list[PositionCheck]) -> list[PositionCheck]:
    """Give each position flagged `no_entry_price` one (see the module docstring); returns the
    checks with the price restored said in their detail."""
    out = []
    for check in checks:
        row = None
        if "no_entry_price" in check.flags:
            row = await pool.fetchrow(RESTORE_ENTRY, check.symbol, check.latest_price)
        if row is None:
            out.append(check)
            continue
        source = "assumed to be the latest price" if row["assumed"] else "restored from its entry fill"
        out.append(replace(check, detail=f"{check.detail}; entry price {plain(row['entry_price'])} {source}"))
    return out


CLOSING_TRADES: Final = "SELECT * FROM trades WHERE trade_id = ANY($1::text[])"


async def closing_trades(pool: Any, checks: Iterable[PositionCheck]) -> dict[str, Any]:
    """The trade that closed each checked position since (a trade's id is its position's), by id."""
    rows = await pool.fetch(CLOSING_TRADES, [c.position_id for c in checks])
    return {r["trade_id"]: r for r in rows}


async def latest_bars(js: Any, symbols: Iterable[str]) -> dict[str, RiskBar]:
    """The newest 1m bar of each symbol in the BARS stream (missing ones, or unreadable: left out)."""
    found: dict[str, RiskBar] = {}
    for symbol in symbols:
        try:
            msg = await js.get_last_msg("BARS", subjects.bars("1m", symbol))
            found[symbol] = RiskBarEvent.model_validate_json(msg.data).data
        except Exception as exc:  # noqa: BLE001 - a missing or bad bar only means: use the mark
            log.info("restart check: no latest bar from the stream, using the mark", symbol=symbol, error=repr(exc))
    return found


async def check_restored(repo: Repository, js: Any) -> list[PositionCheck]:
    """The check of the positions as restored, before anything moves them: made, entry prices
    restored, logged (a warning per flagged position)."""
    book = await repo.load_book(repo.pool)
    latest = await latest_bars(js, sorted(book.holdings))
    checks = await restore_entry_prices(repo.pool, check_all(book.holdings.values(), latest, book.bar_applied))
    for check in checks:
        emit = log.warning if check.flags else log.info
        emit("restart check", symbol=check.symbol, position_id=check.position_id, flags=list(check.flags),
             detail=check.detail)  # fmt: skip
    return checks
