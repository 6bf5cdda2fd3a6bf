"""The console in a real browser: the whole stack on a replay, Debian's chromium driven by Playwright.

Six services and the console run as processes on a private NATS, database and Redis; ingest
replays a seeded two-day history (the last hours trending up, so a long is open at the end). The
page must show the readiness banner, candles on two timeframes, the latest signal with its
agreement as the bus has it, the open position and the decisions, then a signal made by five new
1m bars going through the real pipeline, without reloading. A second console without Redis
rebuilds the same state from the services' APIs. `make test-browser` runs it (`.ci/run` too).
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
import pytest

from tradebus.embedded import free_port
from tradebus.events import BarSource, Mode, encode_bar_event, make_bar
from tradebus.settings import PROCESSES
from tradebus.testing import wait_for
from tradebus.testing.redisserver import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console.png"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
START_MS = int(datetime(2024, 3, 4, tzinfo=UTC).timestamp() * 1000)
MINUTES = 2 * 1440
CENT = Decimal("0.01")
LAST_5M = datetime.fromtimestamp((START_MS / 1000) + (MINUTES - 5) * 60, tz=UTC).isoformat().replace("+00:00", "Z")


def _history(path: Path, symbol: str, price: Decimal, seed: int) -> Decimal:
    """Binance kline rows: regimes of four hours drifting either way, the last eight hours up.
    Returns the last close (the test continues from it)."""
    rng = random.Random(f"console:{seed}:{symbol}")
    drift = 0.0
    with path.open("w", newline="") as handle:
        rows = csv.writer(handle)
        for minute in range(MINUTES):
            if minute % 240 == 0:
                drift = 0.0008 if minute >= MINUTES - 480 else rng.choice((-1, 1)) * rng.uniform(0.0003, 0.0009)
            close = (price * Decimal(str(1 + drift + rng.gauss(0, 0.0005)))).quantize(CENT)
            high, low = max(price, close) + CENT, min(price, close) - CENT
            volume = Decimal(rng.randint(100, 5000)) / 100
            open_ms = START_MS + minute * 60_000
            quote = (volume * close).quantize(CENT)
            rows.writerow(
                [open_ms, price, high, low, close, volume, open_ms + 59_999, quote, rng.randint(10, 400), 0, 0, 0]
            )
            price = close
    return price


@pytest.fixture
def replay(tmp_path: Path) -> dict[str, tuple[Path, Decimal]]:
    out = {}
    for seed, (symbol, price) in enumerate(zip(SYMBOLS, (Decimal("60000.00"), Decimal("3000.00")), strict=True)):
        path = tmp_path / f"{symbol}-1m-2024-03-04.csv"
        out[symbol] = (path, _history(path, symbol, price, seed))
    return out


@dataclass
class Stack:
    urls: dict[str, str]
    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]]
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{tail}")

    def spawn(self, name: str, log_name: str, **env: str) -> None:
        self.extra.append(_spawn(name, {**self.env, **env}, self.logs, log_name))


@pytest.fixture
def stack(
    private_nats_url: str,
    database_url: str,
    private_redis: RedisServer,
    replay: dict[str, tuple[Path, Decimal]],
    tmp_path: Path,
) -> Iterator[Stack]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian: apt-get install chromium)")
    ports = {name: free_port() for name in PROCESSES}
    env = {
        **os.environ,
        "NATS_URL": private_nats_url.rsplit("@", maxsplit=1)[-1],
        "DATABASE_URL": database_url,
        "REDIS_URL": private_redis.url,
        "SYMBOLS": ",".join(SYMBOLS),
        "INGEST_SOURCE": "replay",
        "INGEST_REPLAY_FILES": ",".join(str(path) for path, _ in replay.values()),
        "INGEST_REPLAY_SPEED": "max",
        "INGEST_LIVE": "false",
        "HEARTBEAT_INTERVAL_S": "1",
        "TRADEBUS_API_TOKEN": "browser-token",
        **{f"TRADEBUS_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = {name: _spawn(name, env, logs) for name in PROCESSES}
    stack = Stack({name: f"http://127.0.0.1:{port}" for name, port in ports.items()}, env, logs, procs)
    try:
        yield stack
    finally:
        every = procs | {f"extra {n}": proc for n, proc in enumerate(stack.extra)}
        for proc in every.values():
            proc.send_signal(signal.SIGTERM)
        for name, proc in every.items():
            try:
                assert proc.wait(40) in (0, -signal.SIGTERM), f"{name} exited with {proc.returncode}"
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError(f"{name} did not stop on SIGTERM within 40 s") from None


def _spawn(name: str, env: dict[str, str], logs: Path, log_name: str = "") -> subprocess.Popen[bytes]:
    with (logs / f"{log_name or name}.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", f"tradebus_{name}"], env=env, stdout=log, stderr=log)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def _json(http: httpx.AsyncClient, url: str, **params: Any) -> Any:
    response = await http.get(url, params=params)
    response.raise_for_status()
    return response.json()


def _percent(score: str) -> str:
    """The page's rule: the decimal string times 100, trailing zeros dropped ("0.6667" -> "66.67")."""
    return f"{format((Decimal(score) * 100).normalize(), 'f')}%"


