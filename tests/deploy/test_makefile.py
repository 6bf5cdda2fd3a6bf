"""`make venv` names each step and lets pip show its progress (it was silent for minutes)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_venv_names_its_steps_and_shows_pips_progress() -> None:
    # -n: print what would run; -W: as if a manifest had changed, so the environment is (re)built
    plan = subprocess.run(
        ["make", "-n", "-W", "requirements-dev.txt", "venv"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    steps = [line for line in plan.splitlines() if "==> make venv" in line]
    assert len(steps) == 4 and "[3/3]: installing tradebus" in steps[2], plan
    install = next(line for line in plan.splitlines() if "-r requirements-dev.txt" in line)
    assert "--quiet" not in install and "--progress-bar on" in install, install
