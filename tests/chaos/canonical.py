"""The final state of a replay, dumped canonically, and a readable diff of two dumps.

What is dumped: every service's durable outcome — the bars of every interval (aggregator and
signal's copy), signals, risk's decisions (audit), orders, trades, positions, account, per-symbol
state, inbox and outbox, rollup's trades and performance rows, telemetry's quality issues and
ingest's checkpoints. Rows are sorted, numbers kept as PostgreSQL prints them, JSON re-encoded
with sorted keys.

What is left out, and why (`EXCLUDED`): wall-clock columns — when a row was written, not what it
says (`updated_at`, `stored_at`, `recorded_at`, `received_at`, `computed_at`, `created_at`,
`sent_at`, `detected_at`, and `emitted_at` inside stored events) — and sequence-generated
surrogate keys (`risk.audit.id`, `risk.outbox.seq`), which a transaction rolled back by a crash
consumes; and `risk.account.version`, the book's optimistic-lock token, bumped once per saved
batch, so it counts how the bus happened to chunk the messages, not what was traded (two clean
runs differ there). Tables that only log wall-clock activity are not dumped: `rollup.eod_runs`,
`telemetry.readiness_snapshots`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

import asyncpg

WALL_CLOCK_JSON_KEYS: Final = frozenset({"emitted_at"})


@dataclass(frozen=True)
class TableSpec:
    table: str
    key: tuple[str, ...]
    """Columns that name a row, to pair rows of two dumps in a diff."""
    excluded: tuple[str, ...] = ()
    json_columns: tuple[str, ...] = ()


TABLES: Final = (
    TableSpec("ingest.checkpoints", ("source", "symbol"), ("updated_at",)),
    TableSpec("aggregator.bars", ("symbol", "interval", "open_time"), ("updated_at",)),
    TableSpec("aggregator.bar_counts", ("symbol", "interval")),
    TableSpec("signal.bars", ("symbol", "interval", "open_time")),
    TableSpec("signal.signals", ("event_id",), ("stored_at",), ("event",)),
    TableSpec("risk.audit", ("signal_id", "symbol", "event_time", "decision", "reason"), ("id", "recorded_at")),
    TableSpec("risk.orders", ("order_id",)),
    TableSpec("risk.trades", ("trade_id",)),
    TableSpec("risk.positions", ("symbol",)),
    TableSpec("risk.account", ("id",), ("updated_at", "version")),
    TableSpec("risk.balances", ("asset",)),
    TableSpec("risk.symbol_state", ("symbol",)),
    TableSpec("risk.breaker", ("scope",)),
    TableSpec("risk.inbox", ("event_id",), ("received_at",), ("payload",)),
    TableSpec("risk.outbox", ("event_id",), ("seq", "created_at", "sent_at"), ("payload",)),
    TableSpec("rollup.trades", ("trade_id",), ("received_at",)),
    TableSpec("rollup.daily_performance", ("day",), ("computed_at",)),
    TableSpec("rollup.strategy_performance", ("strategy",), ("computed_at",)),
    TableSpec("telemetry.quality_issues", ("event_id",), ("detected_at",)),
)
STREAM_SUBJECTS: Final = TableSpec("jetstream.subjects", ("stream", "subject"))
"""Messages stored per subject in the contract streams (filled by the harness, not from SQL)."""
EXCLUDED: Final = {spec.table: spec.excluded for spec in TABLES if spec.excluded} | {
    "(stored events)": tuple(sorted(WALL_CLOCK_JSON_KEYS))
}

Row = dict[str, Any]
Dump = dict[str, list[Row]]


def _plain(value: Any) -> Any:
    """A JSON-able, exact rendering of a column value."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _strip_wall_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_wall_clock(v) for k, v in value.items() if k not in WALL_CLOCK_JSON_KEYS}
    if isinstance(value, list):
        return [_strip_wall_clock(v) for v in value]
    return value


def _canonical(spec: TableSpec, record: Mapping[str, Any]) -> Row:
    row: Row = {}
    for column, value in record.items():
        if column in spec.excluded:
            continue
        decoded = (
            _strip_wall_clock(json.loads(value)) if column in spec.json_columns and isinstance(value, str) else value
        )
        row[column] = _plain(decoded)
    return row


def encode(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def dump(database_url: str) -> Dump:
    """Every table of `TABLES`, rows sorted by their canonical encoding (a missing table dumps empty)."""
    conn = await asyncpg.connect(database_url)
    try:
        out: Dump = {}
        for spec in TABLES:
            try:
                records = await conn.fetch(f"SELECT * FROM {spec.table}")
            except asyncpg.UndefinedTableError:
                records = []
            rows = [_canonical(spec, dict(r)) for r in records]
            out[spec.table] = sorted(rows, key=encode)
        return out
    finally:
        await conn.close()


def digest(state: Dump) -> str:
    return hashlib.sha256(encode(state).encode()).hexdigest()


def counts(state: Dump) -> dict[str, int]:
    return {table: len(rows) for table, rows in state.items()}


def _key(spec: TableSpec, row: Row) -> str:
    return encode([row.get(c) for c in spec.key])


def _short(row: Row, limit: int = 400) -> str:
    text = encode(row)
    return text if len(text) <= limit else text[:limit] + "…"


def diff(expected: Dump, actual: Dump, rows_shown: int = 3) -> str:
    """'' when equal; else a table of counts and, per differing table, its first differing rows."""
    specs = {spec.table: spec for spec in (*TABLES, STREAM_SUBJECTS)}
    lines: list[str] = []
    differing = [t for t in expected if expected[t] != actual.get(t, [])]
    if not differing:
        return ""
    lines.append(f"{'table':32} {'expected':>9} {'actual':>9} {'missing':>8} {'extra':>8} {'changed':>8}")
    details: list[str] = []
    for table in differing:
        spec = specs[table]
        want = {_key(spec, r): r for r in expected[table]}
        got = {_key(spec, r): r for r in actual.get(table, [])}
        missing = sorted(k for k in want.keys() - got.keys())
        extra = sorted(k for k in got.keys() - want.keys())
        changed = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
        lines.append(
            f"{table:32} {len(expected[table]):>9} {len(actual.get(table, [])):>9} "
            f"{len(missing):>8} {len(extra):>8} {len(changed):>8}"
        )
        details.append(f"--- {table} (key {', '.join(spec.key)})")
        for key in missing[:rows_shown]:
            details.append(f"  missing  {_short(want[key])}")
        for key in extra[:rows_shown]:
            details.append(f"  extra    {_short(got[key])}")
        for key in changed[:rows_shown]:
            columns = sorted(c for c in want[key].keys() | got[key].keys() if want[key].get(c) != got[key].get(c))
            shown = {c: [want[key].get(c), got[key].get(c)] for c in columns}
            details.append(f"  changed  {key}: {_short(shown, 600)} (expected, actual)")
        if not (missing or extra or changed):  # same keys and rows, different multiplicity
            details.append("  same rows by key, different duplicates")
    return "\n".join([*lines, *details])


def summary(tables: Sequence[str], state: Dump) -> str:
    return ", ".join(f"{t}={len(state.get(t, []))}" for t in tables)
