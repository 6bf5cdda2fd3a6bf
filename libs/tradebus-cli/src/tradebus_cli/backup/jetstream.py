"""JetStream stream snapshots and restores over the server's own API (nats-py has neither).

`$JS.API.STREAM.SNAPSHOT.<stream>` streams the stream's store (messages with their subjects,
headers, sequence numbers and timestamps, and every durable consumer with its delivered and ack
state) to an inbox in chunks, each carrying a reply subject to ack for flow control; an empty
message ends it. `$JS.API.STREAM.RESTORE.<stream>` answers with a subject to send the chunks to
(each request acked), an empty request finishes it and answers with the new stream's info. Why a
snapshot and not a re-publish of the messages: docs/ARCHITECTURE.md "Backups".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout

API_TIMEOUT_S: Final = 10.0
CHUNK_TIMEOUT_S: Final = 30.0
CHUNK_BYTES: Final = 128 * 1024
END_OF_SNAPSHOT: Final = "204"


class JetStreamApiError(Exception):
    """The server refused or did not answer a JetStream API request; the message says which."""


@dataclass(frozen=True)
class StreamSnapshot:
    """What the restore request needs besides the bytes: the stream's config and state as saved."""

    name: str
    config: dict[str, Any]
    state: dict[str, Any]
    size: int


async def api(nc: Client, subject: str, body: dict[str, Any] | None = None, timeout: float = API_TIMEOUT_S) -> Any:
    """A JetStream API request; its decoded answer, or JetStreamApiError with the server's reason."""
    try:
        reply = await nc.request(f"$JS.API.{subject}", json.dumps(body).encode() if body else b"", timeout=timeout)
    except NatsTimeout:
        raise JetStreamApiError(f"no answer to $JS.API.{subject} within {timeout:g} s (permissions?)") from None
    except NatsError as exc:  # no responders: JetStream is not enabled on that server
        raise JetStreamApiError(f"$JS.API.{subject}: {exc or type(exc).__name__}") from None
    answer = json.loads(reply.data or b"{}")
    if error := answer.get("error"):
        raise JetStreamApiError(f"$JS.API.{subject}: {error.get('description', error)}")
    return answer


async def stream_names(nc: Client) -> list[str]:
    return sorted((await api(nc, "STREAM.NAMES")).get("streams") or [])


async def stream_info(nc: Client, stream: str) -> dict[str, Any]:
    info: dict[str, Any] = await api(nc, f"STREAM.INFO.{stream}")
    return info


async def consumers(nc: Client, stream: str) -> list[dict[str, Any]]:
    """Every consumer of `stream` with its config and state (one page: the contract has a handful)."""
    found: list[dict[str, Any]] = (await api(nc, f"CONSUMER.LIST.{stream}")).get("consumers") or []
    return found


async def snapshot(nc: Client, stream: str, out: BinaryIO) -> StreamSnapshot:
    """Write `stream`'s snapshot (with its consumers) to `out`."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    size = 0
    try:
        request = {"deliver_subject": inbox, "no_consumers": False, "chunk_size": CHUNK_BYTES}
        answer = await api(nc, f"STREAM.SNAPSHOT.{stream}", request)
        while True:
            try:
                msg: Msg = await sub.next_msg(timeout=CHUNK_TIMEOUT_S)
            except NatsTimeout:
                raise JetStreamApiError(f"snapshot of {stream}: no chunk within {CHUNK_TIMEOUT_S:g} s") from None
            status = (msg.headers or {}).get("Status", "")
            if status and status != END_OF_SNAPSHOT:
                raise JetStreamApiError(f"snapshot of {stream}: {status} {(msg.headers or {}).get('Description', '')}")
            if not msg.data:  # the end: an empty message (with status 204 from nats-server 2.9)
                break
            out.write(msg.data)
            size += len(msg.data)
            if msg.reply:
                await nc.publish(msg.reply, b"")
    finally:
        await sub.unsubscribe()
    return StreamSnapshot(stream, answer["config"], answer["state"], size)


async def delete_stream(nc: Client, stream: str) -> None:
    await api(nc, f"STREAM.DELETE.{stream}")


async def restore(
    nc: Client, stream: str, config: dict[str, Any], state: dict[str, Any], chunks: Iterable[bytes]
) -> dict[str, Any]:
    """Create `stream` from its snapshot's bytes and its saved config and state (the stream must
    not exist); its new info."""
    answer = await api(nc, f"STREAM.RESTORE.{stream}", {"config": config, "state": state})
    deliver = answer["deliver_subject"]
    for chunk in chunks:
        try:
            await nc.request(deliver, chunk, timeout=CHUNK_TIMEOUT_S)
        except NatsTimeout:
            raise JetStreamApiError(f"restore of {stream}: a chunk was not acknowledged") from None
    try:
        done = await nc.request(deliver, b"", timeout=CHUNK_TIMEOUT_S * 4)
    except NatsTimeout:
        raise JetStreamApiError(f"restore of {stream}: the server did not finish") from None
    info: dict[str, Any] = json.loads(done.data or b"{}")
    if error := info.get("error"):
        raise JetStreamApiError(f"restore of {stream}: {error.get('description', error)}")
    return info
