"""Lets the CLI's tests import their shared helpers (stack_cli.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
