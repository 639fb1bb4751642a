"""The CLI's one error path (ADR 0083): bad input is one line on stderr and exit 2, a service out
of reach is 3, and no input makes a traceback. Each command runs as a process, as an operator runs it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest
import redis

from tests.conftest import AMQP_URL, REDIS_URL
from tests.support.redis_process import free_port

pytestmark = pytest.mark.integration

PASSWORD = "the-right-one"


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLOW_")}
    env.update(CALLFLOW_REDIS_URL=REDIS_URL, CALLFLOW_AMQP_URL=AMQP_URL,
               CALLFLOW_DATA_DIR=str(tmp_path / "data"), CALLFLOW_LOG_DIR=str(tmp_path / "log"))
    env.update(settings)
    return env


def callflow(tmp_path: Path, *args: str, stdin: bytes = b"", **settings: str) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "callflow", *args], cwd=str(tmp_path), input=stdin,
                          env=environment(tmp_path, **settings), capture_output=True, timeout=60)
    return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("args, settings", [
    (["blacklist", "check", "0912406496"], {"CALLFLOW_REDIS_URL": "not a url"}),
    (["stats", "c1"], {"CALLFLOW_REDIS_URL": "redis://127.0.0.1:63x79/0"}),
    (["events", "tail", "c1", "--idle-timeout", "1"], {"CALLFLOW_AMQP_URL": "amqp://guest:guest@127.0.0.1:56x72/"}),
    (["vip", "list"], {"CALLFLOW_REDIS_URL": "http://x"}),
])
def test_a_bad_url_is_one_line_and_exit_2(tmp_path: Path, args: list[str], settings: dict[str, str]) -> None:
    code, _, err = callflow(tmp_path, *args, **settings)
    assert (code, one_line(err)) == (2, True), err


def test_a_200000_character_csv_field_is_one_line_and_exit_2(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    big.write_text("number\n" + "9" * 200_000 + "\n", encoding="utf-8")
    code, _, err = callflow(tmp_path, "blacklist", "import", str(big))
    assert (code, "Traceback" in err) == (2, False), err
    assert "line 2" in err and "field larger than field limit" in err


def test_a_byte_order_mark_on_standard_input_is_tolerated(tmp_path: Path) -> None:
    """Excel's BOM before the first number read from ``import -``: the number is added, exit 0."""
    number = "0912000817"
    try:
        code, _, err = callflow(tmp_path, "vip", "import", "-", stdin=b"\xef\xbb\xbf" + number.encode() + b"\n")
        assert code == 0, err
        assert "1 added" in err
    finally:
        callflow(tmp_path, "vip", "remove", number)


def test_outbox_status_on_a_corrupt_file_is_bad_input_not_unreachable(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "outbox.sqlite3").write_bytes(b"garbage" * 1000)
    code, _, err = callflow(tmp_path, "outbox", "status")
    assert (code, one_line(err)) == (2, True), err


@pytest.fixture
def redis_with_password() -> Iterator[str]:
    """A Redis of the test's own that requires a password (the shared one has none)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--requirepass", PASSWORD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port, password=PASSWORD).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize("args", [["blacklist", "check", "0912406496"], ["vip", "list"], ["stats", "c1"]])
def test_a_wrong_redis_password_says_authentication_failed(tmp_path: Path, redis_with_password: str,
                                                           args: list[str]) -> None:
    code, _, err = callflow(tmp_path, *args, CALLFLOW_REDIS_URL=f"redis://:wrong@{redis_with_password}/0")
    assert (code, one_line(err)) == (2, True), err
    assert "authentication failed" in err and "wrong" not in err.replace("wrong password", "")
    assert "timeout" not in err


def test_the_right_password_still_works(tmp_path: Path, redis_with_password: str) -> None:
    code, _, err = callflow(tmp_path, "blacklist", "check", "0912406496",
                            CALLFLOW_REDIS_URL=f"redis://:{PASSWORD}@{redis_with_password}/0")
    assert code == 1, err  # not on the list


def test_an_unexpected_error_is_one_line(monkeypatch, capsys) -> None:
    """Whatever a verb raises that nobody foresaw: one line, exit 1, no traceback."""
    from callflow.entrypoints import cli

    def broken(args: object) -> Optional[int]:
        raise RuntimeError("something\nbroke")

    parser = cli.build_parser(None)
    monkeypatch.setattr(cli, "build_parser", lambda command: parser)
    parser.set_defaults(func=broken)
    subparsers = next(a for a in parser._actions if a.dest == "command")
    subparsers.choices["config"].set_defaults(func=broken)  # type: ignore[union-attr]
    assert cli.main(["config"]) == 1
    err = capsys.readouterr().err
    assert err == "callflow config: unexpected error: RuntimeError: something broke\n"
