"""Speed of the metric module (and of note detection) on real asm-sub renders."""

from __future__ import annotations

import time

import numpy as np

from asm.audio.analysis import NoPitchFound, detect_notes
from asm.midi.notes import held
from asm.registry.synth_loader import load_synth


def measure_metric_speed(
    sample_rate: int = 16000,
    durations: tuple[float, ...] = (1.0, 2.0),
    batch: int = 1500,
    distinct: int = 200,
    repeats: int = 3,
    threads: int | None = None,
    chunk: int | None = None,
    seed: int = 0,
) -> dict:
    """Milliseconds per (candidate, target) pair of each metric and objective set, best of ``repeats``.

    ``distinct`` random asm-sub presets are rendered per duration and tiled to ``batch`` candidates
    scored against one target (what a search does each generation).
    """
    import torch

    from asm.audio import metrics as M

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _measure(sample_rate, durations, batch, distinct, repeats, int(chunk or M.DEFAULT_CHUNK), seed)
    finally:
        torch.set_num_threads(previous)


def _measure(sample_rate: int, durations: tuple[float, ...], batch: int, distinct: int, repeats: int, chunk: int,
             seed: int) -> dict:
    import torch

    from asm.audio import metrics as M

    synth = load_synth("asm-sub", sample_rate)
    space = synth.space
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, float]] = {}
    analysis_ms: dict[str, float] = {}
    specs = [(name, [name]) for name in M.METRICS] + [
        ("set: asm", "asm"), ("set: asm-v1", "asm-v1"), ("set: autosoundmatch", "autosoundmatch"),
        ("report metrics", M.REPORT_METRICS)]
    for duration in durations:
        notes = held([60], 100, 0.75 * duration)
        presets = space.full(space.random_free(rng, min(distinct, batch)))
        audio = np.stack([synth.render(v, notes, duration) for v in presets])
        target = synth.render(space.defaults(), notes, duration)
        candidates = np.resize(audio, (batch, audio.shape[1]))
        key = f"{duration:g}s"
        M.distances(candidates[:chunk], target, sample_rate, list(M.METRICS), chunk)  # warm caches
        for label, spec in specs:
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                M.distances(candidates, target, sample_rate, spec, chunk)
                best = min(best, time.perf_counter() - t0)
            rows.setdefault(label, {})[key] = 1000.0 * best / batch
        t0 = time.perf_counter()
        for a in audio[:20]:
            try:
                detect_notes(a, sample_rate)
            except NoPitchFound:  # unpitched random presets are part of the workload
                continue
        analysis_ms[key] = 1000.0 * (time.perf_counter() - t0) / 20
    return {
        "sample_rate": sample_rate,
        "durations": list(durations),
        "batch": batch,
        "chunk": chunk,
        "threads": torch.get_num_threads(),
        "ms_per_pair": rows,
        "detect_notes_ms": analysis_ms,
    }
