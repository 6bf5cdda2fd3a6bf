"""`tradebus-ingest`: run the ingest service until SIGINT/SIGTERM."""

from __future__ import annotations

from tradebus_ingest.app import build_service
from tradebus_ingest.settings import IngestSettings


def main() -> None:
    build_service(IngestSettings()).run()


if __name__ == "__main__":
    main()
