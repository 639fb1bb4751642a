"""``callflow config show``: the effective settings (environment, ``.env``, defaults), secrets masked.

Also ``load_settings()``: how every verb reads its settings, turning a bad value into a clear message
naming the variable and exit status 2.

Decisions: ADR 0105 (a cluster's broker nodes in one URL setting).
"""
from __future__ import annotations

import argparse
import json
import sys
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr, ValidationError

from callflow.config import Settings
from callflow.entrypoints.cli import add_command_group
from callflow.redis_url import mask_redis_url, parse_redis_url

MASK = "****"
_SECRET_QUERY_KEYS = ("pass", "secret", "token", "key")
_EFFECTIVE = {"outbox_path": "outbox_file", "log_file": "log_path"}  # unset means a derived default


def register(subparsers: argparse._SubParsersAction) -> None:
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
    """Settings from the environment and ``.env``; a bad value prints which one, on one line, and exits 2."""
    try:
        return Settings()
    except ValidationError as exc:
        print(f"callflow: invalid configuration: {settings_problems(exc)}", file=sys.stderr)
        raise SystemExit(2) from None


def settings_problems(error: ValidationError) -> str:
    """``CALLFLOW_NAME: why; ...``: each bad setting, on one line (values are not repeated: a URL
    may hold a password)."""
    problems = []
    for item in error.errors():
        name = "CALLFLOW_" + "__".join(str(part) for part in item["loc"]).upper()
        message = str(item["msg"]).replace("Value error, ", "", 1)
        problems.append(f"{name}: {message}")
    return "; ".join(problems)


def effective_values(settings: Settings) -> dict[str, str]:
    """``{CALLFLOW_NAME: value}`` for every setting, derived defaults filled in, secrets masked."""
    values: dict[str, str] = {}
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
    """A URL keeps its scheme, user, host and path with the password masked; anything else is masked whole.
    A comma-separated list of URLs (a broker cluster's nodes) is masked URL by URL."""
    several_hosts = mask_redis_url(value)  # redis+sentinel:// and redis+cluster:// list several HOST:PORT
    if several_hosts is not None:
        return several_hosts
    if value.count("://") > 1:
        return ",".join(mask_secret(part.strip()) for part in value.split(","))
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


#: the URL schemes each client accepts: anything else cannot work, whatever the rest says
URL_SCHEMES = {"amqp_url": ("amqp", "amqps")}  # CALLFLOW_REDIS_URL: every form is checked by parse_redis_url


def url_problems(settings: Settings) -> list[str]:
    """``CALLFLOW_NAME: why`` for each URL setting its client cannot use (scheme, port)."""
    problems: list[str] = []
    try:
        parse_redis_url(settings.redis_url.get_secret_value())
    except ValueError as exc:
        problems.append(f"CALLFLOW_REDIS_URL: {exc}")
    for field, schemes in URL_SCHEMES.items():
        name = f"CALLFLOW_{field.upper()}"
        # CALLFLOW_AMQP_URL may list a cluster's nodes, separated by commas: each is one URL
        urls = settings.amqp_urls if field == "amqp_url" else (getattr(settings, field).get_secret_value(),)
        for url in urls:
            try:
                parts = urlsplit(url)
                _ = parts.port  # raises on a port that is not a number in 0-65535
            except ValueError as exc:
                problems.append(f"{name}: {mask_secret(url)} is not a usable URL ({exc})")
                continue
            if parts.scheme not in schemes:
                problems.append(f"{name}: scheme {parts.scheme or '(none)'!r} in {mask_secret(url)} is not one of "
                                f"{', '.join(schemes)}")
    return problems


def _show(args: argparse.Namespace) -> int:
    settings = load_settings()
    values = effective_values(settings)
    if args.json:
        print(json.dumps(values, indent=2))
    else:
        lines: list[str] = ["# callflow settings in effect (environment, .env, defaults); secrets masked"]
        lines += [f"{name}={value}" for name, value in values.items()]
        print("\n".join(lines))
    problems = url_problems(settings)
    for problem in problems:  # shown after the values: the operator sees what is in effect and what is wrong
        print(f"callflow config show: {problem}", file=sys.stderr)
    return 2 if problems else 0
