"""The forms of ``CALLFLOW_REDIS_URL`` (docs/reference.md, Settings), read once into a ``RedisTarget``: pure, no I/O.

- ``redis://``, ``rediss://`` (and ``unix://``): one node, handed to redis-py's ``from_url`` unchanged;
- ``redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]``: the sentinels' addresses
  and the name of the master they monitor; the password is the data nodes' (master and replicas);
- ``redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...]``: any seed nodes of a Redis Cluster.

The settings validator and the composition root both read the URL here, so a value that starts the
server is one that builds a client. Error messages name the part that is wrong and never repeat the
password.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote, urlsplit

SINGLE, SENTINEL, CLUSTER = "single", "sentinel", "cluster"
SENTINEL_SCHEME, CLUSTER_SCHEME = "redis+sentinel", "redis+cluster"
_SINGLE_SCHEMES = ("redis", "rediss", "unix")
_MASK = "****"
Address = tuple[str, int]


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: one node (``url``), a master behind sentinels, or a cluster's seed nodes."""

    topology: str  # SINGLE, SENTINEL or CLUSTER
    url: str = ""  # SINGLE: the URL as given
    nodes: tuple[Address, ...] = ()  # SENTINEL: the sentinels; CLUSTER: the seed nodes
    master_name: str = ""  # SENTINEL
    db: int = 0  # SENTINEL
    username: Optional[str] = None
    password: Optional[str] = None


def parse_redis_url(text: str) -> RedisTarget:
    """The target ``text`` names; ``ValueError`` says what is wrong with it."""
    scheme, separator, rest = text.strip().partition("://")
    scheme = scheme.lower()
    if not separator or not scheme:
        raise ValueError(f"not a Redis URL: expected one of {_forms()}")
    if scheme in _SINGLE_SCHEMES:
        return _single(text, scheme)
    if scheme not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        raise ValueError(f"unknown scheme {scheme + '://'!r}: expected one of {_forms()}")
    if "?" in rest or "#" in rest:
        raise ValueError(f"{scheme}:// takes no query or fragment (options are callflow settings)")
    userinfo, hosts, path = _split(rest)
    username, password = _credentials(userinfo) if userinfo is not None else (None, None)
    nodes = _addresses(scheme, hosts)
    if scheme == CLUSTER_SCHEME:
        if path.strip("/") not in ("", "0"):
            raise ValueError("redis+cluster:// takes no master name or database: a Redis Cluster has only "
                             "database 0 (form redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...])")
        return RedisTarget(CLUSTER, nodes=nodes, username=username, password=password)
    master_name, _, db_text = path.partition("/")
    master_name = unquote(master_name)
    if not master_name:
        raise ValueError("redis+sentinel:// needs the monitored master's name after the addresses "
                         "(form redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB])")
    db_text = db_text.rstrip("/")
    if db_text and not (db_text.isdigit() and db_text.isascii()):
        raise ValueError(f"bad database {db_text!r} in redis+sentinel://: a whole number such as 0")
    return RedisTarget(SENTINEL, nodes=nodes, master_name=master_name, db=int(db_text or 0),
                       username=username, password=password)


def mask_redis_url(text: str) -> Optional[str]:
    """``text`` with its password replaced by ``****`` when it is a Sentinel or Cluster URL, else None
    (any other URL is masked the generic way)."""
    scheme, separator, rest = text.strip().partition("://")
    if not separator or scheme.lower() not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        return None
    userinfo, hosts, path = _split(rest)
    netloc = hosts if userinfo is None else f"{userinfo.partition(':')[0] if ':' in userinfo else ''}:{_MASK}@{hosts}"
    return f"{scheme}://{netloc}{'/' + path if path else ''}"


def _split(rest: str) -> tuple[Optional[str], str, str]:
    """(userinfo or None, hosts, path) of what follows ``scheme://``: the userinfo ends at the last
    ``@``, so a password holding ``/`` or ``,`` is never read as an address."""
    userinfo: Optional[str] = None
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    return userinfo, hosts, path


def _single(text: str, scheme: str) -> RedisTarget:
    if scheme != "unix":
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises on a port that is not a number in range
        except ValueError:
            raise ValueError(f"bad port in the {scheme}:// URL: a number from 1 to 65535") from None
        if not parts.hostname:
            raise ValueError(f"{scheme}:// URL without a host")
    return RedisTarget(SINGLE, url=text)


def _credentials(userinfo: str) -> tuple[Optional[str], Optional[str]]:
    user, colon, password = userinfo.partition(":")
    if not colon:  # "secret@host": redis-py reads a lone userinfo as a password only with a colon
        raise ValueError("the password goes after a colon: [:PASSWORD@]HOST:PORT")
    return (unquote(user) or None), unquote(password)


def _addresses(scheme: str, hosts: str) -> tuple[Address, ...]:
    what = "sentinel" if scheme == SENTINEL_SCHEME else "seed node"
    addresses: list[Address] = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"{scheme}:// needs at least one {what} as HOST:PORT (an empty one was given)")
        if item.startswith("["):  # [IPv6]:PORT
            host, bracket, port_text = item[1:].partition("]")
            if not bracket or not port_text.startswith(":"):
                raise ValueError(f"bad {what} address {item!r}: expected [IPV6]:PORT")
            port_text = port_text[1:]
        else:
            host, colon, port_text = item.rpartition(":")
            if not colon:
                raise ValueError(f"bad {what} address {item!r}: expected HOST:PORT")
        if not host:
            raise ValueError(f"bad {what} address {item!r}: no host before the port")
        if not (port_text.isdigit() and port_text.isascii() and 0 < int(port_text) < 65536):
            raise ValueError(f"bad port {port_text!r} in {what} address {item!r}: a number from 1 to 65535")
        addresses.append((host, int(port_text)))
    return tuple(addresses)


def _forms() -> str:
    return ("redis://, rediss://, unix:// (one node), redis+sentinel://HOST:PORT[,...]/MASTER_NAME[/DB], "
            "redis+cluster://HOST:PORT[,...]")
