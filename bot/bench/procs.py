"""Resident memory and CPU time of running services, read from /proc (Linux).

Read directly rather than through psutil: three numbers per process do not justify a
dependency, and /proc is what psutil would read anyway. A service is measured with its
descendants, so a server that forks workers cannot hide memory in its children.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_KB = (os.sysconf("SC_PAGE_SIZE") // 1024) if hasattr(os, "sysconf") else 4


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    task_dir = PROC / str(pid) / "task"
    try:
        tasks = list(task_dir.iterdir())
    except OSError:
        return kids
    for task in tasks:
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return kids


def tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in seen or not (PROC / str(current)).exists():
            continue
        seen.append(current)
        todo += _children(current)
    return seen


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MiB (0 if it is gone)."""
    try:
        fields = (PROC / str(pid) / "statm").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) * PAGE_KB / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds one process has used so far (0 if it is gone)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0.0
    # the command name (field 2) may contain spaces: split after its closing parenthesis
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass(frozen=True)
class Usage:
    """A service's memory now and CPU seconds so far (with descendants)."""

    rss_mb: float
    cpu_s: float


def usage(pid: int) -> Usage:
    pids = tree(pid)
    return Usage(round(sum(rss_mb(p) for p in pids), 1), sum(cpu_seconds(p) for p in pids))


def usage_of(pids: dict[str, int]) -> dict[str, Usage]:
    """Usage of several named services at one moment."""
    return {name: usage(pid) for name, pid in pids.items()}
