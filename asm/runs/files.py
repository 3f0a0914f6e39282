"""Where a run's files live (``<data dir>/reports/run-<id>/``) and how ``result.extra`` stores paths:
relative to the data directory when inside it (so a moved data directory still works), else absolute."""

from __future__ import annotations

import re
from pathlib import Path

from asm.paths import data_dir


def report_dir(run_id: int) -> Path:
    """``<data dir>/reports/run-<id>``: the run's report, its media and pictures."""
    return data_dir() / "reports" / f"run-{int(run_id)}"


def slug(text: str, limit: int = 60) -> str:
    """A file-name-safe form of a method or target name (``model:cnn`` -> ``model-cnn``)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return (s or "x")[:limit]


def data_relative(path: Path | str) -> str:
    """``path`` relative to the data directory when inside it, else absolute."""
    try:
        return str(Path(path).resolve().relative_to(data_dir().resolve()))
    except ValueError:
        return str(Path(path).resolve())


def resolve_data_path(text: str) -> Path:
    """Inverse of ``data_relative``."""
    p = Path(text)
    return p if p.is_absolute() else data_dir() / p
