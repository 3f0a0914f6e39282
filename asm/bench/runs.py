"""Moved to ``asm.runs`` (one writer of run and result rows for every kind of run); these names stay
importable from here for code written against the old place."""

from asm.runs.files import data_relative, report_dir, resolve_data_path, slug
from asm.runs.read import load_run, run_info
from asm.runs.writer import RunWriter, utcnow

__all__ = ["RunWriter", "data_relative", "load_run", "report_dir", "resolve_data_path", "run_info", "slug", "utcnow"]
