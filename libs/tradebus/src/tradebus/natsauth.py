"""Who may do what on the bus: one NATS user per service, a read-only reader, an admin.

DESIGN.md's "Who may publish what" as data: each service may publish only the subjects of its
row, its heartbeat and `dlq.<service>`; it may subscribe only to its own inbox prefix
(`_INBOX_<user>.>`: publish acks, pull deliveries and JetStream API replies all come back
there, so it can read no other client's replies); and the JetStream API is narrowed to what
the shared bus code sends: stream info/create/update (every service declares the contract's
streams at start), and create/info/delete/next on its own durables `<service>-<name>`, acks on them.

The same table renders the nats-server `authorization` block for local mode and the tests
(bcrypt hashes of random passwords, files of mode 0600) and for compose (`$NATS_<USER>_PASSWORD`
variables, see deploy/nats/auth.conf, held equal to `render_authorization` by a test).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import nats.errors as nats_errors

from tradebus import subjects
from tradebus.settings import CONSOLE, SERVICES, Settings
from tradebus.timeframes import HIGHER_INTERVALS

READER: Final = "reader"
"""The CLI's and `tradebus tail`'s user: subscribes to events, reads JetStream state and snapshots
streams (`tradebus backup`), publishes none."""
ADMIN: Final = "admin"
"""Everything: for the tests' own publishing and an operator's repairs; no service runs as it."""
USERS: Final[tuple[str, ...]] = (*SERVICES, CONSOLE, READER, ADMIN)

PUBLISHES: Final[Mapping[str, tuple[str, ...]]] = {
    "ingest": ("bars.1m.*",),
    "aggregator": tuple(f"bars.{interval}.*" for interval in HIGHER_INTERVALS),
    "signal": ("signals.*",),
    "risk": tuple(f"exec.{kind}.*" for kind in ("order", "fill", "trade", "position", "rejected", "breaker")),
    "telemetry": ("telemetry.quality.*", subjects.READINESS),
    "rollup": (subjects.ROLLUP_DAILY, subjects.ROLLUP_STRATEGY),
}
"""Each service's row of DESIGN.md's subject table (its heartbeat and dead letters come on top)."""

DURABLES: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    "ingest": (),
    "aggregator": (("BARS", "bars-1m"),),
    "signal": (("BARS", "bars"),),
    "risk": (("SIGNALS", "signals"), ("BARS", "bars-1m"), ("TELEMETRY", "readiness"), ("TELEMETRY", "quality")),
    "telemetry": (("TELEMETRY", "heartbeats"), ("BARS", "bars-1m")),
    "rollup": (("EXEC", "trades"),),
}
"""Each service's durable consumers as (stream, name); the durable is `<service>-<name>`. NATS
wildcards match whole tokens only, so each is listed: a consumer added without its line here is
refused by the server, and its service's tests fail."""

READS_LAST_OF: Final[Mapping[str, tuple[str, ...]]] = {"risk": ("BARS",)}
"""Streams whose last message per subject a service reads (risk: each held symbol's latest bar at start)."""

EPHEMERALS_ON: Final[Mapping[str, tuple[str, ...]]] = {"telemetry": ("DLQ",)}
"""Streams a service follows with an ephemeral push consumer (telemetry watches every dead letter)."""

CONSOLE_FOLLOWS: Final = ("bars.*.*", "signals.*", "exec.*.*", subjects.READINESS, "rollups.*")
"""What the console subscribes to (core subscriptions: no consumer of its own is left behind)."""
CONSOLE_LAST_OF: Final = ("SIGNALS", "EXEC")
"""Streams whose last message per subject the console reads when it has no snapshot (a read)."""
JETSTREAM_OBSERVERS: Final = frozenset({"telemetry"})
"""Services that read every stream's and durable's state (telemetry exports it: a crashed
consumer's backlog stays visible). Reading reveals counts and positions, never messages."""

EVENT_SUBJECTS: Final[tuple[str, ...]] = tuple(subject for spec in subjects.STREAMS for subject in spec.subjects)
PASSWORD_BYTES: Final = 32
BCRYPT_COST: Final = 8
"""The passwords are 256 random bits: no work factor makes guessing them harder, so the hash only
keeps them out of the server's config file. The server checks it on every connect and reconnect:
measured 134 ms a connect at cost 10, 28 ms at 8, 3 ms without auth."""


def inbox_prefix(user: str) -> str:
    """The inbox prefix `user` connects with: replies to it come only to subjects it alone may read
    (nats-py's default `_INBOX` for an anonymous connection)."""
    return f"_INBOX_{user}" if user else "_INBOX"


def _api(*tails: str) -> list[str]:
    return [f"$JS.API.{tail}" for tail in tails]


