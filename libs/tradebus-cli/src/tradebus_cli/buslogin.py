"""How a CLI command connects to NATS: the least user that does its job, never anonymous by choice.

`tail` reads as `reader` (subscribe and JetStream info only); `replay` and `backfill` publish
1m bars, which only ingest may publish, so they act as `ingest` (they do ingest's job, and
`backfill` writes ingest's schema too). The password comes from the environment (`NATS_USER`,
`NATS_PASSWORD`, `NATS_PASSWORD_FILE`, `NATS_CREDENTIALS_DIR`, or `user:password@` in
`NATS_URL`), else from the local stack's run directory, where `tradebus up` wrote it.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from tradebus import natsauth
from tradebus.natsauth import LoginRefused
from tradebus_cli.deps import DEFAULT_NATS_URL
from tradebus_cli.rundir import RunDir, stack_url

ErrorCallback = Callable[[Exception], Awaitable[None]]


def bus_url() -> str:
    """NATS_URL, else the bus of the local stack (it may be embedded), else the default."""
    return stack_url("NATS_URL", "nats", DEFAULT_NATS_URL)


def unreachable(url: str) -> str:
    """What a command says when nothing answers at `url` (never with the URL's password)."""
    return f"cannot reach NATS at {natsauth.strip_userinfo(url)} (set NATS_URL, or start the stack with `tradebus up`)"


def login_for(user: str, url: str) -> natsauth.Login | None:
    """`user`'s login (or `NATS_USER`'s) for the bus at `url`; see the module docstring for where from."""
    env = os.environ
    credentials_dir = env.get("NATS_CREDENTIALS_DIR") or _stack_credentials(url)
    return natsauth.resolve_login(
        user,
        url=url,
        user=env.get("NATS_USER", ""),
        password=env.get("NATS_PASSWORD", ""),
        password_file=Path(env["NATS_PASSWORD_FILE"]) if env.get("NATS_PASSWORD_FILE") else None,
        credentials_dir=Path(credentials_dir) if credentials_dir else None,
    )


def _stack_credentials(url: str) -> str:
    """The credentials directory of the local stack whose bus is at `url`, if it wrote one."""
    state = RunDir.from_env().read_state()
    dep = state.deps.get("nats") if state else None
    return dep.credentials_dir if dep and dep.url == natsauth.strip_userinfo(url) else ""


async def connect(user: str, url: str, *, error_cb: ErrorCallback | None = None, **options: Any) -> Client:
    """Connect as `user` (see `login_for`); a refused login raises `LoginRefused` at once instead
    of being retried, and other errors go to `error_cb` (silent by default)."""
    login = login_for(user, url)
    connected = False

    async def on_error(exc: Exception) -> None:
        if not connected and natsauth.is_auth_refusal(exc):
            who = f"user {login.user!r}" if login else "an anonymous connection"
            raise LoginRefused(
                f"NATS at {natsauth.strip_userinfo(url)} refused {who}: set NATS_USER / NATS_PASSWORD "
                f"(or NATS_CREDENTIALS_DIR), or start the local stack with `tradebus up`"
            )
        if error_cb is not None:
            await error_cb(exc)

    target = natsauth.strip_userinfo(url) if login else url
    extra = login.connect_options() if login else {}
    client = await nats.connect(target, error_cb=on_error, **extra, **options)
    connected = True
    return client
