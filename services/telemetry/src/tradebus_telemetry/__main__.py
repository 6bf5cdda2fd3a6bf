"""`tradebus-telemetry`: run the telemetry service on its port until SIGINT/SIGTERM."""

from __future__ import annotations

from tradebus_telemetry.app import build_service
from tradebus_telemetry.settings import TelemetrySettings


def main() -> None:
    build_service(TelemetrySettings()).run()


if __name__ == "__main__":
    main()
