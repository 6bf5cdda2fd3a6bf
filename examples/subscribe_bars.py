"""Print live 5m bars from a running tradebus stack: a minimal subscriber to start a strategy from.

    .venv/bin/python examples/subscribe_bars.py                       # bars.5m.BTCUSDT until Ctrl-C
    .venv/bin/python examples/subscribe_bars.py --subject 'bars.1m.*' --count 3

It logs in as the read-only `reader` user (its password is in the local stack's run directory),
and uses a core NATS subscription: it sees what is published while it runs and leaves nothing on
the server when it exits, so there is nothing to clean up. For replay from the stream and acks, a
strategy needs a durable JetStream consumer and a NATS user of its own (README, "Subscribing").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import nats
import nats.errors

from tradebus.events import BarEvent

DEFAULT_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
DEFAULT_PASSWORD_FILE = Path(".run/credentials/reader.password")


async def main(url: str, password: str, subject: str, count: int | None) -> None:
    nc = await nats.connect(url, user="reader", password=password, inbox_prefix="_INBOX_reader")
    try:
        sub = await nc.subscribe(subject)
        print(f"listening on {subject} at {url} (Ctrl-C to stop)", flush=True)
        seen = 0
        async for msg in sub.messages:
            bar = BarEvent.model_validate_json(msg.data).data
            print(f"{bar.symbol} {bar.interval} {bar.open_time:%Y-%m-%d %H:%M} close {bar.close}", flush=True)
            seen += 1
            if count is not None and seen >= count:
                break
    finally:
        await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="NATS URL (`tradebus status` shows it); default %(default)s")
    parser.add_argument("--password-file", type=Path, default=DEFAULT_PASSWORD_FILE, help="default %(default)s")
    parser.add_argument("--subject", default="bars.5m.BTCUSDT", help="a bars subject; wildcards allowed")
    parser.add_argument("--count", type=int, default=None, help="stop after N bars")
    args = parser.parse_args()
    try:
        secret = os.environ.get("NATS_PASSWORD") or args.password_file.read_text().strip()
    except OSError as exc:
        sys.exit(f"cannot read the reader's password ({exc}); run `make up` first, or set NATS_PASSWORD")
    try:
        asyncio.run(main(args.url, secret, args.subject, args.count))
    except KeyboardInterrupt:
        pass
    except (OSError, nats.errors.Error) as exc:
        sys.exit(f"cannot subscribe at {args.url}: {exc}")
