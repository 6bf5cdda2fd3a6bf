"""`tradebus-risk`: run the risk service until SIGINT/SIGTERM."""

from __future__ import annotations

from tradebus_risk.app import build_service
from tradebus_risk.settings import RiskSettings


def main() -> None:
    build_service(RiskSettings()).run()


if __name__ == "__main__":
    main()
