"""checkphone end to end: the real server over TCP, the fake Asterisk, the real Redis (test db)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from callflow.entrypoints.agi.server import AgiServer
from tests.conftest import REDIS_URL
from tests.support.fake_asterisk import FakeCallResult, call
from tests.support.served import served

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
FORMS = ["0912406496", "84912406496", "+84912406496", "0084912406496"]
VARIABLES = ["PHONE_POLICY", "PHONE_BLACKLISTED", "PHONE_VIP", "CALLFLOW_STATUS"]
DEADLINE_S, SLACK_S = 0.5, 0.25


def answer(result: FakeCallResult) -> list[str]:
    return [result.variables.get(name, "<unset>") for name in VARIABLES]


@pytest.fixture
def store() -> Iterator[redis.Redis]:
    """The test db with empty phone lists before and after (only phone:* keys are touched)."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)

    def clear() -> None:
        client.delete(*list(client.scan_iter(match="phone:blacklist:*", count=1000)), "phone:vip")

    clear()
    yield client
    clear()
    client.close()


@pytest.fixture
async def server(make_settings, store) -> AsyncIterator[AgiServer]:
    async with served(make_settings()) as running:
        yield running


@pytest.mark.parametrize("stored", FORMS)
async def test_every_form_is_answered_alike_when_any_one_is_blacklisted(server, store, stored: str) -> None:
    """Blacklisted in one form: callers presenting each of the four forms all get blacklist, 1, 0, OK."""
    store.set(f"phone:blacklist:{stored}", "1", ex=3600)
    results = await asyncio.gather(*(call(HOST, server.port, callerid=form) for form in FORMS))
    assert [answer(r) for r in results] == [["blacklist", "1", "0", "OK"]] * len(FORMS)
    assert all(r.closed_by_server and r.duration < DEADLINE_S for r in results)


async def test_a_vip_stored_nationally_is_found_from_the_international_form(server, store) -> None:
    """VIP stored as 0912406496; the caller presents +84912406496: vip, 0, 1, OK."""
    store.sadd("phone:vip", "0912406496")
    result = await call(HOST, server.port, callerid="+84912406496")
    assert answer(result) == ["vip", "0", "1", "OK"]


async def test_an_unlisted_caller_gets_one_exec_mset_and_nothing_else(server) -> None:
    """A number on no list: normal, OK, the four variables set by exactly one EXEC MSet, status last."""
    result = await call(HOST, server.port, callerid="0987654321")
    assert answer(result) == ["normal", "0", "0", "OK"]
    assert result.commands == ["EXEC MSet PHONE_POLICY=normal,PHONE_BLACKLISTED=0,PHONE_VIP=0,CALLFLOW_STATUS=OK"]


async def test_without_mset_four_set_variables_and_the_server_remembers(server) -> None:
    """MSet missing (result=-2): four SET VARIABLEs, policy first, status last; the next call from
    that Asterisk goes straight to them (ADR 0070)."""
    first = await call(HOST, server.port, callerid="0987654321", mset_loaded=False)
    second = await call(HOST, server.port, callerid="0987654321", mset_loaded=False)
    assert answer(first) == answer(second) == ["normal", "0", "0", "OK"]
    assert first.commands[0].startswith("EXEC MSet ")
    assert [c.split()[2] for c in first.commands[1:]] == [c.split()[2] for c in second.commands] == VARIABLES
    assert all(c.startswith("SET VARIABLE ") for c in first.commands[1:] + second.commands)


@pytest.mark.parametrize("callerid", ["anonymous", "unknown", ""])
async def test_an_anonymous_caller_is_normal(server, store, callerid: str) -> None:
    """Anonymous, unknown or empty caller id: normal, OK, even with the literal word blacklisted."""
    store.set("phone:blacklist:anonymous", "1")
    result = await call(HOST, server.port, callerid=callerid)
    assert answer(result) == ["normal", "0", "0", "OK"]


async def test_bad_input_is_an_error(server) -> None:
    """agi_arg_1 that is not a phone number: CALLFLOW_STATUS=ERROR, policy normal."""
    result = await call(HOST, server.port, args=["0912-CALL-ME"])
    assert answer(result) == ["normal", "0", "0", "ERROR"]


async def test_agi_arg_1_wins_over_the_caller_id_unless_blank(server, store) -> None:
    """checkphone,NUMBER checks NUMBER; checkphone with a blank argument checks agi_callerid."""
    store.set("phone:blacklist:84912406496", "1")
    by_argument = await call(HOST, server.port, args=["0912406496"], callerid="0987654321")
    blank_argument = await call(HOST, server.port, args=[""], callerid="+84912406496")
    caller_only = await call(HOST, server.port, args=["0987654321"], callerid="0912406496")
    assert answer(by_argument)[0] == answer(blank_argument)[0] == "blacklist"
    assert answer(caller_only)[0] == "normal"


async def test_the_query_string_is_not_part_of_the_route(server, store) -> None:
    """AGI(agi://host/checkphone?x=1,NUMBER) is checkphone."""
    store.sadd("phone:vip", "84912406496")
    result = await call(HOST, server.port, route="checkphone?x=1", args=["0912406496"])
    assert answer(result) == ["vip", "0", "1", "OK"]


@pytest.mark.parametrize("fail_closed,policy,flag", [(False, "normal", "0"), (True, "blacklist", "1")])
async def test_the_server_starts_and_answers_degraded_without_redis(make_settings, fail_closed: bool,
                                                                     policy: str, flag: str) -> None:
    """No Redis at all: the server starts and answers DEGRADED at once, fail-open or fail-closed."""
    settings = make_settings(redis_url="redis://127.0.0.1:1/0", fail_closed=fail_closed)
    async with served(settings) as server:
        result = await call(HOST, server.port, callerid="0912406496")
    assert answer(result) == [policy, flag, "0", "DEGRADED"]
    assert result.duration < DEADLINE_S + SLACK_S


async def test_a_blacklisted_caller_stays_blacklisted_when_asterisk_acknowledges_slowly(server, store) -> None:
    """Asterisk acknowledges the answer past the deadline, so the deadline cuts in while the answer
    is being written: the channel ends with the whole blacklist answer, never the fail-open default."""
    store.set("phone:blacklist:84912406496", "1")
    result = await call(HOST, server.port, callerid="0912406496", delays={1: DEADLINE_S + 0.05})
    assert answer(result) == ["blacklist", "1", "0", "OK"]
    assert len(result.commands) == 2 and result.commands[0] == result.commands[1]  # the fallback did run
