"""Dockerfile, .dockerignore and compose.yaml say what an operator relies on (no container engine needed)."""
from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import pytest

from callflow.config import Settings
from callflow.entrypoints.http import OpsHttpServer

yaml = pytest.importorskip("yaml", reason="PyYAML is in the 'test' extra: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[2]
SETTING_NAMES = {f"CALLFLOW_{name.upper()}" for name in Settings.model_fields}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            pairs.append((instruction.upper(), rest.strip()))
    return pairs


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, rest in dockerfile():
        if instruction == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return env


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def test_image_is_slim_python_and_runs_as_a_non_root_user() -> None:
    """FROM the BASE_IMAGE argument, a slim Python image unless given; USER names a non-root user
    before the entrypoint."""
    pairs = dockerfile()
    assert pairs[0][0] == "ARG" and pairs[1] == ("FROM", "${BASE_IMAGE}"), pairs[:2]
    name, _, default = pairs[0][1].partition("=")
    assert name == "BASE_IMAGE" and re.match(r"python:3\.\d+-slim$", default), pairs[0]
    users = [rest for instruction, rest in pairs if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert [i for i, _ in pairs].index("USER") < [i for i, _ in pairs].index("ENTRYPOINT")


def test_image_listens_everywhere_and_keeps_data_and_logs_in_volumes() -> None:
    """AGI host 0.0.0.0; the data and log directories are volumes; both ports exposed."""
    env = docker_env()
    assert env["CALLFLOW_AGI_HOST"] == "0.0.0.0"
    volumes = json.loads(next(rest for i, rest in dockerfile() if i == "VOLUME"))
    assert {env["CALLFLOW_DATA_DIR"], env["CALLFLOW_LOG_DIR"]} <= set(volumes)
    exposed = next(rest for i, rest in dockerfile() if i == "EXPOSE").split()
    assert exposed == ["4573", "9108"]
    assert set(env) - {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
                       "PIP_DISABLE_PIP_VERSION_CHECK", "PATH"} <= SETTING_NAMES


def healthcheck_command() -> list[str]:
    rest = next(rest for i, rest in dockerfile() if i == "HEALTHCHECK")
    return json.loads(rest[rest.index("CMD") + 3:].strip())


@pytest.mark.parametrize("serving, healthy", [(True, True), (False, False)])
async def test_healthcheck_command_probes_healthz(serving: bool, healthy: bool) -> None:
    """The image's HEALTHCHECK passes against a running /healthz on CALLFLOW_HTTP_PORT, fails without it."""
    server = OpsHttpServer("127.0.0.1", 0)
    await server.start()
    port = server.port
    if not serving:
        await server.stop()
    try:
        command = healthcheck_command()
        assert command[0] == "python" and "/healthz" in command[-1]
        process = await asyncio.create_subprocess_exec(
            sys.executable, *command[1:], env={**os.environ, "CALLFLOW_HTTP_PORT": str(port)},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        assert (await asyncio.wait_for(process.wait(), 10) == 0) is healthy
    finally:
        await server.stop()


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    """.env, the virtualenvs, git and outbox files never reach the build context."""
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for pattern in (".env", ".venv*", ".git", "*.sqlite3"):
        assert pattern in ignored


def test_compose_runs_callflow_with_redis_and_rabbitmq() -> None:
    """Three services; callflow is built here, talks to the other two by name, and waits on neither's health."""
    services = compose()["services"]
    assert set(services) == {"redis", "rabbitmq", "callflow"}
    callflow = services["callflow"]
    assert callflow["build"] == "."
    env = callflow["environment"]
    assert env["CALLFLOW_REDIS_URL"].startswith("redis://redis:")
    assert "@rabbitmq:5672/" in env["CALLFLOW_AMQP_URL"]
    assert set(env) <= SETTING_NAMES
    assert {dep["condition"] for dep in callflow["depends_on"].values()} == {"service_started"}
    for name in ("redis", "rabbitmq"):
        assert services[name]["healthcheck"]["test"]


def test_compose_keeps_the_outbox_and_gives_the_drain_time() -> None:
    """The data and log directories are named volumes; the stop grace period exceeds the drain timeout."""
    document = compose()
    callflow = document["services"]["callflow"]
    env = docker_env()
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in callflow["volumes"]}
    assert set(mounts) == {env["CALLFLOW_DATA_DIR"], env["CALLFLOW_LOG_DIR"]}
    assert set(mounts.values()) <= set(document["volumes"])
    grace = int(callflow["stop_grace_period"].rstrip("s"))
    assert grace > Settings.model_fields["drain_timeout_s"].default
    assert any(port.endswith(":4573") for port in callflow["ports"])


def test_image_installs_into_a_virtual_environment_first_on_path() -> None:
    """callflow goes into a virtual environment whose bin/ leads PATH, so the entrypoint and the
    HEALTHCHECK's python are the environment's on any base (a Debian python3 forbids pip installs)."""
    venv_bin = docker_env()["PATH"].split(":")[0]
    assert venv_bin.endswith("/bin")
    runs = " ".join(rest for instruction, rest in dockerfile() if instruction == "RUN")
    assert f"python3 -m venv {venv_bin[:-len('/bin')]}" in runs
    assert "pip install" in runs and "--user" not in runs
