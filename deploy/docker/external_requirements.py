"""Print the third-party requirements of the given tradebus packages, one per line.

The image installs these from the `pyproject.toml` files alone, before any source is copied,
so a code change reuses the cached dependency layer; the tradebus packages themselves are then
installed with `--no-deps`.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement string."""
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def external_requirements(package_dirs: list[Path]) -> list[str]:
    """Dependencies of `package_dirs` that are not themselves among those packages, sorted, unique."""
    projects = [tomllib.loads((d / "pyproject.toml").read_text(encoding="utf-8"))["project"] for d in package_dirs]
    ours = {requirement_name(p["name"]) for p in projects}
    found = {r for p in projects for r in p.get("dependencies", []) if requirement_name(r) not in ours}
    return sorted(found, key=str.lower)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: external_requirements.py PACKAGE_DIR...", file=sys.stderr)
        return 2
    for requirement in external_requirements([Path(a) for a in argv]):
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