def permissions(user: str) -> dict[str, list[str]] | None:
    """`{"publish": [...], "subscribe": [...]}` for `user` (allow lists), or None: everything (admin)."""
    if user == ADMIN:
        return None
    inbox = f"{inbox_prefix(user)}.>"
    if user == READER:
        reads = _api(
            "INFO", "STREAM.NAMES", "STREAM.LIST", "STREAM.INFO.*", "CONSUMER.NAMES.*", "CONSUMER.LIST.*",
            "CONSUMER.INFO.*.*", "STREAM.SNAPSHOT.*",
        )  # fmt: skip
        snapshot_acks = "$JS.SNAPSHOT.ACK.>"  # `tradebus backup`: flow control of a snapshot's chunks
        return {"publish": [*reads, snapshot_acks], "subscribe": [*EVENT_SUBJECTS, inbox]}
    if user == CONSOLE:  # publishes no subject: only read requests to the JetStream API
        reads = _api("INFO", *(f"STREAM.MSG.GET.{stream}" for stream in CONSOLE_LAST_OF))
        return {"publish": reads, "subscribe": [*CONSOLE_FOLLOWS, inbox]}
    if user not in PUBLISHES:
        raise KeyError(f"unknown NATS user {user!r}; one of {', '.join(USERS)}")
    publish = [*PUBLISHES[user], subjects.heartbeat(user), subjects.dlq(user), *_api("INFO")]
    for spec in subjects.STREAMS:  # every service declares the contract's streams (bus.ensure_streams)
        publish += _api(f"STREAM.INFO.{spec.name}", f"STREAM.CREATE.{spec.name}", f"STREAM.UPDATE.{spec.name}")
    for stream, name in DURABLES[user]:
        own = f"{user}-{name}"
        publish += _api(
            f"CONSUMER.CREATE.{stream}.{own}", f"CONSUMER.CREATE.{stream}.{own}.>",
            f"CONSUMER.DURABLE.CREATE.{stream}.{own}", f"CONSUMER.INFO.{stream}.{own}",
            f"CONSUMER.DELETE.{stream}.{own}", f"CONSUMER.MSG.NEXT.{stream}.{own}",
        )  # fmt: skip
        publish.append(f"$JS.ACK.{stream}.{own}.>")
    if user in JETSTREAM_OBSERVERS:
        publish += _api("STREAM.NAMES", "STREAM.LIST", "CONSUMER.NAMES.*", "CONSUMER.LIST.*")
    publish += _api(*(f"STREAM.MSG.GET.{stream}" for stream in READS_LAST_OF.get(user, ())))
    for stream in EPHEMERALS_ON.get(user, ()):
        publish += _api(f"CONSUMER.CREATE.{stream}", f"CONSUMER.CREATE.{stream}.*", f"CONSUMER.CREATE.{stream}.*.>")
        publish += _api(f"CONSUMER.INFO.{stream}.*", f"CONSUMER.DELETE.{stream}.*")
        publish.append(f"$JS.ACK.{stream}.>")
    return {"publish": publish, "subscribe": [inbox]}


def render_authorization(passwords: Mapping[str, str]) -> str:
    """The nats-server `authorization` block; `passwords` maps each user to a config value
    (a quoted bcrypt hash, or a `$VARIABLE` the server reads from its environment)."""
    lines = ["authorization {", "  users = ["]
    for user in USERS:
        if user not in passwords:
            continue
        perms = permissions(user)
        entry = f"    {{ user: {user}, password: {passwords[user]}"
        if perms is None:
            lines.append(entry + " }")
            continue
        lines.append(entry + ", permissions: {")
        for kind in ("publish", "subscribe"):
            lines.append(f"        {kind}: {{ allow: [")
            lines += [f"          {_quote(subject)}" for subject in perms[kind]]
            lines.append("        ] }")
        lines.append("    } }")
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def password_variable(user: str) -> str:
    """The environment variable holding `user`'s password (compose, deploy/nats/auth.conf)."""
    return f"NATS_{user.upper()}_PASSWORD"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bcrypt_hash(password: str) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()


def new_passwords(users: Iterable[str] = USERS) -> dict[str, str]:
    """A fresh random password for each user (URL-safe: no quoting needed anywhere)."""
    return {user: secrets.token_urlsafe(PASSWORD_BYTES) for user in users}


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by the owner only (0600), from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + ".tmp")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    partial.replace(path)


@dataclass(frozen=True)
class Credentials:
    """A directory of `<user>.password` files (0600) and the server's `auth.conf` (hashes only)."""

    directory: Path

    def password_file(self, user: str) -> Path:
        return self.directory / f"{user}.password"

    @property
    def server_config(self) -> Path:
        return self.directory / "nats-auth.conf"

    @property
    def compose_env(self) -> Path:
        """`docker compose --env-file` input: each password, and its hash for the server."""
        return self.directory / "compose.env"

    def generate(self, users: Iterable[str] = USERS) -> dict[str, str]:
        """New random passwords for `users` (replacing any before), and the server config for them."""
        passwords = new_passwords(users)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        for user, password in passwords.items():
            write_private(self.password_file(user), password + "\n")
        hashes = {user: _quote(bcrypt_hash(password)) for user, password in passwords.items()}
        write_private(self.server_config, render_authorization(hashes))
        compose = [f"{password_variable(user)}={password}" for user, password in passwords.items()]
        compose += [f"{password_variable(user)}_HASH='{hashed}'" for user, hashed in hashes.items()]  # literal
        write_private(self.compose_env, "\n".join(compose) + "\n")
        return passwords

    def password(self, user: str) -> str:
        return read_password(self.password_file(user))


