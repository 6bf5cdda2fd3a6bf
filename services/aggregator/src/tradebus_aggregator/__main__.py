"""`tradebus-aggregator`: run the aggregator service until SIGINT/SIGTERM."""

from __future__ import annotations

from tradebus_aggregator.app import build_service
from tradebus_aggregator.settings import AggregatorSettings


def main() -> None:
    build_service(AggregatorSettings()).run()


if __name__ == "__main__":
    main()
