"""Building one shard inside a worker: render every slot (replacing unusable renders), compute the
features in batches, quantise the audio and write the file. No audio leaves the worker.

A slot tries its first-choice preset, then replacements from its own random stream (``STREAM_REPLACE``,
keyed by the slot), skipping presets already used elsewhere, until a render is finite and audible.
The stored parameters are the exact float32 values that were rendered, so the label always belongs
to the audio. ``ShardJob.crashed`` lists (slot, attempt) pairs that killed a worker before: they
count as rejected without being rendered again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from asm.audio.signal import SILENCE_PEAK
from asm.data.plan import STREAM_REPLACE, FactoryPool, as_label, preset_keys
from asm.data.settings import DatasetSettings
from asm.data.shards import encode_shard, write_shard
from asm.errors import AsmError
from asm.midi.notes import Note

MAX_ATTEMPTS = 200  # presets one slot may try before generation stops with an error
FEATURE_BATCH = 8  # renders per log-mel batch: small enough to stay in cache (32 cost ~25% more per example)
REJECTION_KINDS = ("silent", "nonfinite", "crashed", "duplicate")


@dataclass
class GenerationContext:
    """What every shard job of one dataset shares; sent once to each worker."""

    dataset: str
    directory: str
    settings: DatasetSettings
    forbidden: np.ndarray  # sorted uint64 keys of every first-choice preset
    spare: FactoryPool
    fault: dict | None = None  # testing only: {"crash_slots": [...]} makes the worker die there


@dataclass
class ShardJob:
    index: int
    start: int
    count: int
    file: str  # file name inside the dataset directory
    free: np.ndarray  # (count, n_free) float32 first choices
    keys: np.ndarray  # (count,) uint64
    sources: np.ndarray  # (count,) int32
    splits: np.ndarray  # (count,) uint8
    note_offsets: np.ndarray  # (count + 1,) int64
    notes: np.ndarray  # NOTE_DTYPE
    crashed: frozenset = frozenset()  # {(slot, attempt)}
    extra_forbidden: np.ndarray | None = None  # sorted uint64: keys taken by earlier shards (dedup pass)
    attempt_limit: int = MAX_ATTEMPTS


@dataclass
class ShardResult:
    index: int
    start: int
    count: int
    file: str
    sha256: str
    bytes: int
    n_notes: int
    rejections: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)  # render, features, write
    payload: bytes | None = None  # the encoded shard, when the writer is not the worker (Ray)


class Progress(Protocol):
    def mark(self, position: int, attempt: int) -> None: ...
    def done(self, count: int) -> None: ...


class _NoProgress:
    def mark(self, position: int, attempt: int) -> None:
        pass

    def done(self, count: int) -> None:
        pass


def _contains(sorted_keys: np.ndarray | None, key: int) -> bool:
    if sorted_keys is None or len(sorted_keys) == 0:
        return False
    i = int(np.searchsorted(sorted_keys, np.uint64(key)))
    return i < len(sorted_keys) and int(sorted_keys[i]) == key


def _notes_of(job: ShardJob, j: int) -> list[Note]:
    rows = job.notes[job.note_offsets[j] : job.note_offsets[j + 1]]
    return [Note(int(r["pitch"]), int(r["velocity"]), float(r["start"]), float(r["duration"])) for r in rows]


def _replacement(ctx: GenerationContext, space, rng: np.random.Generator, factory_slot: bool, tried: set[int]):
    """The next preset for a slot: an untried spare factory preset for a factory slot (while any
    remain), otherwise a random one."""
    if factory_slot and len(ctx.spare.ids):
        untried = np.flatnonzero(~np.isin(ctx.spare.keys, np.fromiter(tried, np.uint64, len(tried))))
        if len(untried):
            i = int(untried[rng.integers(len(untried))])
            return ctx.spare.free[i], int(ctx.spare.keys[i]), int(ctx.spare.ids[i])
    free = as_label(space, space.random_free(rng, 1))[0]
    return free, int(preset_keys(space, free)[0]), -1


def build_shard(synth, ctx: GenerationContext, job: ShardJob, progress: Progress | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Render, check and featurise one shard; returns its arrays and statistics."""
    import torch

    from asm.audio.features import logmel

    progress = progress or _NoProgress()
    s = ctx.settings
    space = synth.space
    n, n_free, T = job.count, space.n_free, s.n_samples
    crash_slots = set((ctx.fault or {}).get("crash_slots", ()))
    int16 = s.audio_dtype == "int16"
    stored = np.empty((n if s.has_audio else 0, T), dtype=np.int16 if int16 else np.float16)
    feats = np.empty((n, s.features.n_mels, s.n_frames), dtype=np.float16)
    batch = np.empty((FEATURE_BATCH, T), dtype=np.float32)  # renders awaiting features, still in cache
    params = np.empty((n, n_free), dtype=np.float32)
    keys = np.empty(n, dtype=np.uint64)
    sources = np.empty(n, dtype=np.int32)
    attempts = np.zeros(n, dtype=np.uint16)
    peaks = np.empty(n, dtype=np.float32)
    rejected = dict.fromkeys(REJECTION_KINDS, 0)
    used: set[int] = set()
    duration = float(s.duration)
    t_features = 0.0

    def flush(end: int) -> float:
        """Log-mel and storage conversion of the renders of examples [end - b, end)."""
        t = time.perf_counter()
        b = (end - 1) % FEATURE_BATCH + 1
        rows = slice(end - b, end)
        with torch.no_grad():
            feats[rows] = logmel(batch[:b], s.sample_rate, s.features).numpy()
        if not s.has_audio:
            pass
        elif int16:
            np.multiply(batch[:b], (np.float32(32767.0) / peaks[rows])[:, None], out=batch[:b])
            stored[rows] = np.rint(batch[:b], out=batch[:b])
        else:
            stored[rows] = batch[:b]
        return time.perf_counter() - t

    t0 = time.perf_counter()
    for j in range(n):
        slot = job.start + j
        notes = _notes_of(job, j)
        free, key, source = job.free[j], int(job.keys[j]), int(job.sources[j])
        factory_slot = source >= 0
        rng = None
        tried: set[int] = set()
        k = 0
        while True:
            taken = key in used or key in tried or _contains(job.extra_forbidden, key) or (
                k > 0 and _contains(ctx.forbidden, key))
            tried.add(key)
            if taken:
                rejected["duplicate"] += 1
            elif (slot, k) in job.crashed:
                rejected["crashed"] += 1
            else:
                progress.mark(j, k)
                if slot in crash_slots and k == 0:
                    import os
                    import signal

                    os.kill(os.getpid(), signal.SIGSEGV)
                a = synth.render(space.full(free.astype(np.float64)), notes, duration)
                peak = max(float(a.max()), -float(a.min())) if a.size else 0.0  # no |a| temporary
                if not np.isfinite(peak):
                    rejected["nonfinite"] += 1
                elif peak < SILENCE_PEAK:
                    rejected["silent"] += 1
                else:
                    break
            k += 1
            if k >= job.attempt_limit:
                raise AsmError(
                    f"example {slot}: no usable render after {k} presets (silent, non-finite or crashing); "
                    f"check the locks of {s.synth}"
                )
            if rng is None:
                rng = np.random.default_rng([s.seed, STREAM_REPLACE, slot])
            free, key, source = _replacement(ctx, space, rng, factory_slot, tried)
        batch[j % FEATURE_BATCH] = a
        peaks[j] = peak
        params[j] = free
        keys[j] = key
        sources[j] = source
        attempts[j] = k
        used.add(key)
        if (j + 1) % FEATURE_BATCH == 0 or j + 1 == n:
            progress.mark(-1, 0)
            t_features += flush(j + 1)
        progress.done(j + 1)
    t1 = time.perf_counter()
    arrays: dict[str, np.ndarray] = {"audio": stored} if s.has_audio else {}
    if int16 and s.has_audio:  # every example scaled to its own peak: full 16-bit resolution, loudness kept in the scale
        arrays["audio_scale"] = (peaks / np.float32(32767.0)).astype(np.float32)
    arrays.update(
        features=feats,
        params=params,
        preset_key=keys,
        source=sources,
        split=np.ascontiguousarray(job.splits, dtype=np.uint8),
        attempts=attempts,
        note_offsets=np.ascontiguousarray(job.note_offsets, dtype=np.int64),
        note_pitch=np.ascontiguousarray(job.notes["pitch"]),
        note_velocity=np.ascontiguousarray(job.notes["velocity"]),
        note_start=np.ascontiguousarray(job.notes["start"]),
        note_duration=np.ascontiguousarray(job.notes["duration"]),
    )
    stats = {"rejections": rejected, "seconds": {"render": t1 - t0 - t_features, "features": t_features},
             "n_notes": len(job.notes)}
    return arrays, stats


def shard_metadata(ctx: GenerationContext, job: ShardJob) -> dict[str, str]:
    return {"format": "asm-shard/1", "index": str(job.index), "start": str(job.start),
            "count": str(job.count)}


def generate_shard(synth, ctx: GenerationContext, job: ShardJob, progress: Progress | None = None,
                   write: bool = True) -> ShardResult:
    """Build a shard and write it into the dataset directory (``write=False``: return its bytes)."""
    arrays, stats = build_shard(synth, ctx, job, progress)
    t = time.perf_counter()
    meta = shard_metadata(ctx, job)
    if write:
        sha, size = write_shard(Path(ctx.directory) / job.file, arrays, meta)
        payload = None
    else:
        import hashlib

        payload = encode_shard(arrays, meta)
        sha, size = hashlib.sha256(payload).hexdigest(), len(payload)
    stats["seconds"]["write"] = time.perf_counter() - t
    return ShardResult(job.index, job.start, job.count, job.file, sha, size, stats["n_notes"],
                       stats["rejections"], stats["seconds"], payload)
