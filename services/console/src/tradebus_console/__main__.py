"""`tradebus-console`: run the console until SIGINT/SIGTERM."""

from __future__ import annotations

from tradebus_console.app import build_service
from tradebus_console.settings import ConsoleSettings


def main() -> None:
    build_service(ConsoleSettings()).run()


if __name__ == "__main__":
    main()
