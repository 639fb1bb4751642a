"""The CLI on Redis under Sentinel and on a Redis Cluster: import, check, list, export, remove, stats.

On a cluster the numbers of one import land on every master; list and export must scan each of them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from callflow.entrypoints.cli import main
from tests.integration.cli_support import cli_env, unique_id  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.redis_ha]
NUMBERS = [f"09124{n:05d}" for n in range(300)]  # national forms; stored as 849124NNNNN


@pytest.fixture(params=["redis_sentinel", "redis_cluster"])
def topology_env(request, cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    group = request.getfixturevalue(request.param)
    monkeypatch.setenv("CALLFLOW_REDIS_URL", group.url)
    return cli_env


def test_lists_round_trip_through_the_cli(topology_env: Path, capsys) -> None:
    """import 300 numbers, check one, list and export all 300, remove three: as on one node."""
    source = topology_env / "numbers.csv"
    source.write_text("number\n" + "\n".join(NUMBERS) + "\n")
    assert main(["blacklist", "import", str(source)]) == 0
    assert main(["vip", "add", NUMBERS[7]]) == 0
    capsys.readouterr()
    assert main(["blacklist", "check", "+84912400007"]) == 0
    assert "policy blacklist" in capsys.readouterr().out
    assert main(["blacklist", "list"]) == 0
    listed = capsys.readouterr().out.split()
    canonical = sorted("84" + number[1:] for number in NUMBERS)
    assert [n for n in listed if n.startswith("849124")] == canonical
    assert main(["blacklist", "export", str(topology_env / "out.csv")]) == 0
    rows = [line.split(",") for line in (topology_env / "out.csv").read_text().split()]
    assert sorted(row[0] for row in rows if row[0].startswith("849124")) == canonical
    # each entry's remaining TTL travels with it (the import gave them the default 24 h)
    assert all(0 < int(row[1]) <= 86400 for row in rows if row[0].startswith("849124"))
    assert main(["blacklist", "remove", *NUMBERS[:3]]) == 0
    assert main(["vip", "remove", NUMBERS[7]]) == 0
    capsys.readouterr()
    assert main(["blacklist", "list"]) == 0
    assert [n for n in capsys.readouterr().out.split() if n.startswith("849124")] == canonical[3:]


def test_stats_reads_every_status_set(topology_env: Path, capsys) -> None:
    """callflow stats CUSTOMER counts each status set, wherever its slot lives."""
    from redis import RedisCluster

    customer = unique_id("c")
    url = __import__("os").environ["CALLFLOW_REDIS_URL"]
    statuses = [f"s{n}" for n in range(8)]
    if url.startswith("redis+cluster://"):
        host, port = url.split("://", 1)[1].split(",")[0].split(":")
        writer = RedisCluster(host=host, port=int(port))
    else:
        from redis.sentinel import Sentinel

        hosts = url.split("://", 1)[1].split("/")[0]
        writer = Sentinel([(h.split(":")[0], int(h.split(":")[1])) for h in hosts.split(",")]).master_for(
            url.rsplit("/", 2)[1])
    try:
        for n, status in enumerate(statuses, 1):
            key = f"stats:calls:{customer}:{status}"
            writer.sadd(key, *[f"1.{i}" for i in range(n)])
            writer.expire(key, 600)
    finally:
        writer.close()
    assert main(["stats", customer, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["statuses"]
    assert {status: shown[status]["calls"] for status in shown} == {s: n for n, s in enumerate(statuses, 1)}


@pytest.mark.parametrize("url", ["redis+sentinel://127.0.0.1:1,127.0.0.1:2/calls", "redis+cluster://127.0.0.1:1"])
@pytest.mark.parametrize("argv", [["blacklist", "list"], ["blacklist", "check", "0912406496"],
                                  ["vip", "add", "0912406496"], ["stats", "c1"]])
def test_nothing_reachable_is_exit_3(cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys, url: str,
                                     argv: list) -> None:
    """No sentinel or no cluster node answers: the verb says Redis cannot be reached (exit 3)."""
    monkeypatch.setenv("CALLFLOW_REDIS_URL", url)
    assert main(argv) == 3
    assert "Redis cannot be reached" in capsys.readouterr().err
