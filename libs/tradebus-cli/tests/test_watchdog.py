"""The watchdog's judgement against real HTTP answers: a 503 or a timeout is a miss, a refused
connection (nothing listening yet) is not; restarts stop at the hourly limit and say so once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tradebus.embedded import free_port
from tradebus_cli.watchdog import Watchdog, WatchdogPolicy, probe


@contextmanager
def _answering(status: int, delay_s: float = 0.0) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(delay_s)
            body = b'{"status": "stalled", "detail": "no progress: bars"}'
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_probe_outcomes() -> None:
    with _answering(200) as url:
        assert probe(url) is None
    with _answering(503) as url:
        assert probe(url) == "HTTP 503: no progress: bars"
    with _answering(200, delay_s=3.0) as url:
        assert probe(url) == "no answer within 2 s (ReadTimeout)"
    assert probe(f"http://127.0.0.1:{free_port()}") is None  # nothing listens yet: starting, not hung


def test_restarts_wait_for_the_misses_and_stop_at_the_hourly_limit() -> None:
    watchdog = Watchdog(WatchdogPolicy(misses=2, grace_s=10.0, max_per_hour=2), ["risk"])
    try:
        with _answering(503) as url:
            assert watchdog.round(0.0, {"risk": (url, 0.0)}) == {}  # in its grace: not probed
            verdicts = [watchdog.round(t, {"risk": (url, 0.0)}) for t in (10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0)]
        restart = {"risk": "/health/live failed 2 times in a row (HTTP 503: no progress: bars)"}
        assert verdicts == [{}, restart, {}, restart, {}, {"risk": ""}, {}]  # then quiet: said once
        with _answering(200) as url:
            assert watchdog.round(HOUR_LATER, {"risk": (url, 0.0)}) == {}
    finally:
        watchdog.close()


HOUR_LATER = 3700.0
