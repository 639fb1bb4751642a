"""``callflow stats`` against the real Redis: the stats:calls:{customer}:{status} sets."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from callflow.entrypoints.cli import main
from tests.conftest import REDIS_URL
from tests.integration.cli_support import cli_env, unique_id  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
def customer() -> Iterator[str]:
    """A customer with 3 ringing calls (expiring in an hour) and 1 hangup (no expiry); deleted after."""
    client = redis.Redis.from_url(REDIS_URL)
    name = unique_id("cust")
    client.sadd(f"stats:calls:{name}:ringing", "1752899481.1", "1752899481.2", "1752899481.3")
    client.expire(f"stats:calls:{name}:ringing", 3600)
    client.sadd(f"stats:calls:{name}:hangup", "1752899481.1")
    yield name
    client.delete(f"stats:calls:{name}:ringing", f"stats:calls:{name}:hangup")
    client.close()


def test_per_status_counts_and_expiry(cli_env, customer, capsys) -> None:
    """Each status of the customer with its number of calls and the time left before its set expires."""
    assert main(["stats", customer]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["STATUS", "CALLS", "EXPIRES", "IN"]
    hangup, ringing = (line.split() for line in lines[1:])
    assert hangup == ["hangup", "1", "never"]
    assert ringing[:2] == ["ringing", "3"] and ringing[2].startswith(("59m", "1h0m"))


def test_per_status_as_json(cli_env, customer, capsys) -> None:
    """--json gives the same figures as one object."""
    assert main(["stats", customer, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["customer"] == customer
    assert report["statuses"]["hangup"] == {"calls": 1, "expires_in_s": None}
    assert report["statuses"]["ringing"]["calls"] == 3
    assert 3500 < report["statuses"]["ringing"]["expires_in_s"] <= 3600


def test_one_status_lists_its_call_ids(cli_env, customer, capsys) -> None:
    """With STATUS, the call ids of that set, one per line, sorted."""
    assert main(["stats", customer, "ringing"]) == 0
    assert capsys.readouterr().out.split() == ["1752899481.1", "1752899481.2", "1752899481.3"]


def test_nothing_recorded_exits_1(cli_env, customer, capsys) -> None:
    """A customer or a status with no calls says so on stderr and exits 1."""
    assert main(["stats", unique_id("nobody")]) == 1
    assert main(["stats", customer, "answered"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "no answered calls recorded" in captured.err


def test_a_status_not_found_gets_a_hint(cli_env, customer, capsys) -> None:
    """RINGING finds nothing (statuses are stored as written): the message names the one meant, or
    lists those recorded."""
    assert main(["stats", customer, "RINGING"]) == 1
    assert "did you mean ringing?" in capsys.readouterr().err
    assert main(["stats", customer, "answered"]) == 1
    assert "statuses recorded: hangup, ringing" in capsys.readouterr().err


def test_the_reserved_customer_id_is_refused(cli_env, capsys) -> None:
    """``invalid`` is no customer's (its queue holds refused events): exit 2 saying so."""
    assert main(["stats", "invalid"]) == 2
    assert "reserved" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["a:b"], ["cust", "ring*"], ["x" * 65]])
def test_an_id_unsafe_in_a_key_exits_2(cli_env, args, capsys) -> None:
    """A customer or status outside [A-Za-z0-9_.-] (or too long) is refused before any key is built."""
    assert main(["stats", *args]) == 2
    assert "callflow stats:" in capsys.readouterr().err


def test_redis_unreachable_exits_3(cli_env, monkeypatch, capsys) -> None:
    """No Redis on the configured address: a one-line message and exit 3, no traceback."""
    monkeypatch.setenv("CALLFLOW_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["stats", "cust"]) == 3
    err = capsys.readouterr().err
    assert "Redis cannot be reached at redis://127.0.0.1:1/0" in err and "Traceback" not in err
    assert "checkphone" not in err  # the server's start-up warnings are not the command's
