"""A three-node RabbitMQ cluster of the tests' own, from the installed Debian ``rabbitmq-server``.

The machine's own node (``rabbit@localhost`` on 5672) is never touched: each node here has its own
name (``cf1@localhost``...), AMQP and distribution ports, config file (the one in /etc pins
``listeners.tcp.local`` to 5672 for every node started on the host), data and log directories owned
by the ``rabbitmq`` user, and an empty plugin list (the management and prometheus plugins would take
the default node's HTTP ports). Nodes 2 and 3 ``join_cluster`` node 1. Start-up takes about half a
minute, so one cluster serves a whole test session; a test that kills a node starts it again after.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

# AMQP ports BASE+1..BASE+3, distribution ports BASE+11..BASE+13 (the range 24500-24999 is kept for them)
BASE_PORT = int(os.environ.get("CALLFLOW_TEST_RABBIT_CLUSTER_BASE_PORT", "24500"))
NODE_NAMES = ("cf1", "cf2", "cf3")


class ClusterNode:
    def __init__(self, name: str, index: int, root: Path) -> None:
        self.name = name
        self.node = f"{name}@localhost"
        self.amqp_port = BASE_PORT + 1 + index
        self.dist_port = BASE_PORT + 11 + index
        self.dir = root / name
        self.pid: Optional[int] = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.dir / "node.pid"),
        )
        return env

    def prepare(self) -> None:
        for sub in ("mnesia", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.amqp_port}\nloopback_users = none\n", encoding="utf-8"
        )
        (self.dir / "enabled_plugins").write_text("[].\n", encoding="utf-8")
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.dir)], check=True)


class RabbitCluster:
    """``start()`` three nodes and join them; ``kill(node)`` is ``kill -9``; ``restart(node)`` brings
    a killed node back into the cluster; ``stop()`` stops every node and removes its files."""

    def __init__(self) -> None:
        if shutil.which("rabbitmq-server") is None:
            raise RuntimeError("rabbitmq-server is not installed (scripts/services installs it)")
        self.root = Path(tempfile.mkdtemp(prefix="callflow-rabbit-cluster-"))
        os.chmod(self.root, 0o755)
        self.nodes: list[ClusterNode] = [ClusterNode(n, i, self.root) for i, n in enumerate(NODE_NAMES)]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, node: str) -> ClusterNode:
        return next(n for n in self.nodes if n.node == node or n.name == node)

    def node_on_port(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.amqp_port == port)

    def start(self) -> None:
        for node in self.nodes:
            for port in (node.amqp_port, node.dist_port):
                if _port_open(port):
                    raise RuntimeError(f"port {port} is taken: another cluster of the tests still runs?")
        try:
            for node in self.nodes:  # the three boot together
                node.prepare()
                self._spawn(node)
            for node in self.nodes:
                self._find_pid(node)
                self._await_startup(node)
            first = self.nodes[0].node
            for node in self.nodes[1:]:
                self.ctl(node.node, "stop_app")
                self.ctl(node.node, "join_cluster", first)
                self.ctl(node.node, "start_app")
            for node in self.nodes:
                self._await_startup(node)
        except BaseException:
            self.stop()
            raise

    def kill(self, node: str) -> None:
        """``kill -9`` the node's Erlang VM: no goodbye to clients or peers."""
        target = self.node(node)
        assert target.pid is not None and _runs(target), f"{target.node} is not running"
        os.kill(target.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _port_open(target.amqp_port) and time.monotonic() < deadline:
            time.sleep(0.05)
        target.pid = None

    def freeze(self, node: str) -> None:
        """SIGSTOP: the node keeps its sockets open and answers nothing, as a lost host or a
        partition looks to a client (no RST, no FIN); ``thaw`` resumes it."""
        target = self.node(node)
        assert target.pid is not None and _runs(target), f"{target.node} is not running"
        os.kill(target.pid, signal.SIGSTOP)

    def thaw(self, node: str) -> None:
        target = self.node(node)
        if target.pid is not None and _runs(target):
            os.kill(target.pid, signal.SIGCONT)

    def restart(self, node: str) -> None:
        """Start a killed node again; it rejoins the cluster from its own data directory."""
        target = self.node(node)
        self._spawn(target)
        self._find_pid(target)
        self._await_startup(target)

    def stop(self) -> None:
        for node in self.nodes:
            if node.pid is None:
                continue
            self.thaw(node.node)
            try:
                self.ctl(node.node, "stop", timeout=60)
            except (subprocess.SubprocessError, OSError):
                if _runs(node):  # it did not stop cleanly: its VM, checked by name, goes
                    os.kill(node.pid, signal.SIGKILL)
            node.pid = None
        shutil.rmtree(self.root, ignore_errors=True)

    def ctl(self, node: str, *args: str, timeout: float = 120) -> str:
        return _run(["rabbitmqctl", "-q", "-n", node, *args], timeout)

    def queues(self, node: str, command: str, *args: str) -> str:
        """``rabbitmq-queues -n NODE COMMAND ARGS`` (e.g. ``quorum_status QUEUE``)."""
        return _run(["rabbitmq-queues", "-q", "-n", node, command, *args], 60)

    def leader_of(self, queue: str, ask: str) -> str:
        """The node name of the quorum queue's leader, as a live node ``ask`` reports it."""
        for line in self.ctl(ask, "list_queues", "name", "leader", "--no-table-headers").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return parts[1]
        raise LookupError(f"no quorum queue {queue} on the cluster")

    def _spawn(self, node: ClusterNode) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], env=node.env(), check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _find_pid(self, node: ClusterNode) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                node.pid = int(_run(["rabbitmqctl", "-q", "-n", node.node, "eval", "list_to_integer(os:getpid())."],
                                    30).strip())
                return
            except (subprocess.SubprocessError, ValueError):
                time.sleep(0.5)
        raise RuntimeError(f"{node.node} did not start; see {node.dir / 'log'}")

    def _await_startup(self, node: ClusterNode) -> None:
        self.ctl(node.node, "await_startup", "--timeout", "120", timeout=150)


def _runs(node: ClusterNode) -> bool:
    """The pid is still this node's Erlang VM (not a process that took the number since): its
    environment names the node, as ``rabbitmq-server`` passed it down."""
    try:
        with open(f"/proc/{node.pid}/environ", "rb") as environ:
            return f"RABBITMQ_NODENAME={node.node}".encode() in environ.read().split(b"\0")
    except OSError:
        return False


def _run(command: list[str], timeout: float) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
    return done.stdout


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0
