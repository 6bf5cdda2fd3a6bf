"""Every `tradebus` command answers bad input with one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TRADEBUS = str(Path(sys.executable).parent / "tradebus")

BAD_INPUT = {
    "up": (["up"], {"TRADEBUS_RISK_PORT": "abc"}, "TRADEBUS_RISK_PORT='abc' is not a port number"),
    "down": (["down", "now"], {}, "unexpected extra argument"),
    "status": (["status"], {"TRADEBUS_TELEMETRY_PORT": "99999"}, "TRADEBUS_TELEMETRY_PORT='99999' is not a port"),
    "logs": (["logs", "nosuch"], {}, "unknown service 'nosuch'; one of: supervisor, ingest"),
    "tail": (["tail", "bars..bad"], {}, "'bars..bad' is not a subject: a token between dots is empty"),
    "preflight": (["preflight"], {"RISK_MAX_DRAWDOWN_PCT": "abc"}, "RISK_MAX_DRAWDOWN_PCT='abc': Input should be"),
    "preflight-symbols": (["preflight"], {"SYMBOLS": "BTC-USD"}, "SYMBOLS='BTC-USD'"),
    "signal": (["signal", "BTCUSDT", "--horizons", "7m"], {}, "unknown horizon(s) 7m; one of: 5m, 15m, 1h, 4h, 1d"),
    "signal-limit": (["signal", "BTCUSDT", "--bar-limit", "0"], {}, "'--bar-limit'"),
    "backfill": (["backfill", "--symbols", "BTC-USD"], {}, "symbols must be alphanumeric"),
    "backfill-days": (["backfill", "--days", "abc"], {}, "Invalid value for '--days'"),
    "replay": (["replay", "missing.csv", "--speed", "fast"], {}, "Invalid value for --speed"),
    "replay-file": (["replay", "/nonexistent/BTCUSDT-1m.csv"], {}, "kline file not found"),
    "bench": (["bench", "--only", "nosuch"], {}, "unknown benchmark(s) nosuch"),
    "unknown command": (["nosuch"], {}, "No such command 'nosuch'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_and_a_failure(case: str, tmp_path: Path) -> None:
    args, env, expected = BAD_INPUT[case]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RISK_", "TRADEBUS_")) and k != "SYMBOLS"}
    result = subprocess.run(
        [TRADEBUS, *args],
        env={**clean, "TRADEBUS_RUN_DIR": str(tmp_path / "run"), "COLUMNS": "300", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0, output
    assert "Traceback" not in output and 'File "' not in output, output
    assert len(output.splitlines()) == 1, output
    assert expected in output, output
    assert not (tmp_path / "run" / "state.json").exists()  # nothing was started


def test_every_command_is_swept() -> None:
    from tradebus_cli.main import app

    commands = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    assert commands == {args[0] for args, _, _ in BAD_INPUT.values()} - {"nosuch"}
