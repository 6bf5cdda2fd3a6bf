"""Make the demo migrations package importable for the library's own tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
