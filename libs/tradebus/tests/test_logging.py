"""A service logs readable coloured lines on a terminal and JSON lines anywhere else."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

PROGRAM = """
from tradebus.logging import configure_logging, get_logger
configure_logging("demo", "INFO", {fmt!r})
get_logger("demo").info("bar stored", symbol="BTCUSDT")
"""


def _run(fmt: str, *, terminal: bool) -> str:
    """What a real process prints on stderr, attached to a pseudo-terminal or to a pipe."""
    if not terminal:
        done = subprocess.run(
            [sys.executable, "-c", PROGRAM.format(fmt=fmt)], capture_output=True, text=True, check=True
        )
        return done.stderr
    primary, secondary = pty.openpty()
    process = subprocess.Popen([sys.executable, "-c", PROGRAM.format(fmt=fmt)], stderr=secondary)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=30)
    os.close(primary)
    return b"".join(chunks).decode()


@pytest.mark.parametrize("fmt", ["auto", "console"])
def test_a_terminal_gets_coloured_readable_lines(fmt: str) -> None:
    out = _run(fmt, terminal=True)
    assert "\x1b[" in out, out  # ANSI colours
    assert "bar stored" in out and "BTCUSDT" in out
    assert not out.lstrip().startswith("{"), out


@pytest.mark.parametrize("fmt", ["auto", "json"])
def test_a_pipe_gets_json_lines(fmt: str) -> None:
    line = json.loads(_run(fmt, terminal=False).strip())
    assert (line["event"], line["symbol"], line["service"], line["level"]) == ("bar stored", "BTCUSDT", "demo", "info")


def test_json_on_a_terminal_when_asked() -> None:
    out = _run("json", terminal=True)
    assert json.loads(out.strip())["event"] == "bar stored"
