"""Container health probe: exit 0 when the service's readiness endpoint answers 200.

Usage: `python healthcheck.py SERVICE [PATH]` (PATH defaults to /health/ready). The port is the
one the service itself listens on (`TRADEBUS_<SERVICE>_PORT`, else DESIGN.md's default), so the
probe follows any override without repeating it in docker-compose.yml.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from tradebus.settings import PROCESSES, port_for

TIMEOUT_S = 4.0


def probe(service: str, path: str = "/health/ready", host: str = "127.0.0.1") -> tuple[bool, str]:
    """Whether `GET path` on the service answers 200, and a one-line detail for `docker inspect`."""
    url = f"http://{host}:{port_for(service)}{path}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.status == 200, f"{url} -> {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} -> {exc.code}"
    except OSError as exc:
        return False, f"{url} -> {exc}"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in PROCESSES:
        print(f"usage: healthcheck.py {{{'|'.join(PROCESSES)}}} [PATH]", file=sys.stderr)
        return 2
    ok, detail = probe(argv[0], *argv[1:2])
    print(detail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
