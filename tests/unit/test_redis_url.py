"""CALLFLOW_REDIS_URL's forms (SPEC §4): read into a target, refused with a message naming the problem."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from callflow.config import Settings
from callflow.entrypoints.commands.config import mask_secret
from callflow.redis_url import CLUSTER, SENTINEL, SINGLE, RedisTarget, parse_redis_url


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:pw@redis.example:6380/2",
                                 "redis://localhost", "unix:///run/redis.sock?db=1"])
def test_one_node_urls_are_kept_as_given(url: str) -> None:
    """redis://, rediss:// and unix:// go to redis-py unchanged (the one-node path of before)."""
    assert parse_redis_url(url) == RedisTarget(SINGLE, url=url)


def test_a_sentinel_url_names_sentinels_master_and_database() -> None:
    """Every sentinel in order, the master's name, the database, the password percent-decoded."""
    target = parse_redis_url("redis+sentinel://:p%40ss/w,rd@10.0.0.1:26379,sentinel-b:26380,[::1]:26381/calls/3")
    assert target == RedisTarget(SENTINEL, nodes=(("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 26381)),
                                 master_name="calls", db=3, password="p@ss/w,rd")


def test_a_sentinel_url_without_database_uses_0_and_without_password_sends_none() -> None:
    target = parse_redis_url("redis+sentinel://127.0.0.1:26379/mymaster")
    assert (target.topology, target.master_name, target.db, target.password) == (SENTINEL, "mymaster", 0, None)


def test_a_cluster_url_names_its_seed_nodes() -> None:
    target = parse_redis_url("redis+cluster://user:pw@10.0.0.1:7000,10.0.0.2:7001")
    assert target == RedisTarget(CLUSTER, nodes=(("10.0.0.1", 7000), ("10.0.0.2", 7001)), username="user",
                                 password="pw")


@pytest.mark.parametrize("url, problem", [
    ("redis+sentinel://127.0.0.1:26379", "needs the monitored master's name"),
    ("redis+sentinel://127.0.0.1:26379/", "needs the monitored master's name"),
    ("redis+sentinel://127.0.0.1:x/mymaster", "bad port 'x'"),
    ("redis+sentinel://127.0.0.1:0/mymaster", "bad port '0'"),
    ("redis+cluster://127.0.0.1:70000", "bad port '70000'"),
    ("redis+cluster://127.0.0.1", "expected HOST:PORT"),
    ("redis+cluster://:7000", "no host before the port"),
    ("redis+cluster://h:7000,,h:7001", "at least one seed node"),
    ("redis+cluster://h:7000/1", "only database 0"),
    ("redis+sentinel://h:26379/mymaster/one", "bad database 'one'"),
    ("redis+sentinel://h:26379/mymaster?ssl=true", "takes no query"),
    ("redis+sentinel://secret@h:26379/mymaster", "the password goes after a colon"),
    ("memcached://h:11211", "unknown scheme 'memcached://'"),
    ("127.0.0.1:6379", "not a Redis URL"),
    ("redis://127.0.0.1:port/0", "bad port"),
])
def test_bad_urls_are_refused_with_the_reason(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("?", r"\?").replace("(", r"\(")):
        parse_redis_url(url)


def test_messages_never_repeat_the_password() -> None:
    """A password holding '/' or ',' is never read as an address, nor quoted in an error."""
    for url in ("redis+sentinel://:top/se,cret@h:x/m", "redis+cluster://:top/se,cret@h"):
        with pytest.raises(ValueError) as refused:
            parse_redis_url(url)
        assert "cret" not in str(refused.value)


def test_the_settings_refuse_a_bad_url_by_name() -> None:
    """CALLFLOW_REDIS_URL is checked when the settings load (so the server does not start with it)."""
    with pytest.raises(ValidationError, match="needs the monitored master's name"):
        Settings(_env_file=None, redis_url="redis+sentinel://127.0.0.1:26379")
    assert Settings(_env_file=None, redis_url="redis+cluster://127.0.0.1:7000").redis_url


@pytest.mark.parametrize("url, shown", [
    ("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26379/calls/2",
     "redis+sentinel://:****@10.0.0.1:26379,10.0.0.2:26379/calls/2"),
    ("redis+cluster://ops:s3/cret@h1:7000,h2:7001", "redis+cluster://ops:****@h1:7000,h2:7001"),
    ("redis+cluster://h1:7000,h2:7001", "redis+cluster://h1:7000,h2:7001"),
    ("redis://:s3cret@h1:6379/0", "redis://:****@h1:6379/0"),
])
def test_config_show_masks_the_password_and_keeps_the_addresses(url: str, shown: str) -> None:
    """ADR 0043 for the forms with several addresses: hosts, ports, master and database stay visible."""
    assert mask_secret(url) == shown
