"""``callflow config show``: the effective settings (environment, ``.env``, defaults), secrets masked.

Also ``load_settings()``: how every verb reads its settings, turning a bad value into a clear message
naming the variable and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr, ValidationError

from callflow.config import Settings
from callflow.entrypoints.cli import add_command_group
from callflow.redis_url import mask_redis_url

MASK = "****"
_SECRET_QUERY_KEYS = ("pass", "secret", "token", "key")
_EFFECTIVE = {"outbox_path": "outbox_file", "log_file": "log_path"}  # unset means a derived default


def register(subparsers: "argparse._SubParsersAction") -> None:
    verbs = add_command_group(subparsers, "config", "Inspect callflow's configuration (CALLFLOW_* variables, "
                              ".env, defaults).", "config_verb")
    show = verbs.add_parser(
        "show", help="print every setting in effect, secrets masked",
        description="Print every setting as CALLFLOW_NAME=value, as the server would read it now "
                    "(environment, then .env, then defaults). Passwords in URLs are masked.",
    )
    show.add_argument("--json", action="store_true", help="one JSON object instead of NAME=value lines")
    show.set_defaults(func=_show)


def load_settings() -> Settings:
    """Settings from the environment and ``.env``; a bad value prints which one and exits 2."""
    try:
        return Settings()
    except ValidationError as exc:
        print("callflow: invalid configuration:", file=sys.stderr)
        for error in exc.errors():
            name = "CALLFLOW_" + "__".join(str(part) for part in error["loc"]).upper()
            print(f"  {name}: {error['msg']}", file=sys.stderr)
        raise SystemExit(2)


def effective_values(settings: Settings) -> Dict[str, str]:
    """``{CALLFLOW_NAME: value}`` for every setting, derived defaults filled in, secrets masked."""
    values: Dict[str, str] = {}
    for field in type(settings).model_fields:
        value = getattr(settings, _EFFECTIVE.get(field, field))
        if isinstance(value, SecretStr):
            text = mask_secret(value.get_secret_value())
        elif isinstance(value, bool):
            text = str(value).lower()
        else:
            text = "" if value is None else str(value)
        values[f"CALLFLOW_{field.upper()}"] = text
    return values


def mask_secret(value: str) -> str:
    """A URL keeps its scheme, user, host and path with the password masked; anything else is masked whole."""
    several_hosts = mask_redis_url(value)  # redis+sentinel:// and redis+cluster:// list several HOST:PORT
    if several_hosts is not None:
        return several_hosts
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return MASK
    if not parts.scheme or not parts.netloc:
        return MASK
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username is not None or parts.password is not None:
        user = parts.username or ""
        netloc = f"{user}:{MASK}@{netloc}" if parts.password is not None else f"{user}@{netloc}"
    query = urlencode([(k, MASK if _is_secret_key(k) else v) for k, v in parse_qsl(parts.query)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _is_secret_key(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_QUERY_KEYS)


def _show(args: argparse.Namespace) -> int:
    values = effective_values(load_settings())
    if args.json:
        print(json.dumps(values, indent=2))
        return 0
    lines: List[str] = ["# callflow settings in effect (environment, .env, defaults); secrets masked"]
    lines += [f"{name}={value}" for name, value in values.items()]
    print("\n".join(lines))
    return 0
