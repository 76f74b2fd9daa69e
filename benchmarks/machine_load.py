"""How busy the machine was during a benchmark: CPU seconds of everything, and of our own children.

Their difference over a run is what other processes took, the figure benchmark results report so a
contended run is said to be one.
"""

from __future__ import annotations

import os
import resource


def machine_busy_seconds() -> float:
    """CPU seconds all processes have used since boot (user + nice + system, /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    return sum(int(value) for value in fields[:3]) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU seconds of this script's finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
