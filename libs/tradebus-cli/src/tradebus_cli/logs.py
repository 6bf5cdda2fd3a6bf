"""`tradebus logs [SERVICE] [-f]`: the run directory's log files, shown or followed like `tail -F`."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from rich.console import Console
from rich.text import Text

from tradebus.settings import PROCESSES
from tradebus_cli.rundir import RunDir, repo_root

LOG_NAMES: Final = ("supervisor", *PROCESSES)
FOLLOW_POLL_S: Final = 0.25
_CHUNK: Final = 64 * 1024
_STYLES: Final = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan")


def last_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of `path`, reading backwards from the end (log files grow large)."""
    with path.open("rb") as handle:
        end = handle.seek(0, 2)
        start = end
        data = b""
        while start > 0 and data.count(b"\n") <= count:
            start = max(0, start - _CHUNK)
            handle.seek(start)
            data = handle.read(end - start)
    lines = data.decode(errors="replace").splitlines()
    return lines[-count:] if count else []


class _Printer:
    def __init__(self, console: Console, names: Sequence[str]) -> None:
        self.console = console
        self.width = max(map(len, names))
        self.prefix = len(names) > 1
        self.styles = {name: _STYLES[i % len(_STYLES)] for i, name in enumerate(names)}

    def line(self, name: str, line: str) -> None:
        text = Text(line)
        if self.prefix:
            text = Text.assemble((f"{name:<{self.width}} | ", self.styles[name]), text)
        self.console.print(text, soft_wrap=True, highlight=False)


def show(console: Console, service: str | None, lines: int, follow: bool) -> int:
    run = RunDir.from_env()
    state = run.read_state()
    if state and state.mode == "docker":
        args = [
            "docker",
            "compose",
            "logs",
            "--tail",
            str(lines),
            *(["--follow"] if follow else []),
            *filter(None, [service]),
        ]
        return subprocess.run(args, cwd=repo_root(), check=False).returncode
    names = [service] if service else list(LOG_NAMES)
    files = {name: run.log_file(name) for name in names if run.log_file(name).exists()}
    if not files:
        console.print(f"no logs in {run.logs} yet")
        return 1
    printer = _Printer(console, list(files))
    offsets = {}
    for name, path in files.items():
        for line in last_lines(path, lines):
            printer.line(name, line)
        offsets[name] = path.stat().st_size
    if follow:
        _follow(printer, files, offsets)
    return 0


def _follow(printer: _Printer, files: dict[str, Path], offsets: dict[str, int]) -> None:
    """Print lines as they are appended until Ctrl-C; a truncated file is read from its start."""
    partial = dict.fromkeys(files, b"")
    try:
        while True:
            for name, path in files.items():
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                if size < offsets[name]:
                    offsets[name], partial[name] = 0, b""
                if size == offsets[name]:
                    continue
                with path.open("rb") as handle:
                    handle.seek(offsets[name])
                    chunk = partial[name] + handle.read(size - offsets[name])
                offsets[name] = size
                *complete, partial[name] = chunk.split(b"\n")
                for raw in complete:
                    printer.line(name, raw.decode(errors="replace"))
            time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        return
