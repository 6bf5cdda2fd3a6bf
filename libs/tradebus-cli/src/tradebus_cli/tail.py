"""`tradebus tail SUBJECT`: follow a subject on core NATS and print each message as it arrives."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import nats
from rich.console import Console

from tradebus.embedded import nats_answers
from tradebus_cli.eventfmt import describe


class TailError(Exception):
    """The bus could not be reached."""


async def tail(url: str, subject: str, *, count: int | None, raw: bool, console: Console) -> int:
    """Print messages on `subject` until `count` were seen (or forever); the number printed."""
    if not nats_answers(url):
        raise TailError(f"cannot reach NATS at {url} (set NATS_URL, or start the stack with `tradebus up`)")

    async def quiet(_: Exception) -> None:
        """Reconnects are expected while the bus restarts; nats-py would print each attempt."""

    client = await nats.connect(url, error_cb=quiet, max_reconnect_attempts=-1)
    seen = 0
    try:
        subscription = await client.subscribe(subject)
        async for msg in subscription.messages:
            if raw:
                sys.stdout.write(msg.data.decode(errors="replace") + "\n")
                sys.stdout.flush()
            else:
                console.print(describe(msg.subject, msg.data, datetime.now(tz=UTC)).render(), soft_wrap=True)
            seen += 1
            if count is not None and seen >= count:
                break
    finally:
        await client.close()
    return seen
