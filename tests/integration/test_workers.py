"""``callflow serve --workers 2``: one port, calls on both workers, a killed worker restarted, SIGTERM
drains every worker, /metrics summed, a second server refused, stranded outbox files relayed."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

from callflow.adapters.clock import SystemClock
from callflow.adapters.sqlite_outbox import SQLiteOutbox
from callflow.domain.envelope import EventEnvelope
from tests.conftest import AMQP_URL
from tests.integration.serve_support import metric_samples, readiness, sample, wait_for_readiness
from tests.integration.workers_support import serve_env, start_workers, worker_pids
from tests.support.broker import take_all
from tests.support.fake_asterisk import call

pytestmark = pytest.mark.integration
ANSWERED = {"OK", "DEGRADED"}  # checkphone fails open when Redis is slow under the burst: still an answer


async def checkphone_calls(port: int, count: int, **options: object) -> list[str]:
    results = await asyncio.gather(*(call("127.0.0.1", port, route="checkphone", args=["0912406496"], **options)
                                     for _ in range(count)))
    return [str(result.status) for result in results]


async def test_calls_go_to_both_workers_and_metrics_are_their_sum(tmp_path: Path) -> None:
    """40 calls on one port: both workers serve some; /metrics counts all 40 and 2 workers."""
    served = await start_workers(tmp_path)
    try:
        statuses = await checkphone_calls(served.agi_port, 40)
        await asyncio.sleep(0.3)  # the workers' summary lines are written in 50 ms batches
        samples = await metric_samples(served.http_port)
    finally:
        await served.stop()
    assert set(statuses) <= ANSWERED, statuses
    per_worker = served.sessions_per_worker()
    assert sorted(per_worker) == [0, 1] and sum(per_worker.values()) == 40, per_worker
    answered = sum(sample(samples, "callflow_agi_outcomes_total", route="checkphone", status=s) for s in ANSWERED)
    assert answered == 40
    assert sample(samples, "callflow_workers") == 2
    assert ("callflow_agi_sessions_in_flight", ()) in samples  # a livesum gauge, written by each worker
    assert sample(samples, "callflow_outbox_depth") == 0


async def test_a_worker_killed_is_restarted_and_its_counts_kept(tmp_path: Path) -> None:
    """kill -9 of worker 0: the supervisor logs it, starts a new one in its slot, /readyz is ready
    again with both workers; the calls the dead worker served still count in /metrics."""
    served = await start_workers(tmp_path)
    try:
        await wait_for_readiness(served.http_port, True, 20)
        before = await worker_pids(served.http_port)
        await checkphone_calls(served.agi_port, 20)
        os.kill(int(before[0] or 0), signal.SIGKILL)
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            pids = await worker_pids(served.http_port)
            status, _ = await readiness(served.http_port)
            if status == 200 and pids[0] not in (None, before[0]):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("worker 0 was not restarted")
        statuses = await checkphone_calls(served.agi_port, 20)
        samples = await metric_samples(served.http_port)
        assert pids[1] == before[1]
        assert set(statuses) <= ANSWERED
        answered = sum(sample(samples, "callflow_agi_outcomes_total", route="checkphone", status=s) for s in ANSWERED)
        assert answered == 40
        assert sample(samples, "callflow_worker_restarts_total") == 1
    finally:
        await served.stop()
    died = served.supervisor_lines("worker died, restarting")
    assert [(line["slot"], line["pid"], line["exit"]) for line in died] == [(0, before[0], "signal SIGKILL")]


async def test_sigterm_drains_sessions_on_every_worker_and_exits_0(tmp_path: Path) -> None:
    """SIGTERM with slow calls in flight on both workers: every call answered, exit status 0."""
    served = await start_workers(tmp_path, checkphone_deadline_ms="8000")
    try:
        # one EXEC MSet answers a call: a slow reply keeps the calls in flight long enough to be seen
        calls = asyncio.ensure_future(checkphone_calls(served.agi_port, 40, reply_delay=1.5, timeout=30))
        deadline = asyncio.get_running_loop().time() + 10
        while sample(await metric_samples(served.http_port), "callflow_agi_sessions_in_flight") < 20:
            assert asyncio.get_running_loop().time() < deadline, "the calls were never in flight together"
            await asyncio.sleep(0.1)
        served.signal(signal.SIGTERM)
        statuses = await asyncio.wait_for(calls, 30)
        code = await served.wait_exit(40)
    finally:
        await served.stop()
    assert len(statuses) == 40 and set(statuses) <= ANSWERED, statuses
    assert code == 0, served.log[-20:]
    draining = {line["worker"]: line["in_flight"] for line in served.worker_lines("agi server draining")}
    assert sorted(draining) == [0, 1] and min(draining.values()) > 0, draining
    assert [line["exit"] for line in served.supervisor_lines("worker ended")] == ["exit code 0"] * 2
    assert served.supervisor_lines("callflow stopped")


@pytest.mark.parametrize("second_workers", ["2", "1"])
async def test_a_second_server_on_the_same_files_is_refused(tmp_path: Path, second_workers: str) -> None:
    """Another serve (supervisor or single) on the same data directory exits 1 with one line."""
    served = await start_workers(tmp_path)
    try:
        env = serve_env(tmp_path, workers=second_workers)
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callflow", "serve", cwd=str(tmp_path), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(second.communicate(), 30)
        status, _ = await readiness(served.http_port)
    finally:
        await served.stop()
    assert second.returncode == 1
    lines = [json.loads(line) for line in err.decode().splitlines()]
    assert len(lines) == 1 and lines[0]["level"] == "error", lines
    assert f"pid {served.process.pid}" in lines[0]["event"] and "callflow serve refused" in lines[0]["event"]
    assert status == 200


async def test_stranded_outbox_files_are_relayed_to_the_end_then_removed(tmp_path: Path) -> None:
    """outbox.sqlite3 (a single server's) and outbox-5.sqlite3 (a fifth worker's) hold events; two
    workers start: both files are relayed, each in its order, and deleted."""
    data = tmp_path / "data"
    key = f"call.events.workers-{uuid.uuid4().hex[:8]}"
    stored = {}
    for name in ("outbox.sqlite3", "outbox-5.sqlite3"):
        outbox = SQLiteOutbox(data / name, SystemClock())
        await outbox.open()
        envelopes = [EventEnvelope.of(key, json.dumps({"file": name, "n": n}).encode()) for n in range(30)]
        for envelope in envelopes:
            await outbox.put(envelope)
        await outbox.close()
        stored[name] = [envelope.message_id for envelope in envelopes]
    served = await start_workers(tmp_path)
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while (data / "outbox.sqlite3").exists() or (data / "outbox-5.sqlite3").exists():
            assert asyncio.get_running_loop().time() < deadline, "the stranded files were not relayed"
            await asyncio.sleep(0.2)
        samples = await metric_samples(served.http_port)
    finally:
        await served.stop()
    received = list(dict.fromkeys(message_id for message_id, _ in await take_all(AMQP_URL, key)))
    assert sorted(received) == sorted(stored["outbox.sqlite3"] + stored["outbox-5.sqlite3"])
    for ids in stored.values():
        assert [message_id for message_id in received if message_id in ids] == ids  # each file in its order
    assert sample(samples, "callflow_outbox_depth") == 0
    relayed = served.worker_lines("stranded outbox relayed to the end and removed")
    assert sorted(Path(line["outbox"]).name for line in relayed) == ["outbox-5.sqlite3", "outbox.sqlite3"]
    assert sorted(p.name for p in data.glob("outbox*.sqlite3")) == ["outbox-0.sqlite3", "outbox-1.sqlite3"]


async def test_from_three_workers_to_one_process_no_event_is_left_behind(tmp_path: Path) -> None:
    """Three workers store events they cannot deliver (no broker) and stop; ``callflow outbox
    status`` sees the three files; one process started on the same data directory, with the broker,
    delivers every event and removes the workers' files."""
    from callflow.domain.envelope import routing_key_for
    from tests.integration.cli_support import unique_id
    from tests.integration.serve_support import start_serve
    from tests.integration.test_drain import event_variables

    customer = unique_id("workers")
    served = await start_workers(tmp_path, workers=3, amqp_url="amqp://guest:guest@127.0.0.1:1/",
                                 outbox_flush_timeout_s="0.2")
    try:
        results = await asyncio.gather(*(call("127.0.0.1", served.agi_port, route="event",
                                              variables=event_variables(customer, n)) for n in range(30)))
        served.signal(signal.SIGTERM)
        assert await served.wait_exit(40) == 0
    finally:
        await served.stop()
    assert [r.status for r in results] == ["OK"] * 30
    status = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow", "outbox", "status", "--json", cwd=str(tmp_path),
        env=serve_env(tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    report = json.loads((await status.communicate())[0])
    assert report["depth"] == 30 and len(report["files"]) == 3, report
    assert min(f["depth"] for f in report["files"]) > 0, report  # each worker took some calls
    single = await start_serve(tmp_path)
    try:
        data = tmp_path / "data"
        deadline = asyncio.get_running_loop().time() + 30
        while list(data.glob("outbox-*.sqlite3")):
            assert asyncio.get_running_loop().time() < deadline, "the workers' files were not relayed"
            await asyncio.sleep(0.2)
    finally:
        await single.stop()
    delivered = {json.loads(body)["call_id"] for _, body in await take_all(AMQP_URL, routing_key_for(customer))}
    assert delivered == {f"1752899481.{n}" for n in range(30)}


async def test_workers_drain_and_end_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """kill -9 of the supervisor: its workers drain and end on their own (no orphan keeps serving);
    a new server on the same data directory then starts."""
    served = await start_workers(tmp_path)
    pids = [pid for pid in (await worker_pids(served.http_port)).values() if pid]
    served.process.send_signal(signal.SIGKILL)
    await served.wait_exit(10)
    deadline = asyncio.get_running_loop().time() + 30
    while any(_alive(pid) for pid in pids):
        assert asyncio.get_running_loop().time() < deadline, "a worker outlived its supervisor"
        await asyncio.sleep(0.1)
    assert len(pids) == 2
    assert sorted(line["worker"] for line in served.worker_lines("callflow stopped")) == [0, 1]
    again = await start_workers(tmp_path)
    await again.stop()
    assert again.process.returncode == 0


def _alive(pid: int) -> bool:
    """Running (a zombie left unreaped by whoever inherited it counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
