"""The log file's rotation, as CALLFLOW_LOG_MAX_BYTES and CALLFLOW_LOG_BACKUPS set it."""
from __future__ import annotations

import os
from pathlib import Path

from callflow.config import Settings
from callflow.logging import RotatingLineFile


def test_the_defaults_are_50_mb_and_5_files() -> None:
    settings = Settings(_env_file=None)
    assert (settings.log_max_bytes, settings.log_backups) == (50 * 1024 * 1024, 5)


def test_rotation_keeps_the_configured_number_of_files(tmp_path: Path) -> None:
    path = tmp_path / "callflow.log"
    log = RotatingLineFile(path, max_bytes=100, backups=2)
    for n in range(40):
        log.write_line(f"line {n:03d} " + "x" * 20)
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["callflow.log", "callflow.log.1", "callflow.log.2"]
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())


def test_max_bytes_0_never_rotates_and_follows_logrotate(tmp_path: Path) -> None:
    """0: the file grows; once moved away (logrotate's default), the next lines go to a new file."""
    path = tmp_path / "callflow.log"
    log = RotatingLineFile(path, max_bytes=0, backups=5)
    for n in range(100):
        log.write_line(f"line {n}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["callflow.log"]
    os.replace(path, tmp_path / "callflow.log-20261203")
    log.write_line("after the move")
    log.close()
    assert path.read_text() == "after the move\n"
    assert (tmp_path / "callflow.log-20261203").read_text().count("\n") == 100
