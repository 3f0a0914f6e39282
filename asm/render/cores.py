"""How many workers: ``--workers auto|N`` resolved against the cores this process may use."""

from __future__ import annotations

import os

from asm.errors import AsmError


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | str | None) -> int:
    """``auto``/None -> the number of usable cores; otherwise a positive int."""
    if workers is None or (isinstance(workers, str) and workers.strip().lower() == "auto"):
        return cpu_count()
    try:
        n = int(workers)
    except (TypeError, ValueError):
        raise AsmError(f"--workers must be a positive number or 'auto', got {workers!r}") from None
    if n < 1:
        raise AsmError(f"--workers must be at least 1, got {n}")
    return n
