"""The render layer: a pool of worker processes, each holding one opened synth, and the Ray executor.

Everything that renders many presets (datasets, search, models, benchmarks, the web app) imports it
from here; it depends only on the synth host, audio features and the error type.
"""

from asm.render.pool import RayExecutor, RenderPool, cpu_count, resolve_workers

__all__ = ["RayExecutor", "RenderPool", "cpu_count", "resolve_workers"]
