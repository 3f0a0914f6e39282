"""End-to-end dataset generation speed against the bare single-process render rate."""

from __future__ import annotations

import os
import time

import numpy as np

from asm.audio.signal import peak_dbfs
from asm.data.store import delete_dataset
from asm.midi.notes import held
from asm.perf.render_speed import bare_renderer
from asm.registry.db import session_scope
from asm.registry.synth_loader import load_spec
from asm.render import RenderPool, resolve_workers
from asm.synth.host import open_synth


def _bare_rate(spec, plan, duration: float, n: int) -> tuple[float, str]:
    """Renders/s of the bare DawDreamer call (or Synth.render where there is none), one process."""
    synth = open_synth(spec, isolate=False)
    try:
        bare = bare_renderer(synth)
        label = "bare DawDreamer call"
        space = spec.space
        presets = [space.apply_locks(space.quantise(space.full(f.astype(np.float64)))) for f in plan.free[:n]]
        notes = [plan.notes(i) for i in range(len(presets))]
        if bare is None:
            label = "Synth.render (no bare call for this synth kind)"

            def bare(values, nts, dur):
                return synth.render(values, nts, dur)

        bare(presets[0], notes[0], duration)  # warm-up
        t = time.perf_counter()
        for values, nts in zip(presets, notes):
            bare(values, nts, duration)
        return len(presets) / (time.perf_counter() - t), label
    finally:
        synth.close()


def measure_generate_speed(synth_name: str, n: int, workers, sample_rate: int, duration: float, mode: str = "mono",
                           seed: int = 0, bare_n: int = 400, shard_size: int | None = None) -> dict:
    from asm.audio.features import FeatureSettings
    from asm.data.generate import Reporter, _prepare, generate_dataset
    from asm.data.settings import DatasetSettings, auto_shard_size

    workers = resolve_workers(workers)
    name = f"perf-tmp-{os.getpid()}-{int(time.time())}"
    features = FeatureSettings()
    settings = DatasetSettings(synth=synth_name, mode=mode, size=n, sample_rate=sample_rate, duration=duration,
                               note_off=0.75 * duration, seed=seed, features=features,
                               shard_size=shard_size if shard_size is not None
                               else auto_shard_size(duration, sample_rate, features))
    spec, _, plan, _ = _prepare(name, settings, Reporter())
    bare_before, label = _bare_rate(spec, plan, duration, min(n, bare_n))
    t = time.perf_counter()
    pool = RenderPool(spec, workers)
    start_s = time.perf_counter() - t
    try:
        t = time.perf_counter()
        result = generate_dataset(name, settings, pool=pool)
        wall = time.perf_counter() - t
    finally:
        pool.close()
        try:
            delete_dataset(name)
        except Exception:  # noqa: BLE001 - never leave the perf run's error hidden behind cleanup
            pass
    bare_after, _ = _bare_rate(spec, plan, duration, min(n, bare_n))
    bare = (bare_before + bare_after) / 2
    run = result["run"]
    e2e = n / wall
    ws = run["worker_seconds"]
    return {
        "synth": synth_name, "mode": mode, "n": n, "workers": workers, "sample_rate": sample_rate,
        "duration": duration, "shard_size": settings.shard_size,
        "pool_start_s": start_s, "wall_s": wall, "examples_per_s": e2e,
        "shard_jobs_examples_per_s": run["examples_per_s"],
        "bare_rps": bare, "bare_rps_before": bare_before, "bare_rps_after": bare_after, "bare_label": label,
        "bare_x_workers": bare * workers, "ratio": e2e / (bare * workers),
        "worker_ms_per_example": {k: 1000 * v / n for k, v in ws.items()},
        "rejections": result["rejections"],
    }


def measure_batch_speed(synth_name: str, population: int, generations: int, workers, sample_rate: int,
                        duration: float, seed: int = 0) -> dict:
    """Search-style batches through the pool (same notes, a reduction in the workers) against one
    process rendering serially, per generation."""
    workers = resolve_workers(workers)
    with session_scope() as session:
        spec = load_spec(session, synth_name, sample_rate)
    space = spec.space
    rng = np.random.default_rng(seed)
    batches = [space.full(space.random_free(rng, population)) for _ in range(generations)]
    notes = held([60], 100, 0.75 * duration)
    synth = open_synth(spec, isolate=False)
    synth.render(batches[0][0], notes, duration)
    t = time.perf_counter()
    for b in batches:
        [peak_dbfs(synth.render(v, notes, duration)) for v in b]
    serial = (time.perf_counter() - t) / generations
    synth.close()
    with RenderPool(spec, workers) as pool:
        pool.render(batches[0][:workers], notes, duration, reduce=peak_dbfs)  # warm-up, installs reduce
        t = time.perf_counter()
        for b in batches:
            pool.render(b, notes, duration, reduce=peak_dbfs)
        pooled = (time.perf_counter() - t) / generations
    return {"synth": synth_name, "population": population, "generations": generations, "workers": workers,
            "serial_ms": 1000 * serial, "pool_ms": 1000 * pooled, "ideal_ms": 1000 * serial / workers,
            "efficiency": serial / workers / pooled}