async def _last_signal(nats_url: str, symbol: str) -> dict[str, Any]:
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.jetstream().get_last_msg("SIGNALS", f"signals.{symbol}")
        event: dict[str, Any] = orjson.loads(msg.data or b"{}")
        return event
    finally:
        await nc.close()


async def _publish_minutes(nats_url: str, symbol: str, price: Decimal, first_minute: int, count: int) -> int:
    """`count` more 1m bars of a replay, as ingest would publish them; the open time (ms) of the 5m bar."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for minute in range(first_minute, first_minute + count):
            close = (price * Decimal("1.001")).quantize(CENT)
            bar = make_bar(
                symbol=symbol,
                interval="1m",
                open_ms=START_MS + minute * 60_000,
                open_=price,
                high=close + CENT,
                low=price - CENT,
                close=close,
                volume=Decimal("12.5"),
                quote_volume=(Decimal("12.5") * close).quantize(CENT),
                trades=40,
                source=BarSource.REPLAY,
            )
            payload, msg_id = encode_bar_event(bar, source="ingest", mode=Mode.REPLAY)
            await js.publish(f"bars.1m.{symbol}", payload, headers={"Nats-Msg-Id": msg_id})
            price = close
    finally:
        await nc.close()
    return START_MS + first_minute * 60_000


async def test_the_console_page_in_a_browser(
    stack: Stack,
    http: httpx.AsyncClient,
    private_nats_url: str,
    replay: dict[str, tuple[Path, Decimal]],
) -> None:
    from playwright.async_api import async_playwright, expect

    urls = stack.urls
    console = urls["console"]

    async def replayed() -> bool:
        stack.check_alive()
        try:
            meta = await _json(http, f"{urls['aggregator']}/v1/meta/instruments")
            positions = await _json(http, f"{urls['risk']}/v1/positions")
            state = await _json(http, f"{console}/v1/console/state")
        except httpx.HTTPError:
            return False
        counts = {i["symbol"]: i["bars"] for i in meta["instruments"]}
        entries = {p["symbol"]: p["entry_price"] for p in positions}
        shown = {s: p["entry_price"] for s, p in state["positions"].items()}
        last_signals = {s: state["signals"].get(s, {}).get("bar_time") for s in SYMBOLS}
        seen[:] = [counts, entries, shown, last_signals]
        done = all(counts.get(s, {}).get("1m") == MINUTES for s in SYMBOLS)
        return done and bool(entries) and entries == shown and set(last_signals.values()) == {LAST_5M}

    seen: list[Any] = []

    try:
        await wait_for(replayed, timeout=300, what="the replay through the pipeline")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: bars, entries at risk, on the console, last signals: {seen}") from None
    positions = await _json(http, f"{urls['risk']}/v1/positions")
    symbol = positions[0]["symbol"]

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1440, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        expected = ("status of 401", "status of 422")  # the wrong token and the unknown symbol below
        page.on(
            "console",
            lambda msg: (
                errors.append(msg.text) if msg.type == "error" and not any(e in msg.text for e in expected) else None
            ),
        )
        await page.goto(f"{console}/?symbol={symbol}&interval=1h")
        await page.evaluate("window.__sameDocument = true")

        # the readiness banner says what telemetry says
        readiness = await _json(http, f"{urls['telemetry']}/v1/readiness")
        await expect(page.locator("#readiness")).to_have_attribute("data-status", readiness["status"], timeout=15_000)
        await expect(page.locator("#readiness-status")).to_have_text(readiness["status"])

        # candles on two timeframes, as many as the aggregator serves
        for interval in ("1h", "5m"):
            await page.click(f"#intervals button[data-interval='{interval}']")
            bars = await _json(http, f"{urls['aggregator']}/v1/bars", symbol=symbol, interval=interval, limit=500)
            assert bars, f"no {interval} bars"
            await expect(page.locator("#chart")).to_have_attribute("data-interval", interval)
            await expect(page.locator("#chart")).to_have_attribute("data-candles", str(len(bars)))
        assert await page.locator("#chart canvas").count() > 0

        # the latest signal, its agreement the bus's agreement_score as a percentage
        last = await _last_signal(private_nats_url, symbol)
        await expect(page.locator("#signal")).to_have_attribute("data-event-id", last["event_id"])
        await expect(page.locator("#signal-agreement")).to_have_text(
            _percent(last["data"]["consensus"]["agreement_score"])
        )
        await expect(page.locator("#signal-state")).to_have_text(last["data"]["state"].replace("_", " "))
        assert await page.locator("#horizons tbody tr").count() == len(last["data"]["horizons"])

        # the open position and the decisions that led to it
        row = page.locator(f"#positions tbody tr[data-symbol='{symbol}']")
        await expect(row).to_have_count(1)

        async def entry_as_risk_has_it() -> bool:  # risk may still be settling the replay's last minutes
            at_risk = {p["symbol"]: p["entry_price"] for p in await _json(http, f"{urls['risk']}/v1/positions")}
            return at_risk.get(symbol) == await row.locator("td").nth(2).text_content()

        await wait_for(entry_as_risk_has_it, timeout=30, what="the position's entry as risk reports it")
        assert await page.locator("#decisions li[data-outcome='accepted']").count() >= 1
        await expect(page.locator("#account-figures")).to_contain_text("equity")

        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.click("#intervals button[data-interval='1h']")
        await expect(page.locator("#chart")).to_have_attribute("data-interval", "1h")
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

        # five more minutes through ingest's subject: a 5m bar, a new signal, shown without reloading
        path_price = replay[symbol][1]
        bar_ms = await _publish_minutes(private_nats_url, symbol, path_price, MINUTES, 5)
        await expect(page.locator("#signal")).to_have_attribute(
            "data-event-id", f"signal:{symbol}:5m:{bar_ms}", timeout=60_000
        )
        assert await page.evaluate("window.__sameDocument") is True

        # the one mutating action: risk reset with the admin token, sent once and kept nowhere
        await page.click("#reset")
        await page.fill("#reset-token", "wrong-token")
        await page.click("#reset-form button[type=submit]")
        await expect(page.locator("#reset-result")).to_contain_text("refused (401)")
        await page.fill("#reset-token", "browser-token")
        await page.click("#reset-form button[type=submit]")
        await expect(page.locator("#reset-result")).to_have_text("risk reset: trading resumes")
        assert await page.input_value("#reset-token") == ""
        kept = await page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie")
        assert "browser-token" not in kept
        await page.click("#reset-cancel")

        # a string with HTML in it is shown as text, never run or parsed
        await page.goto(f"{console}/?symbol=%3Cimg%20src%3Dx%3E&interval=1h")
        await expect(page.locator("#chart-message")).to_contain_text("<img src=x>")
        assert await page.locator("#chart-message img, #symbol img").count() == 0

        # a phone's width: no sideways scrolling; the light theme
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.goto(f"{console}/?symbol={symbol}")
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        before = await page.evaluate("document.documentElement.dataset.theme")
        await page.click("#theme")
        after = await page.evaluate("document.documentElement.dataset.theme")
        assert {before, after} == {"dark", "light"}
        await browser.close()
    assert not errors, errors

    # without Redis a console rebuilds the state from the services' APIs and the streams
    port = free_port()
    stack.spawn("console", "console-without-redis", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                TRADEBUS_CONSOLE_PORT=str(port))  # fmt: skip
    rebuilt = f"http://127.0.0.1:{port}"

    async def from_services() -> bool:
        try:
            state = await _json(http, f"{rebuilt}/v1/console/state")
        except httpx.HTTPError:
            return False
        return bool(state["source"] == "services")

    await wait_for(from_services, timeout=60, what="the state rebuilt without redis")
    state = await _json(http, f"{rebuilt}/v1/console/state")
    assert state["signals"][symbol]["event_id"] == f"signal:{symbol}:5m:{bar_ms}"
    assert set(state["positions"]) == {p["symbol"] for p in await _json(http, f"{urls['risk']}/v1/positions")}
    assert state["account"]["equity"] and state["readiness"]["status"]
    ready = await _json(http, f"{rebuilt}/health/ready")
    assert ready["status"] == "degraded" and not ready["checks"]["redis"]["ok"]
