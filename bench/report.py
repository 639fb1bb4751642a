"""Medians of repeated runs, the markdown table, and the targets each figure is held to."""
from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, Optional

MEDIAN_KEYS = (
    "calls_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "server_cpu_ms_per_call",
    "server_cpu_util", "server_peak_rss_mb", "loadgen_cpu_util",
)

#: (route, calls in flight, figure, bound, what it is): figures must stay at or under the bound
TARGETS: tuple[tuple[str, int, str, float, str], ...] = (
    ("checkphone", 100, "server_cpu_ms_per_call", 0.10, "server CPU ms per call"),
    ("event", 100, "server_cpu_ms_per_call", 0.45, "server CPU ms per call (confirms + outbox)"),
    ("event", 1, "p50_ms", 1.5, "p50 ms with Asterisk replying after 200 µs"),
    ("checkphone", 2000, "failed", 0, "failed calls"),
    ("event", 2000, "failed", 0, "failed calls"),
    ("checkphone", 2000, "late", 0, "calls answered after the deadline + slack"),
    ("event", 2000, "late", 0, "calls answered after the deadline + slack"),
    ("checkphone", 2000, "server_peak_rss_mb", 200, "peak RSS MB"),
    ("event", 2000, "server_peak_rss_mb", 200, "peak RSS MB"),
)


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure over ``runs``; failures and calls are summed, errors merged."""
    out: dict[str, Any] = {"runs": len(runs)}
    for key in MEDIAN_KEYS:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = round(statistics.median(values), 4) if values else None
    out["calls"] = sum(r["calls"] for r in runs)
    out["failed"] = sum(r["failed"] for r in runs)
    out["late"] = sum(r.get("late", 0) for r in runs)
    errors: Counter = Counter()
    statuses: Counter = Counter()
    for r in runs:
        errors.update(r.get("errors", {}))
        statuses.update(r.get("statuses", {}))
    out["errors"] = dict(errors.most_common(5))
    out["statuses"] = dict(statuses)
    out["commands_per_call"] = runs[-1].get("commands_per_call") if runs else None
    out["server_turns_p50_ms"] = runs[-1].get("server_turns_p50_ms") if runs else None
    for service in sorted({name for r in runs for name in r.get("services_cpu_ms_per_call", {})}):
        values = [r["services_cpu_ms_per_call"][service] for r in runs if service in r.get("services_cpu_ms_per_call", {})]
        out[f"{service}_cpu_ms_per_call"] = round(statistics.median(values), 4)
    return out


def ratio(value: Optional[float], floor: Optional[float]) -> Optional[float]:
    if value is None or not floor:
        return None
    return round(value / floor, 1)


def table(blocks: list[dict[str, Any]]) -> str:
    head = ("| route | in flight | server | calls/s | p50 ms | p99 ms | CPU ms/call | CPU × floor "
            "| Redis + RabbitMQ CPU ms/call | peak RSS MB | failed | late | loadgen CPU |")
    lines = [head, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for block in blocks:
        floor = block.get("floor")
        for name in ("floor", "callflow"):
            figures = block.get(name)
            if not figures:
                continue
            cpu_ratio = ratio(figures["server_cpu_ms_per_call"], floor and floor["server_cpu_ms_per_call"])
            delay = f" ({block['reply_delay_us']:g} µs replies)" if block.get("reply_delay_us") else ""
            lines.append(
                f"| {block['route']} | {block['concurrency']}{delay} | {name} | {_f(figures['calls_per_s'], 0)} "
                f"| {_f(figures['p50_ms'], 2)} | {_f(figures['p99_ms'], 2)} "
                f"| {_f(figures['server_cpu_ms_per_call'], 3)} | {'' if name == 'floor' else _f(cpu_ratio, 1)} "
                f"| {_services(figures)} | {_f(figures['server_peak_rss_mb'], 0)} | {figures['failed']}/{figures['calls']} "
                f"| {figures.get('late', 0)} "
                f"| {_f(figures['loadgen_cpu_util'] and figures['loadgen_cpu_util'] * 100, 0)}% |"
            )
    return "\n".join(lines)


def verdicts(blocks: list[dict[str, Any]]) -> list[str]:
    """One line per target whose block was measured: the figure, the bound, met or not."""
    lines = []
    for route, concurrency, key, bound, what in TARGETS:
        for block in blocks:
            if block["route"] != route or block["concurrency"] != concurrency or not block.get("callflow"):
                continue
            value = block["callflow"].get(key)
            met = value is not None and value <= bound
            shown = _f(value, 0 if key in ("failed", "late") else 3)
            lines.append(f"- {route} at {concurrency}: {what} = {shown} (target ≤ {bound:g}): "
                         f"{'met' if met else 'NOT met'}")
    return lines


def _services(figures: dict[str, Any]) -> str:
    redis, rabbit = figures.get("redis_cpu_ms_per_call"), figures.get("rabbitmq_cpu_ms_per_call")
    if redis is None and rabbit is None:
        return "–"
    return f"{_f(redis, 3)} + {_f(rabbit, 3)}"


def _f(value: Optional[float], digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"
