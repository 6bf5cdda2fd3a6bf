"""`tradebus-risk`: run the risk service until SIGINT/SIGTERM (refused by a critical preflight)."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from tradebus_risk.app import build_service
from tradebus_risk.preflight import PreflightFailed, unreadable
from tradebus_risk.settings import RiskSettings


def main() -> None:
    try:
        try:
            settings = RiskSettings()
        except ValidationError as exc:  # a value that is not even of its type: one line each, no traceback
            raise PreflightFailed(unreadable(exc)) from None
        service = build_service(settings)
    except PreflightFailed as exc:
        sys.exit(str(exc))  # exit status 1, every finding on stderr
    service.run()


if __name__ == "__main__":
    main()
