"""`tradebus tail SUBJECT`: follow a subject on core NATS and print each message as it arrives.

It connects as the read-only `reader` user (see `buslogin`): it can watch every event subject,
and publish none."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from rich.console import Console

from tradebus.embedded import nats_answers
from tradebus.natsauth import READER, LoginRefused
from tradebus_cli import buslogin
from tradebus_cli.eventfmt import describe


class TailError(Exception):
    """The bus could not be reached, refused the login, or refused the subscription."""


async def tail(url: str, subject: str, *, count: int | None, raw: bool, console: Console) -> int:
    """Print messages on `subject` until `count` were seen (or forever); the number printed."""
    if not nats_answers(url):
        raise TailError(f"cannot reach NATS at {url} (set NATS_URL, or start the stack with `tradebus up`)")

    refusals: list[Exception] = []

    async def quiet(exc: Exception) -> None:
        """Reconnects are expected while the bus restarts; nats-py would print each attempt."""
        if "permissions violation" in str(exc).lower():
            refusals.append(exc)

    try:
        client = await buslogin.connect(READER, url, error_cb=quiet, max_reconnect_attempts=-1)
    except LoginRefused as exc:
        raise TailError(str(exc)) from None
    seen = 0
    try:
        subscription = await client.subscribe(subject)
        await client.flush()  # a refused subscription is answered before the flush's PONG
        if refusals:
            raise TailError(f"NATS refused the subscription to {subject!r} ({refusals[0]}); event subjects only")
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
