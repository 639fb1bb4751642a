"""CPU time and memory of a server process (and its children) read from /proc (Linux only).

CPU = utime + stime of /proc/<pid>/stat, which covers all of a process's threads, summed over the
process and its descendants; peak memory = VmHWM of /proc/<pid>/status (reset by writing ``5`` to
/proc/<pid>/clear_refs, Linux >= 4.0).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Optional

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (children of all its threads, recursively)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for tid in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds consumed so far by ``pids`` and their descendants."""
    total = 0
    for root in pids:
        for pid in descendants(root):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICKS


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds so far of each live thread of ``pid``, by ``name (tid)``."""
    threads: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return threads
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                head, _, rest = f.read().rpartition(")")
        except OSError:
            continue
        fields = rest.split()
        threads[f"{head.partition('(')[2]} ({tid})"] = (int(fields[11]) + int(fields[12])) / _TICKS
    return threads


def _status_kb(pid: int, key: str) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb(pids: Iterable[int]) -> Optional[float]:
    """VmHWM (peak resident set) in MiB, summed over ``pids`` and their descendants."""
    values = [_status_kb(pid, "VmHWM") for root in pids for pid in descendants(root)]
    known = [v for v in values if v is not None]
    return round(sum(known) / 1024, 1) if known else None


def rss_mb(pid: int) -> Optional[float]:
    value = _status_kb(pid, "VmRSS")
    return round(value / 1024, 1) if value is not None else None


def reset_peak_rss(pids: Iterable[int]) -> bool:
    """Make VmHWM start again from the current RSS; False when the kernel does not allow it."""
    ok = True
    for root in pids:
        for pid in descendants(root):
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                ok = False
    return ok
