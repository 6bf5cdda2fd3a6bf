"""INGEST_* environment variables as the service reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tradebus_ingest.app import build_service
from tradebus_ingest.settings import IngestSettings


def test_defaults() -> None:
    settings = IngestSettings()
    assert settings.ingest_source == "auto"
    assert settings.backfill_days == 30
    assert settings.ingest_seed == 42
    assert settings.ingest_replay_files == ()
    assert settings.ingest_replay_speed is None
    assert settings.ingest_live is True


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_SOURCE", "replay")
    monkeypatch.setenv("BACKFILL_DAYS", "0.05")
    monkeypatch.setenv("INGEST_SEED", "7")
    monkeypatch.setenv("INGEST_REPLAY_FILES", "a.csv, data/*.zip ,")
    monkeypatch.setenv("INGEST_REPLAY_SPEED", "60x")
    monkeypatch.setenv("INGEST_LIVE", "false")
    monkeypatch.setenv("SYMBOLS", "solusdt,BTCUSDT")
    settings = IngestSettings()
    assert settings.ingest_source == "replay"
    assert settings.backfill_days == 0.05
    assert settings.ingest_seed == 7
    assert settings.ingest_replay_files == ("a.csv", "data/*.zip")
    assert settings.ingest_replay_speed == 60.0
    assert settings.ingest_live is False
    assert settings.symbols == ("SOLUSDT", "BTCUSDT")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INGEST_SOURCE", "binance"),
        ("BINANCE_WS_SILENCE_S", "0"),
        ("INGEST_REPLAY_SPEED", "0"),
        ("BACKFILL_DAYS", "-1"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        IngestSettings()


def test_replay_without_usable_files_refuses_to_build(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="INGEST_REPLAY_FILES"):
        build_service(IngestSettings(ingest_source="replay"))
    with pytest.raises(FileNotFoundError):
        build_service(IngestSettings(ingest_source="replay", ingest_replay_files=str(tmp_path / "none.csv")))


def test_binance_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert IngestSettings().binance_rest_url == "https://api.binance.com"
    assert IngestSettings().binance_ws_url == "wss://stream.binance.com:9443"
    assert IngestSettings().binance_ws_max_age_s < 24 * 3600
    monkeypatch.setenv("INGEST_SOURCE", "ws")
    monkeypatch.setenv("BINANCE_REST_URL", "http://127.0.0.1:8999/")
    monkeypatch.setenv("BINANCE_WS_URL", "ws://127.0.0.1:8998")
    monkeypatch.setenv("BINANCE_WS_SILENCE_S", "0.5")
    monkeypatch.setenv("BINANCE_BACKOFF_S", "0.1")
    settings = IngestSettings()
    assert settings.ingest_source == "ws"
    assert settings.binance_rest_url == "http://127.0.0.1:8999"
    assert settings.binance_ws_url == "ws://127.0.0.1:8998"
    assert (settings.binance_ws_silence_s, settings.binance_backoff_s) == (0.5, 0.1)
