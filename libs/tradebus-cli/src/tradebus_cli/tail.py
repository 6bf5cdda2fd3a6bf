"""`tradebus tail SUBJECT`: follow a subject on core NATS and print each message as it arrives.

It connects as the read-only `reader` user (see `buslogin`): it can watch every event subject,
and publish none."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from nats.aio.subscription import Subscription
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
        raise TailError(buslogin.unreachable(url))

    refused: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

    async def quiet(exc: Exception) -> None:
        """Reconnects are expected while the bus restarts; nats-py would print each attempt."""
        if "permissions violation" in str(exc).lower() and not refused.done():
            refused.set_result(exc)

    try:
        client = await buslogin.connect(READER, url, error_cb=quiet, max_reconnect_attempts=-1)
    except LoginRefused as exc:
        raise TailError(str(exc)) from None
    try:
        subscription = await client.subscribe(subject)
        printing = asyncio.ensure_future(_print(subscription, count, raw, console))
        await asyncio.wait((printing, refused), return_when=asyncio.FIRST_COMPLETED)  # the refusal may come late
        if not printing.done():
            printing.cancel()
            raise TailError(f"NATS refused the subscription to {subject!r} ({refused.result()}); event subjects only")
        return printing.result()
    finally:
        await client.close()


async def _print(subscription: Subscription, count: int | None, raw: bool, console: Console) -> int:
    seen = 0
    async for msg in subscription.messages:
        if raw:
            sys.stdout.write(msg.data.decode(errors="replace") + "\n")
            sys.stdout.flush()
        else:
            console.print(describe(msg.subject, msg.data, datetime.now(tz=UTC)).render(), soft_wrap=True)
        seen += 1
        if count is not None and seen >= count:
            break
    return seen
