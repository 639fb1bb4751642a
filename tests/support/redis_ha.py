"""Redis under Sentinel and as a Redis Cluster, started for the tests that need them, from the Debian
``redis-server`` on loopback ports of their own (never 6379), each node in its own temporary directory.

- ``SentinelGroup``: one master, one replica, three sentinels (quorum 2) with short failure detection
  (``down-after-milliseconds`` / ``failover-timeout``), so a killed master is replaced in seconds.
- ``RedisClusterGroup``: three masters and three replicas joined with ``redis-cli --cluster create``,
  short ``cluster-node-timeout``.

Both are torn down completely (processes killed, directories removed); ``kill_master()`` is kill -9.
"""
from __future__ import annotations

import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
import redis

from tests.support.redis_process import free_port

MASTER_NAME = "callflow-test"
#: a master no sentinel hears from for this long is down; failure detection takes about this long
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
CLUSTER_NODE_TIMEOUT_MS = 1000
#: a replica's first sync starts at once (Redis 7 waits 5 s for more replicas to share a diskless sync)
NO_SYNC_DELAY = "repl-diskless-sync-delay 0"
#: cluster nodes also listen on PORT + 10000 (the cluster bus), so their ports come from a range low
#: enough for that; ``CALLFLOW_TEST_CLUSTER_PORTS`` moves it (FIRST-LAST)
CLUSTER_PORTS = (24000, 24499)


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """``count`` ports of ``CLUSTER_PORTS`` free now, each with its bus port (+10000) free too."""
    first, last = (int(part) for part in os.environ.get("CALLFLOW_TEST_CLUSTER_PORTS", "{}-{}".format(*CLUSTER_PORTS))
                   .split("-"))
    candidates = list(range(first, last + 1))
    random.shuffle(candidates)  # two runs at once rarely pick the same ports
    ports = [port for port in candidates if _bindable(port) and _bindable(port + 10000)][:count]
    if len(ports) < count:
        raise RuntimeError(f"fewer than {count} free ports in {first}-{last} (and their bus ports)")
    return ports


def _die_with_parent() -> None:
    """In the child, before exec: Linux kills it when the test process dies, even by SIGKILL (no
    redis-server outlives a test run that was killed before its teardown)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _distinct_free_ports(count: int) -> list[int]:
    """``count`` different free ports (the kernel may hand out the same free port twice in a row)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (scripts/services installs it)")
    return binary


def _wait_for(what: str, check, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError) as error:
            last = error
        time.sleep(0.05)
    raise RuntimeError(f"{what} within {timeout_s} s (last error: {last})")


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=2,
                       socket_connect_timeout=2)


def _sentinel(port: int, *args: str) -> Any:
    """A SENTINEL subcommand's reply, the same on every redis-py version: redis-py 7.0's
    ``sentinel_master()`` passes its parser an argument it does not take, so the command is sent
    as is; a ``SENTINEL MASTER`` reply not parsed by the client (a flat list) becomes a dict."""
    reply = _client(port).execute_command("SENTINEL", *args)
    if args[0] == "MASTER" and isinstance(reply, list):
        return dict(zip(reply[::2], reply[1::2]))
    return reply


class _Nodes:
    """``redis-server`` processes, each with a config file and working directory under one temp dir."""

    def __init__(self, prefix: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.processes: dict[int, subprocess.Popen] = {}

    def start(self, port: int, lines: list[str], *extra: str) -> None:
        directory = self.root / str(port)
        directory.mkdir()
        config = directory / "redis.conf"
        config.write_text("\n".join([f"port {port}", "bind 127.0.0.1", f"dir {directory}", 'save ""',
                                     "appendonly no", f"logfile {directory / 'redis.log'}", *lines]) + "\n")
        self.processes[port] = subprocess.Popen([_redis_server(), str(config), *extra], cwd=str(directory),
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                preexec_fn=_die_with_parent)

    def kill(self, port: int) -> None:
        """kill -9: no shutdown, no goodbye to the others (as a crashed machine)."""
        process = self.processes.pop(port, None)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def close(self) -> None:
        for port in list(self.processes):
            self.kill(port)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self, port: int) -> str:
        path = self.root / str(port) / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""


