"""`tradebus logs`: the end of a large log file, read backwards."""

from __future__ import annotations

from pathlib import Path

from tradebus_cli.logs import last_lines


def test_last_lines_of_a_file_larger_than_one_read(tmp_path: Path) -> None:
    log = tmp_path / "ingest.log"
    log.write_text("".join(f'{{"event": "line {i}"}}\n' for i in range(20_000)))
    assert last_lines(log, 3) == ['{"event": "line 19997"}', '{"event": "line 19998"}', '{"event": "line 19999"}']
    assert len(last_lines(log, 5000)) == 5000
    assert last_lines(log, 0) == []


def test_last_lines_of_a_short_or_empty_file(tmp_path: Path) -> None:
    log = tmp_path / "risk.log"
    log.write_text("only\nlines\n")
    assert last_lines(log, 50) == ["only", "lines"]
    log.write_text("")
    assert last_lines(log, 50) == []
