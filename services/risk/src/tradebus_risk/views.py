"""JSON views of the book for the HTTP API: amounts as decimal strings, times as UTC ISO-8601."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from tradebus.timeframes import iso_utc
from tradebus_risk.book import Book
from tradebus_risk.breaker import BreakerState
from tradebus_risk.records import Holding
from tradebus_risk.restart_check import PositionCheck


def amount(value: Decimal | None) -> str | None:
    """A decimal string without exponent notation or trailing zeros."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text == "-0" else text


def account_view(book: Book) -> dict[str, Any]:
    """The home asset's figures in the contract's fields (named by `quote_asset`), every funded
    asset's in `balances`, and the account-wide ones (positions, frozen, day)."""
    home = book.limits.home_asset if book.limits.home_asset in book.accounts else next(iter(book.accounts))
    return {
        **_figures(book, home),
        "open_positions": len(book.holdings),
        "pending_orders": len(book.pending),
        "frozen": book.frozen,
        "day": book.day.isoformat() if book.day else None,
        "balances": {asset: _figures(book, asset) for asset in sorted(book.accounts)},
    }


def _figures(book: Book, asset: str) -> dict[str, Any]:
    """One quote asset's account: every amount in `asset`."""
    a = book.accounts[asset]
    equity = book.equity(asset)
    return {
        "quote_asset": asset,
        "initial_balance": amount(a.initial_balance),
        "cash": amount(a.cash),
        "equity": amount(equity),
        "realized_pnl": amount(a.realized_pnl),
        "unrealized_pnl": amount(book.unrealized(asset)),
        "fees": amount(a.fees),
        "net_pnl": amount(equity - a.initial_balance),
        "peak_equity": amount(a.peak_equity),
        "drawdown": amount(book.drawdown(equity, asset).quantize(Decimal("1e-12"))),
        "frozen": a.frozen,
        "day_start_equity": amount(a.day_start_equity),
        "day_realized_pnl": amount(a.day_realized),
    }


def position_view(book: Book, h: Holding) -> dict[str, Any]:
    return {
        "symbol": h.symbol,
        "quote_asset": book.quote(h.symbol),
        "position_id": h.position_id,
        "direction": "long",
        "quantity": amount(h.quantity),
        "entry_price": amount(h.entry_price),
        "stop": amount(h.stop),
        "targets": [amount(t) for t in h.targets],
        "mark_price": amount(h.mark_price),
        "unrealized_pnl": amount(book.unrealized_of(h)),
        "opened_at": iso_utc(h.opened_at),
        "strategy": h.strategy,
        "mode": h.mode.value,
    }


def trade_view(r: asyncpg.Record, quote_asset: str | None) -> dict[str, Any]:
    """A closed trade; its prices and P&L are in `quote_asset`."""
    return {
        "trade_id": r["trade_id"],
        "symbol": r["symbol"],
        "quote_asset": quote_asset,
        "strategy": r["strategy"],
        "direction": "long",
        "quantity": amount(r["quantity"]),
        "entry_price": amount(r["entry_price"]),
        "exit_price": amount(r["exit_price"]),
        "entry_time": iso_utc(r["entry_time"]),
        "exit_time": iso_utc(r["exit_time"]),
        "gross_pnl": amount(r["gross_pnl"]),
        "fees": amount(r["fees"]),
        "net_pnl": amount(r["net_pnl"]),
        "exit_reason": r["exit_reason"],
        "mode": r["mode"],
    }


def breaker_view(s: BreakerState) -> dict[str, Any]:
    return {
        "scope": s.scope,
        "state": s.state,
        "since": iso_utc(s.since) if s.since else None,
        "reopens_at": iso_utc(s.reopens_at) if s.reopens_at else None,
        "trigger": s.trigger,
        "detail": s.detail,
        "fill_failures": s.fill_failures,
        "probe": s.probe,
        "trips": s.trips,
    }


def restart_view(c: PositionCheck, trade: asyncpg.Record | None, quote_asset: str | None) -> dict[str, Any]:
    return {
        "symbol": c.symbol,
        "position_id": c.position_id,
        "entry_price": amount(c.entry_price),
        "latest_price": amount(c.latest_price),
        "latest_bar": iso_utc(c.latest_at) if c.latest_at else None,
        "flags": list(c.flags),
        "detail": c.detail,
        "closed_by": trade_view(trade, quote_asset) if trade is not None else None,
    }
