"""``callflow serve`` and ``config show`` refuse bad settings before anything starts (one line, exit 2),
and SIGTERM stops ``serve`` in every phase of its start-up (ADR 0081)."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from callflow.entrypoints.commands import serve as serve_command
from callflow.entrypoints.commands.serve import serve
from tests.conftest import AMQP_URL, REDIS_URL

pytestmark = pytest.mark.integration

PASSWORD = "s3cr3t-pw"
BAD = {
    "redis port": {"CALLFLOW_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:notaport/0"},
    "redis scheme": {"CALLFLOW_REDIS_URL": "http://x"},
    "redis not a url": {"CALLFLOW_REDIS_URL": "not a url"},
    "amqp port": {"CALLFLOW_AMQP_URL": f"amqp://guest:{PASSWORD}@127.0.0.1:99999/"},
    "second amqp url": {"CALLFLOW_AMQP_URL": f"amqp://guest:{PASSWORD}@127.0.0.1:5672/,amqp://h:x/"},
}


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLOW_")}
    env.update(
        CALLFLOW_AGI_PORT="0", CALLFLOW_HTTP_PORT="0", CALLFLOW_REDIS_URL=REDIS_URL, CALLFLOW_AMQP_URL=AMQP_URL,
        CALLFLOW_DATA_DIR=str(tmp_path / "data"), CALLFLOW_LOG_DIR=str(tmp_path / "log"),
        CALLFLOW_LOG_FORMAT="json", CALLFLOW_LOG_LEVEL="INFO",
    )
    env.update(settings)
    return env


async def run(tmp_path: Path, *args: str, env: dict[str, str], timeout: float = 30.0) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow", *args, cwd=str(tmp_path), env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"callflow {' '.join(args)} did not exit within {timeout} s") from None
    return process.returncode, err.decode(errors="replace")


@pytest.mark.parametrize("command", [("serve",), ("config", "show")])
@pytest.mark.parametrize("case", sorted(BAD))
async def test_a_bad_url_is_one_line_and_exit_2(tmp_path: Path, command: tuple[str, ...], case: str) -> None:
    code, err = await run(tmp_path, *command, env=environment(tmp_path, **BAD[case]), timeout=20)
    name = next(iter(BAD[case]))
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"callflow: invalid configuration: {name}: "), err
    assert PASSWORD not in err and "Traceback" not in err


@pytest.mark.parametrize("delay_s", [0.0, 0.15, 0.3, 0.5, 0.8, 1.2, 2.0])
async def test_sigterm_in_any_phase_of_the_start_up_exits_0_at_once(tmp_path: Path, delay_s: float) -> None:
    """Before the loop, while the clients open, while listening: exit 0 within seconds, no traceback."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow", "serve", cwd=str(tmp_path), env=environment(tmp_path),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    await asyncio.sleep(delay_s)
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    try:
        _, err = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = err.decode(errors="replace")
    # 0; or killed by the signal before Python had loaded anything (then nothing was logged)
    assert process.returncode == 0 or (process.returncode == -signal.SIGTERM and not text), text[-2000:]
    assert "Traceback" not in text and "CancelledError" not in text, text[-2000:]
    assert time.monotonic() - started < 15


async def test_a_start_up_that_hangs_is_stopped_by_the_signal(make_settings) -> None:
    """A URL the checks would refuse, slipped past them: the clients' start-up breaks and never
    finishes (the hang once seen with a mistyped Redis port). A stop still ends ``serve`` at once."""
    settings = make_settings().model_copy(update={"redis_url": SecretStr(f"redis://:{PASSWORD}@127.0.0.1:notaport/0")})
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.0, stop.set)
    started = time.monotonic()
    with capture_logs() as logs:
        code = await asyncio.wait_for(serve(settings, stop), 20)
    took = time.monotonic() - started
    assert code in (0, 1) and took < 15, (code, took, logs)  # the log says which step held it
    assert not any(line.get("exc_info") for line in logs)
    assert PASSWORD not in repr(logs)


async def test_a_start_up_that_never_finishes_is_given_up_with_exit_1(monkeypatch) -> None:
    """Past STARTUP_TIMEOUT_S the start-up is cancelled and reported on one line: exit 1."""
    monkeypatch.setattr(serve_command, "STARTUP_TIMEOUT_S", 0.2)
    with pytest.raises(serve_command.StartupFailed, match="did not finish within 0.2 s"):
        await serve_command._start_unless_stopped(asyncio.sleep(30), asyncio.Event())


async def test_a_start_up_that_fails_is_one_line() -> None:
    async def fails() -> None:
        raise ValueError("Port could not be cast to integer value as 'notaport'")

    with pytest.raises(serve_command.StartupFailed, match="ValueError: Port could not"):
        await serve_command._start_unless_stopped(fails(), asyncio.Event())


async def test_a_bad_port_on_the_command_line_is_exit_2(tmp_path: Path) -> None:
    code, err = await run(tmp_path, "serve", "--port", "99999", env=environment(tmp_path), timeout=20)
    assert code == 2 and "between 0 and 65535" in err and "Traceback" not in err


async def test_a_start_up_cancelled_from_within_is_a_failure_not_a_stop() -> None:
    """A start-up task that ends cancelled while nobody asked to stop is reported: exit 1, not 0."""
    async def cancels_itself() -> None:
        raise asyncio.CancelledError()

    with pytest.raises(serve_command.StartupFailed, match="cancelled from within"):
        await serve_command._start_unless_stopped(cancels_itself(), asyncio.Event())
