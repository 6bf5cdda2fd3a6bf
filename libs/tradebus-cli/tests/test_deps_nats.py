"""Which NATS a local stack uses: its own with auth on, unless NATS_URL names one; a named server
that lets anonymous clients in is used, but reported loudly."""

from __future__ import annotations

from pathlib import Path

from tradebus.embedded import EmbeddedNats
from tradebus.natsauth import Credentials
from tradebus_cli.deps import ANONYMOUS_WARNING, Embedded, resolve_nats


def test_a_named_server_that_admits_anonymous_clients_is_reported(tmp_path: Path) -> None:
    open_server = EmbeddedNats(tmp_path / "open").start()  # no auth: what this test is about
    credentials = Credentials(tmp_path / "credentials")
    credentials.generate()  # left over from an earlier embedded run
    embedded = Embedded()
    try:
        dep = resolve_nats(open_server.url, tmp_path, embedded, credentials)
    finally:
        open_server.stop()
    assert embedded.nats is None and not dep.embedded
    assert ANONYMOUS_WARNING in dep.detail and not dep.credentials_dir
    assert not credentials.directory.exists()  # they were for another server


def test_a_named_server_with_auth_on_is_used_as_it_is(tmp_path: Path, nats_url: str) -> None:
    embedded = Embedded()
    dep = resolve_nats(nats_url, tmp_path, embedded, Credentials(tmp_path / "credentials"))
    assert embedded.nats is None and dep.url == nats_url
    assert "ANONYMOUS" not in dep.detail and "login required" in dep.detail
