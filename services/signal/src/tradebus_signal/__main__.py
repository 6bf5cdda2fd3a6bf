"""`tradebus-signal`: run the signal service until SIGINT/SIGTERM."""

from __future__ import annotations

from tradebus_signal.app import build_service
from tradebus_signal.settings import SignalSettings


def main() -> None:
    build_service(SignalSettings()).run()


if __name__ == "__main__":
    main()
