"""All of callflow's settings, read once at the composition root.

Names are a contract with deployments (SPEC §4): every field maps to ``CALLFLOW_<FIELD>``.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import List, Optional, Tuple, Union

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    amqp_url: SecretStr = Field(SecretStr("amqp://guest:guest@127.0.0.1:5672/"), description="RabbitMQ URL.")
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

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return value

    @field_validator("allowed_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
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
    def allowed_network_list(self) -> Tuple[IpNetwork, ...]:
        return _parse_networks(self.allowed_networks)

    @property
    def terminal_status_set(self) -> frozenset:
        return frozenset(s.strip().lower() for s in self.terminal_statuses.split(",") if s.strip())

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


def _parse_networks(value: str) -> Tuple[IpNetwork, ...]:
    networks: List[IpNetwork] = []
    for part in value.split(","):
        part = part.strip()
        if part:
            networks.append(ipaddress.ip_network(part, strict=False))
    if not networks:
        raise ValueError("allowed_networks names no network")
    return tuple(networks)
