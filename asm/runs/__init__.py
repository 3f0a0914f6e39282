"""Runs and their results: the one writer of ``run`` and ``result`` rows (``asm match``,
``asm test-model`` and the benchmarks) and their reading back.

* ``asm.runs.writer``: ``RunWriter`` and the one layout of ``result.extra``;
* ``asm.runs.files``: where a run's files live and how their paths are stored;
* ``asm.runs.read``: a run and its results as plain dicts (``asm results``, ``asm report``).
"""

from asm.runs.files import data_relative, report_dir, resolve_data_path, slug
from asm.runs.read import load_run, record_of, run_info
from asm.runs.writer import RUN_KINDS, RunWriter

__all__ = ["RUN_KINDS", "RunWriter", "data_relative", "load_run", "record_of", "report_dir", "resolve_data_path",
           "run_info", "slug"]