def read_password(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise CredentialsError(f"no NATS password file {path}") from None


class CredentialsError(Exception):
    """Credentials were configured but cannot be read; the message says where."""


@dataclass(frozen=True)
class Login:
    """Who connects, and with what: passed to nats-py as `user`/`password` with the URL stripped."""

    user: str
    password: str

    def connect_options(self) -> dict[str, str]:
        return {"user": self.user, "password": self.password, "inbox_prefix": inbox_prefix(self.user)}


def strip_userinfo(url: str) -> str:
    """`url` without `user:password@` (nats-py lets a URL's credentials override the options)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, parts.fragment))


def with_login(url: str, login: Login) -> str:
    """`url` carrying `login` as `user:password@` (passwords are URL-safe: see `new_passwords`)."""
    parts = urlsplit(strip_userinfo(url))
    netloc = f"{login.user}:{login.password}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def url_login(url: str) -> Login | None:
    parts = urlsplit(url)
    return Login(parts.username, parts.password or "") if parts.username else None


def resolve_login(
    default_user: str,
    *,
    url: str,
    user: str = "",
    password: str = "",
    password_file: Path | None = None,
    credentials_dir: Path | None = None,
) -> Login | None:
    """The login for `default_user` (or `user` when set), from the first that is configured:
    a password, a password file, a credentials directory holding `<user>.password`, the URL's
    `user:password@`. None: anonymous (a server with auth on refuses it)."""
    name = user or default_user
    if password:
        return Login(name, password)
    if password_file is not None:
        return Login(name, read_password(password_file))
    if credentials_dir is not None:
        return Login(name, read_password(credentials_dir / f"{name}.password"))
    return url_login(url)


class LoginRefused(Exception):
    """The server refused the credentials (wrong or missing password, unknown user)."""


def is_auth_refusal(exc: BaseException) -> bool:
    """Whether a nats-py connect error means "not these credentials" rather than "not reachable"."""
    text = str(exc).lower()
    return isinstance(exc, nats_errors.AuthorizationError) or "authorization" in text or "authentication" in text


def settings_login(settings: Settings, default_user: str) -> Login | None:
    """`resolve_login` from a service's settings (NATS_USER, NATS_PASSWORD, ...)."""
    return resolve_login(
        default_user,
        url=settings.nats_url,
        user=settings.nats_user,
        password=settings.nats_password.get_secret_value() if settings.nats_password else "",
        password_file=settings.nats_password_file,
        credentials_dir=settings.nats_credentials_dir,
    )


def accepts_anonymous(url: str, timeout: float = 3.0) -> bool:
    """Whether the NATS server at `url` lets a client in without credentials."""
    import asyncio

    import nats

    async def quiet(_: Exception) -> None:
        """A refusal is the answer we hope for, not an error to print."""

    async def probe() -> bool:
        try:
            nc = await nats.connect(strip_userinfo(url), allow_reconnect=False, connect_timeout=timeout, error_cb=quiet)
        except (nats_errors.Error, OSError, TimeoutError):
            return False
        await nc.close()
        return True

    return asyncio.run(probe())


COMPOSE_HEADER: Final = """\
# tradebus NATS with auth on: one user per service, a read-only `reader`, an `admin` (R-8,
# DESIGN.md "Who may publish what"). docker-compose.yml starts the server with this file.
#
# Generated from libs/tradebus/src/tradebus/natsauth.py (tests/deploy/test_nats.py holds the two
# equal): change the permissions there, then `.venv/bin/python -m tradebus.natsauth > deploy/nats/auth.conf`.
#
# No password is in this file: NATS_<USER>_PASSWORD comes from the server's environment, either a
# bcrypt hash in double quotes (what `make up` writes to .run/compose.env; see README "Security")
# or the plain password. `nats-server -c auth.conf -t` checks it (the variables must be set).
#
# A service may publish only its own subjects, its heartbeat and dlq.<service>; it reads replies
# only under its own inbox prefix _INBOX_<service>; its JetStream API is narrowed to the contract's
# streams (info/create/update: every service declares them at start) and to its own durables
# (create/info/delete/next, acks). `reader` subscribes to event subjects and reads JetStream
# state. Nothing connects anonymously.
include "nats.conf"

"""


def compose_auth_conf() -> str:
    """deploy/nats/auth.conf: the authorization block with each password from the environment."""
    return COMPOSE_HEADER + render_authorization({user: f"${password_variable(user)}" for user in USERS})


if __name__ == "__main__":
    print(compose_auth_conf(), end="")
