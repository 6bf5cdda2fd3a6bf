"""The figures as a table (terminal and Markdown), as `bench.json`, and in docs/BENCHMARKS.md."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
from rich.table import Table

from tradebus.bench import Figure

REQUIRED: Final = ("replay", "latency_p99", "backfill", "indicators", "resources")
BEGIN: Final = "<!-- bench:figures:begin -->"
END: Final = "<!-- bench:figures:end -->"
COLUMNS: Final = ("figure", "value", "baseline", "ratio", "unit", "goal", "met")
LEGEND: Final = ("figure", "what is measured", "baseline")


def _number(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def goal_met(figure: Figure) -> str:
    """'yes'/'no' for a figure with a ratio goal ('ratio ≥ x'), '—' for one only reported."""
    if "≥" not in figure.goal:
        return "—"
    threshold = float(figure.goal.rsplit("≥", 1)[1].strip(" )"))
    return "yes" if figure.ratio >= threshold else "no"


def _row(figure: Figure) -> tuple[str, ...]:
    return (
        figure.key,
        _number(figure.value),
        _number(figure.baseline),
        _number(figure.ratio),
        figure.unit,
        figure.goal,
        goal_met(figure),
    )


def ordered(figures: Iterable[Figure]) -> list[Figure]:
    """The five required figures first, in the issue's order, then the services' extra ones."""
    rank = {key: i for i, key in enumerate(REQUIRED)}
    return sorted(figures, key=lambda f: (rank.get(f.key, len(rank)), f.key))


def rich_table(figures: list[Figure]) -> Table:
    table = Table(title="tradebus bench (ratio > 1 beats the baseline)", title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in ("value", "baseline", "ratio") else "left")
    for figure in ordered(figures):
        table.add_row(*_row(figure))
    return table


def rich_legend(figures: list[Figure]) -> Table:
    table = Table(title="what each figure measures", title_justify="left")
    for column in LEGEND:
        table.add_column(column)
    for row in legend(figures):
        table.add_row(*row)
    return table


def _markdown(columns: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    return _markdown(COLUMNS, (_row(f) for f in ordered(figures)))


def legend(figures: list[Figure]) -> list[tuple[str, str, str]]:
    return [(f.key, f.label, f.baseline_label) for f in ordered(figures)]


def as_json(figures: list[Figure], missing: Iterable[str]) -> dict[str, Any]:
    """The required keys (null-valued with the reason when a figure was not measured) and any extra."""
    out: dict[str, Any] = {
        f.key: {
            "value": f.value,
            "baseline": f.baseline,
            "ratio": f.ratio,
            "unit": f.unit,
            "label": f.label,
            "baseline_label": f.baseline_label,
            "goal": f.goal,
            "notes": f.notes,
        }
        for f in ordered(figures)
    }
    for key in missing:
        out[key] = {"value": None, "baseline": None, "ratio": None, "unit": None, "missing": "not measured in this run"}
    return out


def write_json(path: Path, figures: list[Figure], missing: Iterable[str]) -> None:
    path.write_bytes(orjson.dumps(as_json(figures, missing), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores (`nproc`), {cpu}, Python {platform.python_version()}, {platform.system()};"
        f" load average at the end {load} (other work on the machine skews the figures)"
    )


def _notes(figures: list[Figure]) -> str:
    lines = []
    for f in ordered(figures):
        if f.notes:
            details = ", ".join(f"{k}={v}" for k, v in f.notes.items() if k != "pids")
            lines.append(f"- `{f.key}`: {details}")
    return "\n".join(lines)


def update_docs(path: Path, figures: list[Figure], missing: list[str], command: str, seconds: float) -> None:
    """Replace the generated section between the markers of `path` (appended when absent)."""
    when = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join([
        BEGIN,
        f"Measured {when} with `{command}` on {machine()}; the run took {seconds:.0f} s.",
        "",
        markdown_table(figures),
        "",
        _markdown(LEGEND, legend(figures)),
        "",
        "Details (from `bench.json`):",
        "",
        _notes(figures),
        *([f"\nNot measured in this run: {', '.join(missing)}."] if missing else []),
        END,
    ])  # fmt: skip
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Figures\n\n" + section + "\n"
    path.write_text(text)
