"""All of callflow's settings, read once at the composition root.

Names are a contract with deployments (docs/reference.md, Settings): every field maps to ``CALLFLOW_<FIELD>``.

Decisions: ADR 0080, 0081, 0082 (connection limits, the ops port, URL checks at start).
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Optional, Union
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callflow.amqp_urls import parse_amqp_urls
from callflow.redis_url import parse_redis_url

IpNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def _state_dir() -> Path:
    """Where the service keeps its files when nothing else is configured (XDG state dir)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "callflow"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLFLOW_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
    )

    # --- FastAGI listener -------------------------------------------------------------------
    agi_host: str = Field("127.0.0.1", description="Address the FastAGI server listens on.")
    agi_port: int = Field(4573, ge=0, le=65535, description="FastAGI TCP port.")
    allowed_networks: str = Field(
        "127.0.0.0/8,::1/128",
        description="Comma-separated source networks allowed to connect; others are closed at once.",
    )
    listen_backlog: int = Field(4096, ge=1, description="TCP listen backlog (bursts of calls).")
    max_sessions: int = Field(
        3000, ge=1, description="Concurrent AGI sessions; over it a route answers its safe default at once."
    )
    max_header_bytes: int = Field(16384, ge=1024, description="Largest agi_* header block accepted.")
    max_line_bytes: int = Field(262144, ge=1024, description="Longest reply line accepted from Asterisk.")
    header_timeout_ms: int = Field(2000, ge=1, description="Time allowed for the agi_* header block.")
    checkphone_deadline_ms: int = Field(500, ge=1, description="Deadline of a checkphone session.")
    event_deadline_ms: int = Field(2000, ge=1, description="Deadline of an event session.")
    drain_timeout_s: float = Field(10.0, ge=0, description="On SIGTERM, how long sessions in flight may finish.")
    fallback_grace_ms: int = Field(
        200, ge=1, description="Time a route's fallback (deadline, overload, error) gets to set its safe defaults."
    )
    overload_lag_fraction: float = Field(
        0.1, gt=0, le=1,
        description="When the event loop runs behind by more than this fraction of a route's deadline, "
                    "new calls of that route get its fallback (overloaded) at once instead of full work.",
    )

    # --- worker processes ----------------------------------------------------------------------
    workers: str = Field(
        "1", pattern=r"^\s*(auto|[1-9][0-9]*)\s*$",
        description="Worker processes sharing the AGI port: 1 (one process, no supervisor), a number, "
                    "or auto (one per usable core).",
    )

    # --- Redis --------------------------------------------------------------------------------
    redis_url: SecretStr = Field(SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL.")
    redis_timeout_ms: int = Field(300, ge=1, description="Timeout of one Redis round trip.")
    redis_max_connections: int = Field(256, ge=1, description="Redis connection pool size.")
    blacklist_ttl_s: int = Field(86400, ge=0, description="TTL of a blacklist entry added by the CLI (0 = none).")
    stats_ttl_s: int = Field(86400, ge=1, description="Expiry given to a call-status set when it is created.")

    # --- checkphone policy ----------------------------------------------------------------------
    default_region: str = Field("VN", description="Region used to parse national numbers.")
    fail_closed: bool = Field(
        False, description="When Redis does not answer in time: false = policy normal, true = blacklist."
    )
    anonymous_policy: str = Field(
        "normal", pattern="^(normal|blacklist)$", description="Policy for anonymous/unknown/empty caller ids."
    )

    # --- RabbitMQ and the outbox ------------------------------------------------------------------
    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="RabbitMQ URL, or the URLs of a cluster's nodes separated by commas: tried in order on "
                    "connect and on every reconnect.",
    )
    amqp_queue_type: str = Field(
        "classic", pattern="^(classic|quorum)$",
        description="Type of the per-customer queues callflow declares: classic, or quorum (replicated; for a cluster).",
    )
    publish_timeout_ms: int = Field(
        0, ge=0, description="How long an event session waits for the broker's confirm before leaving it to the outbox (0: answer once stored)."
    )
    publish_confirm_timeout_ms: int = Field(
        5000, ge=1, description="How long one publish may wait for its confirm before it counts as failed (the event stays in the outbox and is sent again)."
    )
    publish_max_in_flight: int = Field(512, ge=1, description="Publishes awaiting the broker's confirm at the same time.")
    amqp_reconnect_interval_s: float = Field(1.0, gt=0, description="Seconds between attempts to reconnect to RabbitMQ.")
    outbox_path: Optional[Path] = Field(None, description="SQLite outbox file (default: under data_dir).")
    outbox_synchronous: str = Field(
        "FULL", pattern="^(FULL|NORMAL)$",
        description="SQLite synchronous mode of the outbox: FULL survives power loss, NORMAL only a crash of the process.",
    )
    outbox_flush_timeout_s: float = Field(
        5.0, ge=0, description="On shutdown, how long the relay tries to deliver the events still in the outbox."
    )
    data_dir: Path = Field(default_factory=lambda: _state_dir() / "data", description="Service data directory.")

    # --- events ------------------------------------------------------------------------------------
    timezone: str = Field("Asia/Ho_Chi_Minh", description="Zone of the event's wall-clock times.")
    terminal_statuses: str = Field(
        "hangup,completed,ended,busy,noanswer,failed,cancelled,abandoned,missed",
        description="Comma-separated call statuses that end a call (set end_time).",
    )

    # --- operations -----------------------------------------------------------------------------
    http_host: str = Field("127.0.0.1", description="Address of the metrics and health HTTP server.")
    http_port: int = Field(9108, ge=0, le=65535, description="Port of the metrics and health HTTP server.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_file: Optional[Path] = Field(None, description="Rotating JSON log file (default: under log_dir).")
    log_dir: Path = Field(default_factory=lambda: _state_dir() / "log", description="Service log directory.")
    log_format: str = Field(
        "auto", pattern="^(auto|console|json)$", description="Console log format: auto = pretty on a TTY."
    )

    # --- the log file's rotation and the numbers it shows ---------------------------------------
    log_max_bytes: int = Field(
        52428800, ge=0,
        description="Size at which the log file is rotated (0: never; an outside rotation such as "
                    "logrotate is then followed: the file is reopened once moved).",
    )
    log_backups: int = Field(5, ge=0, description="Rotated log files kept (callflow.log.1 to .N; 0: the file is emptied).")
    log_numbers: str = Field(
        "masked", pattern="^(masked|full)$",
        description="How checkphone's log lines show the number checked: masked (0912***496) or full.",
    )

    # --- connection limits and the ops port -----------------------------------------------------------
    max_header_connections: int = Field(
        8192, ge=1,
        description="Connections accepted whose agi_* header has not arrived yet (they hold no session); "
                    "over it the oldest such connection (waiting 0.1 s or more) is closed, else the new one.",
    )
    max_header_connections_per_peer: int = Field(
        4096, ge=1, description="The same bound per source address: its oldest waiting connection is closed first.",
    )
    http_max_connections: int = Field(
        64, ge=1, description="Concurrent connections to the metrics and health server; more are closed at once.",
    )
    http_allowed_networks: str = Field(
        "",
        description="Comma-separated source networks allowed on the metrics and health port "
                    "(empty: those of CALLFLOW_ALLOWED_NETWORKS); loopback is always allowed.",
    )

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return value

    @field_validator("amqp_url")
    @classmethod
    def _valid_amqp_urls(cls, value: SecretStr) -> SecretStr:
        parse_amqp_urls(value.get_secret_value())
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis_form(cls, value: SecretStr) -> SecretStr:
        parse_redis_url(value.get_secret_value())  # one node, Sentinel or Cluster; ValueError names the problem
        return value

    @field_validator("allowed_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        _parse_networks(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: SecretStr) -> SecretStr:
        problem = _url_problem(value.get_secret_value(), _REDIS_SCHEMES)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("amqp_url")
    @classmethod
    def _valid_amqp_url(cls, value: SecretStr) -> SecretStr:
        urls = value.get_secret_value().split(",")  # several URLs: tried in order
        for number, url in enumerate(urls, 1):
            problem = _url_problem(url, _AMQP_SCHEMES)
            if problem:
                raise ValueError(problem if len(urls) == 1 else f"URL {number}: {problem}")
        return value

    @field_validator("http_allowed_networks")
    @classmethod
    def _valid_http_networks(cls, value: str) -> str:
        if value.strip():
            _parse_networks(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError, which pydantic passes through
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        import phonenumbers

        value = value.strip().upper()
        if phonenumbers.country_code_for_region(value) == 0:  # an unknown region reads no national number
            raise ValueError(f"unknown region {value!r}: a two-letter country code such as VN")
        return value

    @property
    def allowed_network_list(self) -> tuple[IpNetwork, ...]:
        return _parse_networks(self.allowed_networks)

    @property
    def http_allowed_network_list(self) -> tuple[IpNetwork, ...]:
        """The ops port's sources: its own list, else the AGI one; loopback always."""
        own = self.http_allowed_networks if self.http_allowed_networks.strip() else self.allowed_networks
        return _parse_networks(own) + _parse_networks("127.0.0.0/8,::1/128")

    @property
    def terminal_status_set(self) -> frozenset:
        return frozenset(s.strip().lower() for s in self.terminal_statuses.split(",") if s.strip())

    @property
    def amqp_urls(self) -> tuple[str, ...]:
        """The broker URLs of ``amqp_url``, in the order they are tried."""
        return parse_amqp_urls(self.amqp_url.get_secret_value())

    @property
    def outbox_file(self) -> Path:
        return self.outbox_path or self.data_dir / "outbox.sqlite3"

    @property
    def worker_count(self) -> int:
        """``workers`` as a number: ``auto`` is the cores this process may run on."""
        value = self.workers.strip()
        if value == "auto":
            return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        return int(value)

    @property
    def log_path(self) -> Path:
        return self.log_file or self.log_dir / "callflow.log"


def _parse_networks(value: str) -> tuple[IpNetwork, ...]:
    networks: list[IpNetwork] = []
    for part in value.split(","):
        part = part.strip()
        if part:
            networks.append(_ipv4_if_mapped(ipaddress.ip_network(part, strict=False)))
    if not networks:
        raise ValueError("allowed_networks names no network")
    return tuple(networks)


def _ipv4_if_mapped(network: IpNetwork) -> IpNetwork:
    """``::ffff:10.0.0.0/104`` is ``10.0.0.0/8``: clients are matched as IPv4 addresses (a dual-stack
    socket's ``::ffff:a.b.c.d`` too), so an IPv4-mapped network is written in IPv4 to match them."""
    mapped = getattr(network.network_address, "ipv4_mapped", None)
    return network if mapped is None else ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")


# --- URL checks: syntax only, so a typo stops the start at once; the adapters parse them.
# Messages never quote the URL: it may hold a password.
_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster")
_AMQP_SCHEMES = ("amqp", "amqps")
_MANY_HOSTS = ("redis+sentinel", "redis+cluster")  # HOST:PORT[,HOST:PORT...]


def _url_problem(url: str, schemes: tuple[str, ...]) -> str:
    """Why ``url`` cannot be a URL of one of ``schemes`` (host, port, database syntax), or ""."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"not a URL ({exc})"
    scheme = parts.scheme.lower()
    if "://" not in url or scheme not in schemes:
        expected = ", ".join(s + "://" for s in schemes)
        if scheme and "://" in url:
            return f"the scheme {scheme}:// is not one of {expected}"
        return f"not a URL: it starts with none of {expected}"
    if scheme == "unix":
        return "" if parts.path else "unix:// needs the socket's path"
    hosts = parts.netloc.rpartition("@")[2]
    for host in hosts.split(",") if scheme in _MANY_HOSTS else [hosts]:
        problem = _host_port_problem(host, required=scheme in _MANY_HOSTS)
        if problem:
            return problem
    segments = [part for part in parts.path.split("/") if part]
    if scheme == "redis+sentinel":
        if not segments:
            return "redis+sentinel:// needs the master's name: redis+sentinel://HOST:PORT/MASTER[/DB]"
        segments = segments[1:]
    if scheme.startswith("redis") and (len(segments) > 1 or (segments and not segments[0].isdigit())):
        return f"the database must be a number, not {'/'.join(segments)!r}"
    return ""


def _host_port_problem(hostport: str, required: bool) -> str:
    """Why ``HOST[:PORT]`` (``[v6]:PORT``) is not one, or ""."""
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        if rest and not rest.startswith(":"):
            return f"bad address {hostport!r}"
        port = rest[1:] if rest else ""
    else:
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    if any(c.isspace() for c in hostport):
        return "the host holds a space"
    if required and not host:
        return "a host is missing (HOST:PORT[,HOST:PORT...])"
    if ":" in hostport and not port.isdigit():
        return f"port {port!r} is not a number"
    if port and not 0 < int(port) <= 65535:
        return f"port {port} is not between 1 and 65535"
    return ""
