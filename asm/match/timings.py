"""Where the seconds of one ``asm match`` go: named stages, written to match.json as ``timings``.

Stages (seconds, wall clock): ``startup`` (interpreter and imports until the command runs),
``registry``, ``target`` (reading it and finding its notes), ``pool_start`` (render workers
starting, in a thread beside ``model_load``, ``neighbour_index`` and ``warm_imports``, the output
writers' imports done while the workers still start), ``pool_wait`` (what the command still waited
for the workers after its own preparation), ``pool_close``, ``search``, ``final_render``,
``outputs`` (files), ``store`` (registry rows) and ``total`` (process start to the end). Stages
that overlap ``pool_start`` are why the stages add up to more than ``total``.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``, 10 ms resolution), or None elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class StageTimes:
    """Seconds per named stage, in the order the stages first ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        age = process_age()
        self.origin = time.perf_counter() - (age if age is not None else 0.0)
        if age is not None:
            self.seconds["startup"] = age

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + float(seconds)

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def as_dict(self) -> dict[str, float]:
        """Every stage and ``total`` (since the process started), rounded to milliseconds."""
        out = {k: round(v, 3) for k, v in self.seconds.items()}
        out["total"] = round(time.perf_counter() - self.origin, 3)
        return out
