"""`tradebus-risk`: run the risk service until SIGINT/SIGTERM (refused by a critical preflight)."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from tradebus_risk.app import build_service
from tradebus_risk.preflight import PreflightFailed
from tradebus_risk.settings import RiskSettings


def main() -> None:
    try:
        service = build_service(RiskSettings())
    except ValidationError as exc:  # a value that is not even of its type: one line each, no traceback
        lines = "\n".join(f"  - {'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        sys.exit(f"risk configuration refused:\n{lines}")
    except PreflightFailed as exc:
        sys.exit(str(exc))  # exit status 1, every finding on stderr
    service.run()


if __name__ == "__main__":
    main()
