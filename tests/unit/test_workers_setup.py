"""``CALLFLOW_WORKERS`` / ``--workers``, a worker's own files, and the supervisor's port reservation."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from callflow.config import Settings
from callflow.entrypoints.cli import main
from callflow.entrypoints.supervisor import reserve_port
from callflow.entrypoints.worker import WorkerSlot


@pytest.mark.parametrize("value, count", [("1", 1), ("3", 3), (" 2 ", 2)])
def test_workers_as_a_number(value: str, count: int) -> None:
    assert Settings(_env_file=None, workers=value).worker_count == count


def test_auto_is_the_usable_cores() -> None:
    assert Settings(_env_file=None, workers="auto").worker_count == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ""])
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, workers=value)


def test_the_command_line_refuses_a_bad_count(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", "none"])
    assert exited.value.code == 2 and "not a number of workers" in capsys.readouterr().err


def test_a_worker_has_its_own_outbox_log_file_and_a_private_http_port(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", log_dir=tmp_path / "log", http_port=9108)
    worker = WorkerSlot(2, 4, os.getpid(), tmp_path, settings.outbox_file)
    mine = worker.settings_for(settings)
    assert mine.outbox_file == tmp_path / "data" / "outbox-2.sqlite3"
    assert mine.log_path == tmp_path / "log" / "callflow-2.log"
    assert (mine.http_host, mine.http_port) == ("127.0.0.1", 0)
    assert mine.agi_port == settings.agi_port


def test_the_reserved_port_takes_no_connection_and_workers_can_share_it() -> None:
    """Bound, not listening: a connection is refused until a worker listens with SO_REUSEPORT."""
    held, port = reserve_port("127.0.0.1", 0)
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        worker = socket.socket()
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind(("127.0.0.1", port))
        worker.listen(8)
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        worker.close()
    finally:
        for sock in held:
            sock.close()


def test_a_port_another_server_listens_on_is_refused() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(8)
        with pytest.raises(OSError):
            reserve_port("127.0.0.1", other.getsockname()[1])


def test_restart_delay_doubles_with_young_deaths_up_to_ten_seconds() -> None:
    from callflow.entrypoints.supervisor import restart_delay

    assert [restart_delay(n) for n in (0, 1, 2, 3, 6, 7, 20)] == [0.2, 0.2, 0.4, 0.8, 6.4, 10.0, 10.0]


def test_run_directories_of_dead_supervisors_are_removed(tmp_path: Path) -> None:
    """Left by a supervisor that was killed: removed; a live one's and a foreign one's: kept."""
    import subprocess
    import sys

    from callflow.entrypoints.supervisor import RUN_DIR_PREFIX, remove_stale_run_dirs

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for name, pid in (("dead", gone.stdout.strip()), ("live", str(os.getpid())), ("foreign", None)):
        run_dir = tmp_path / f"{RUN_DIR_PREFIX}{name}"
        run_dir.mkdir()
        if pid is not None:
            (run_dir / "supervisor.pid").write_text(pid)
    remove_stale_run_dirs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{RUN_DIR_PREFIX}foreign", f"{RUN_DIR_PREFIX}live"]


async def test_the_supervisors_ops_port_keeps_the_allowlist_and_the_connection_cap(tmp_path: Path) -> None:
    """The supervisor answers the operator's port in place of the workers: the same
    CALLFLOW_HTTP_ALLOWED_NETWORKS (loopback always) and CALLFLOW_HTTP_MAX_CONNECTIONS as a single
    server (ADR 0082)."""
    import asyncio
    import shutil

    from callflow.entrypoints.supervisor import Supervisor

    settings = Settings(_env_file=None, http_host="127.0.0.1", http_port=0, http_allowed_networks="10.0.0.0/8",
                        http_max_connections=3, outbox_path=str(tmp_path / "outbox.db"))
    supervisor = Supervisor(settings, 2)
    ops = await supervisor._start_http()
    try:
        assert ops is not None
        assert ops._waiting.limit == 3
        assert ops._sources is not None
        assert ops._sources.allows("10.1.2.3") and not ops._sources.allows("192.168.1.5")
        reader, writer = await asyncio.open_connection("127.0.0.1", ops.port)
        writer.write(b"GET /metrics HTTP/1.1\r\n\r\n")
        reply = await asyncio.wait_for(reader.read(), 2.0)
        writer.close()
        assert reply.startswith(b"HTTP/1.1 200") and b"callflow_workers 0.0" in reply
    finally:
        if ops is not None:
            await ops.stop()
        shutil.rmtree(supervisor.run_dir, ignore_errors=True)
