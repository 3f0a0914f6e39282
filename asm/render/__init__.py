"""The render layer: a pool of worker processes, each holding one opened synth, and the Ray executor.

Everything that renders many presets (datasets, search, models, benchmarks, the web app) imports it
from here; it depends only on the synth host, audio features and the error type. Work it runs for
others (dataset shards) arrives as a ``ShardWork`` object, so nothing here imports its callers.

Modules: ``cores`` (worker counts), ``messages`` (the pool/worker protocol), ``worker`` (the worker
process), ``executor`` (the ``ShardExecutor`` and ``ShardWork`` interfaces), ``pool`` (``RenderPool``),
``ray`` (``RayExecutor``; Ray itself, an optional extra, is imported only when one starts).
"""

from asm.render.cores import cpu_count, resolve_workers
from asm.render.executor import NoProgress, Progress, ShardExecutor, ShardWork
from asm.render.pool import RenderPool, stall_timeout_for
from asm.render.ray import RayExecutor

__all__ = ["NoProgress", "Progress", "RayExecutor", "RenderPool", "ShardExecutor", "ShardWork", "cpu_count",
           "resolve_workers", "stall_timeout_for"]

