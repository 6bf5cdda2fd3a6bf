"""The chaos suite's shared pieces: its helper modules on sys.path and a run root PostgreSQL can reach."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def chaos_root(request: pytest.FixtureRequest) -> Iterator[Path]:
    """Run directories of every stack of the session. Not pytest's tmp_path: that is 0700 under
    root, and the embedded PostgreSQL runs as its own user. Kept when a test failed (their logs)."""
    path = Path(tempfile.mkdtemp(prefix="tradebus-chaos-"))
    path.chmod(0o755)
    yield path
    if request.session.testsfailed:
        print(f"\nchaos run directories (logs, data) kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)
