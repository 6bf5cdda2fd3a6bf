"""`tradebus-risk`: run the risk service until SIGINT/SIGTERM (refused by a critical preflight)."""

from __future__ import annotations

import sys

from tradebus_risk.app import build_service
from tradebus_risk.preflight import PreflightFailed
from tradebus_risk.settings import RiskSettings


def main() -> None:
    try:
        service = build_service(RiskSettings())
    except PreflightFailed as exc:
        sys.exit(str(exc))  # exit status 1, every finding on stderr
    service.run()


if __name__ == "__main__":
    main()