class SentinelGroup:
    """A master, a replica and three sentinels monitoring the master as ``MASTER_NAME``."""

    def __init__(self) -> None:
        self.master_port, self.replica_port, *self.sentinel_ports = _distinct_free_ports(5)
        self._nodes = _Nodes("callflow-sentinel-")

    @property
    def url(self) -> str:
        sentinels = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{sentinels}/{MASTER_NAME}/0"

    def start(self, timeout_s: float = 20.0) -> None:
        try:
            self._nodes.start(self.master_port, [NO_SYNC_DELAY])
            self._nodes.start(self.replica_port, [NO_SYNC_DELAY, f"replicaof 127.0.0.1 {self.master_port}"])
            ids = {port: uuid.uuid4().hex + uuid.uuid4().hex[:8] for port in self.sentinel_ports}
            for port in self.sentinel_ports:
                # each sentinel is told of the others and of the replica at once, instead of learning
                # of them from hello messages every 2 s (which made start-up take 2 to 10 s)
                self._nodes.start(port, [
                    f"sentinel myid {ids[port]}",
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
                    f"sentinel parallel-syncs {MASTER_NAME} 1",
                    f"sentinel known-replica {MASTER_NAME} 127.0.0.1 {self.replica_port}",
                    *[f"sentinel known-sentinel {MASTER_NAME} 127.0.0.1 {other} {ids[other]}"
                      for other in self.sentinel_ports if other != port],
                ], "--sentinel")
            _wait_for("the replica did not sync", lambda: _client(self.replica_port).info("replication")
                      .get("master_link_status") == "up", timeout_s)
            _wait_for("the sentinels did not find each other and the replica", self._sentinels_agree, timeout_s)
        except BaseException:
            self.close()
            raise

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            master = _sentinel(port, "MASTER", MASTER_NAME)
            if int(master["num-other-sentinels"]) < 2 or int(master["num-slaves"]) < 1:
                return False
        return True

    def master_address(self) -> tuple[str, int]:
        """The master as the first sentinel that answers sees it now."""
        for port in self.sentinel_ports:
            try:
                host, master_port = _sentinel(port, "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                return host, int(master_port)
            except redis.ConnectionError:
                continue
        raise RuntimeError("no sentinel answers")

    def master(self) -> redis.Redis:
        return _client(self.master_address()[1])

    def kill_master(self) -> int:
        """kill -9 the current master; returns its port."""
        port = self.master_address()[1]
        self._nodes.kill(port)
        return port

    def wait_for_promotion(self, old_port: int, timeout_s: float = 30.0) -> float:
        """Seconds until a sentinel names a master other than ``old_port`` that answers as master (the
        sentinel that led the failover knows first; the others learn it from its hello messages)."""
        started = time.monotonic()

        def promoted() -> bool:
            for port in self.sentinel_ports:
                try:
                    _, master_port = _sentinel(port, "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                except redis.ConnectionError:
                    continue
                if int(master_port) != old_port and _client(int(master_port)).info("replication")["role"] == "master":
                    return True
            return False

        _wait_for("no replica was promoted", promoted, timeout_s)
        return time.monotonic() - started

    def close(self) -> None:
        self._nodes.close()


class RedisClusterGroup:
    """Three masters and three replicas (``--cluster-replicas 1``) on free loopback ports."""

    def __init__(self, masters: int = 3) -> None:
        self.ports = cluster_ports(masters * 2)
        self._nodes = _Nodes("callflow-cluster-")

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports[:2])

    def start(self, timeout_s: float = 30.0) -> None:
        try:
            for port in self.ports:
                self._nodes.start(port, [NO_SYNC_DELAY, "cluster-enabled yes", f"cluster-config-file nodes-{port}.conf",
                                         f"cluster-node-timeout {CLUSTER_NODE_TIMEOUT_MS}",
                                         "cluster-replica-validity-factor 0"])
            for port in self.ports:
                _wait_for(f"redis-server on {port} did not answer", lambda p=port: _client(p).ping(), timeout_s)
            subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                            "--cluster-replicas", "1", "--cluster-yes"], check=True, timeout=timeout_s,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _wait_for("the cluster did not reach cluster_state:ok on every node", self._all_ok, timeout_s)
            _wait_for("a replica did not finish its first sync", self._replicas_online, timeout_s)
        except BaseException:
            self.close()
            raise

    def _all_ok(self) -> bool:
        for port in self.ports:
            if port in self._nodes.processes:
                info = _client(port).execute_command("CLUSTER INFO")
                state = info.get("cluster_state") if isinstance(info, dict) else ("cluster_state:ok" in str(info)) and "ok"
                if state != "ok":
                    return False
        return True

    def _replicas_online(self) -> bool:
        """Every master has its replica connected and synced (a failover needs one)."""
        for port in self.master_ports():
            info = _client(port).info("replication")
            if int(info.get("connected_slaves", 0)) < 1 or info.get("slave0", {}).get("state") != "online":
                return False
        return True

    def client(self) -> redis.RedisCluster:
        live = next(port for port in self.ports if port in self._nodes.processes)
        return redis.RedisCluster(host="127.0.0.1", port=live, decode_responses=True, socket_timeout=2)

    def master_ports(self) -> list[int]:
        """The ports of the nodes that serve slots now."""
        with self.client() as cluster:
            return sorted(int(node.port) for node in cluster.get_primaries())

    def kill_master_of(self, key: str) -> int:
        """kill -9 the master serving ``key``'s slot; returns its port."""
        with self.client() as cluster:
            port = int(cluster.get_node_from_key(key).port)
        self._nodes.kill(port)
        return port

    def wait_for_promotion(self, old_port: int, timeout_s: float = 30.0) -> float:
        """Seconds until every live node says cluster_state:ok and ``old_port`` serves no slot."""
        started = time.monotonic()

        def healed() -> bool:
            if not self._all_ok():
                return False
            live = next(port for port in self.ports if port in self._nodes.processes)
            slots = _client(live).execute_command("CLUSTER", "SLOTS")
            return all(int(entry[2][1]) != old_port for entry in slots)

        _wait_for("the cluster did not promote a replica", healed, timeout_s)
        return time.monotonic() - started

    def close(self) -> None:
        self._nodes.close()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelGroup]:
    """A Sentinel group for the whole run, started by the first test that asks (contract tests; a
    test that kills its master starts a group of its own)."""
    group = SentinelGroup()
    group.start()
    try:
        yield group
    finally:
        group.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterGroup]:
    """A Redis Cluster for the whole run, started by the first test that asks (see ``redis_sentinel``)."""
    group = RedisClusterGroup()
    group.start()
    try:
        yield group
    finally:
        group.close()
