"""`tradebus-rollup`: run the rollup service until SIGINT/SIGTERM."""

from __future__ import annotations

from tradebus_rollup.app import build_service
from tradebus_rollup.settings import RollupSettings


def main() -> None:
    build_service(RollupSettings()).run()


if __name__ == "__main__":
    main()
