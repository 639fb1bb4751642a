"""``CALLFLOW_AMQP_URL``: one ``amqp://``/``amqps://`` URL, or several separated by commas.

The nodes of one RabbitMQ cluster, tried in the order given on connect and on every reconnect (ADR
0105). Pure: used by the settings' validation, the publisher and ``callflow events tail``. Error
messages never repeat a password: a URL is shown with its password masked, a piece that is not a URL
only from its last ``@`` on. The forms are a contract with deployments (docs/reference.md, Settings).
"""
from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

SCHEMES = ("amqp", "amqps")
_MASK = "****"
DEFAULT_HEARTBEAT_S = 5


def parse_amqp_urls(value: str) -> tuple[str, ...]:
    """The URLs of ``value`` in order, each stripped of surrounding spaces; ``ValueError`` saying
    which one is wrong and why. A comma inside a URL (in a password) must be written ``%2C``."""
    parts = value.split(",")
    urls: list[str] = []
    for position, raw in enumerate(parts, start=1):
        part = raw.strip()
        where = f"URL {position} of {len(parts)}" if len(parts) > 1 else "the URL"
        if not part:
            raise ValueError(f"{where} is empty: give one amqp:// or amqps:// URL, or several separated by commas")
        problem = _problem(part)
        if problem:
            cut = len(parts) > 1 and ("://" not in part or problem.startswith("is not a valid URL"))
            hint = " (a comma inside a URL, e.g. in a password, must be written %2C)" if cut else ""
            raise ValueError(f"{where} ({shown(part)}) {problem}{hint}")
        urls.append(part)
    if len(set(urls)) != len(urls):
        raise ValueError("the same broker URL is given twice")
    return tuple(urls)


def node_address(url: str) -> str:
    """``host:port`` of a URL that ``parse_amqp_urls`` accepted (the port defaulted by its scheme):
    how logs and metrics name a node, without user or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"


def with_heartbeat(url: str, seconds: int = DEFAULT_HEARTBEAT_S) -> str:
    """``url`` asking for AMQP heartbeats every ``seconds`` unless it names its own ``heartbeat``.

    Without heartbeats a node that vanishes without closing its sockets (a lost host, a partition, a
    frozen VM) is noticed only after three missed beats of the client's default 60 s: minutes of
    publishes timing out on a dead connection instead of a reconnect to the next node."""
    parts = urlsplit(url)
    if any(key == "heartbeat" for key, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return url
    joiner = "&" if parts.query else ("" if url.endswith("?") else "?")
    head, hash_, fragment = url.partition("#")
    return f"{head}{joiner}heartbeat={seconds}{hash_}{fragment}"


def shown(part: str) -> str:
    """``part`` safe to print: a password masked, and so is a port that is not a number (it may be
    the start of a password cut at a comma); a piece with no scheme is shown from its last ``@`` on."""
    scheme, sep, rest = part.partition("://")
    if not sep:
        if "@" in part:
            return _MASK + "@" + part.rpartition("@")[2]
        return _MASK if ":" in part else part
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    host, colon, port = hostport.rpartition(":") if not hostport.endswith("]") else (hostport, "", "")
    if colon and not port.isdigit():
        hostport = f"{host}:{_MASK}"
    if at:
        user, has_password, _ = userinfo.partition(":")
        hostport = f"{user}:{_MASK}@{hostport}" if has_password else f"{user}@{hostport}"
    return f"{scheme}://{hostport}{slash}{path}"


def _problem(part: str) -> str:
    """Why ``part`` is not a broker URL, or ``""``."""
    try:
        parts = urlsplit(part)
        port = parts.port  # raises on a port that is not a number in 0..65535
    except ValueError:  # its text may quote a piece of the password
        return "is not a valid URL (host, or a port from 1 to 65535)"
    if parts.scheme.lower() not in SCHEMES:
        found = f"'{parts.scheme}://'" if parts.scheme and "://" in part else "no scheme"
        return f"must start with amqp:// or amqps:// ({found})"
    if not parts.hostname:
        return "names no host"
    if port == 0:
        return "has port 0"
    return ""
