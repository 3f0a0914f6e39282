"""Building one shard inside a worker: render every slot (replacing unusable renders), compute the
features in batches, quantise the audio and write the file. No audio leaves the worker.

A slot tries its first-choice preset, then replacements from its own random stream (``STREAM_REPLACE``,
keyed by the slot), skipping presets already used elsewhere, until a render is finite and audible.
The stored parameters are the exact float32 values that were rendered, so the label always belongs
to the audio. ``ShardJob.crashed`` lists (slot, attempt) pairs that killed a worker before: they
count as rejected without being rendered again (and so does a crashed preset met again in the shard).

``GenerationContext`` is the ``ShardWork`` the render executors run (``asm.render.executor``): its
``run`` builds a shard in the worker, its ``crashed`` accounts for a crash. A steady crash rate only
slows generation; it stops when one example's presets keep crashing (``MAX_CRASHES_PER_EXAMPLE``).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from asm.atomic import atomic_open
from asm.audio.signal import SILENCE_PEAK
from asm.data.plan import STREAM_REPLACE, FactoryPool, as_label, preset_keys
from asm.data.settings import DatasetSettings
from asm.data.shards import encode_shard, write_shard
from asm.errors import AsmError
from asm.midi.notes import Note
from asm.render.executor import NoProgress, Progress

MAX_ATTEMPTS = 200  # presets one slot may try before generation stops with an error
MAX_CRASHES_PER_EXAMPLE = 16  # presets of one slot that may crash the synth before generation stops
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
    # testing only: {"crash_slots": [...]} / {"hang_slots": [...]} kill / hang the worker on those slots'
    # first presets, {"doomed_slots": [...]} kills it on every preset of those slots
    fault: dict | None = None

    def run(self, synth, job: "ShardJob", progress: Progress, *, shared_fs: bool = True) -> "ShardResult":
        """``ShardWork.run``: build ``job`` and write it (``shared_fs=False``: return its bytes)."""
        return generate_shard(synth, self, job, progress, write=shared_fs)

    def crashed(self, job: "ShardJob", position: int, attempt: int, why: str) -> tuple["ShardJob", str]:
        """``ShardWork.crashed``: that preset counts as rejected and the shard is redone without it;
        an example whose presets keep crashing stops generation."""
        slot = job.start + position
        crashed = job.crashed | {(slot, attempt)}
        n = sum(1 for s, _ in crashed if s == slot)
        if n >= MAX_CRASHES_PER_EXAMPLE:
            raise AsmError(f"{self.settings.synth} crashed on {n} different presets for example {slot} "
                           f"(last: {why}); giving up: check its locks")
        return replace(job, crashed=crashed), (
            f"the synth crashed on example {slot} (preset attempt {attempt}, {why}); "
            "that preset counts as rejected and the shard is redone")


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


class _Checkpoint:
    """The finished feature batches of a shard that is being redone after a crash, one file per batch
    (written atomically), so the redo resumes where the crash happened instead of rendering the shard
    again from its first example. A batch holds everything later slots depend on (the keys used,
    the rejection counts, the presets that crashed), so a resumed shard equals one built in one go.
    Only redone shards keep one: a shard without crashes writes nothing extra."""

    ROWS = ("stored", "feats", "params", "keys", "sources", "attempts", "peaks")

    def __init__(self, directory: Path):
        self.dir = directory

    def load(self) -> list[dict[str, np.ndarray]]:
        """The saved batches, in order and contiguous from the first example."""
        out: list[dict[str, np.ndarray]] = []
        if not self.dir.is_dir():
            return out
        for f in sorted(self.dir.glob("*.npz")):
            with np.load(f) as z:
                batch = {k: z[k] for k in z.files}
            if int(batch["start"]) != (int(out[-1]["end"]) if out else 0):
                break
            out.append(batch)
        return out

    def save(self, start: int, end: int, rows: dict[str, np.ndarray], rejected: dict[str, int],
             crashed_keys: set[int]) -> None:
        self.dir.mkdir(exist_ok=True)
        with atomic_open(self.dir / f"{end:06d}.npz") as f:
            np.savez(f, start=start, end=end, rejected=np.array([rejected[k] for k in REJECTION_KINDS]),
                     crashed_keys=np.fromiter(crashed_keys, np.uint64, len(crashed_keys)), **rows)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def checkpoint_of(ctx: GenerationContext, job: ShardJob) -> _Checkpoint:
    return _Checkpoint(Path(ctx.directory) / f".partial-{job.file}")


def _inject_fault(ctx: GenerationContext, slot: int, k: int) -> None:
    """Tests' fault plan: crash or hang the worker on the first try of chosen slots."""
    fault = ctx.fault or {}
    if (slot in set(fault.get("crash_slots", ())) and k == 0) or slot in set(fault.get("doomed_slots", ())):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)
    if slot in set(fault.get("hang_slots", ())) and k == 0:
        time.sleep(3600)


def _usable_render(synth, ctx: GenerationContext, job: ShardJob, j: int, used: set[int],
                   crashed_keys: set[int], rejected: dict[str, int], progress: Progress):
    """Example ``j``'s render: its planned preset, or seeded replacements until one is new, finite,
    audible and does not crash. Returns (audio, peak, free values, key, source, presets rejected);
    ``crashed_keys`` and ``rejected`` are updated in place."""
    s, space = ctx.settings, synth.space
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
        elif (slot, k) in job.crashed or key in crashed_keys:
            rejected["crashed"] += 1
            crashed_keys.add(key)
        else:
            progress.mark(j, k)
            _inject_fault(ctx, slot, k)
            a = synth.render(space.full(free.astype(np.float64)), notes, float(s.duration))
            peak = max(float(a.max()), -float(a.min())) if a.size else 0.0  # no |a| temporary
            if not np.isfinite(peak):
                rejected["nonfinite"] += 1
            elif peak < SILENCE_PEAK:
                rejected["silent"] += 1
            else:
                return a, peak, free, key, source, k
        k += 1
        if k >= job.attempt_limit:
            raise AsmError(
                f"example {slot}: no usable render after {k} presets (silent, non-finite or crashing); "
                f"check the locks of {s.synth}"
            )
        if rng is None:
            rng = np.random.default_rng([s.seed, STREAM_REPLACE, slot])
        free, key, source = _replacement(ctx, space, rng, factory_slot, tried)


def _shard_arrays(job: ShardJob, stored, feats, params, keys, sources, attempts,
                  peaks: np.ndarray | None) -> dict[str, np.ndarray]:
    """The arrays a shard file holds (no ``audio`` when ``stored`` is None: a features-only dataset);
    ``peaks`` (int16 audio) become the per-example audio scale."""
    arrays: dict[str, np.ndarray] = {"audio": stored} if stored is not None else {}
    if peaks is not None:  # every example scaled to its own peak: full 16-bit resolution, loudness kept in the scale
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
    return arrays


def build_shard(synth, ctx: GenerationContext, job: ShardJob, progress: Progress | None = None,
                checkpoint: _Checkpoint | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Render, check and featurise one shard; returns its arrays and statistics. With ``checkpoint``,
    a redone shard (one with crashes) resumes from its saved batches and saves the ones it finishes."""
    import torch

    from asm.audio.features import logmel

    progress = progress or NoProgress()
    s = ctx.settings
    space = synth.space
    n, n_free, T = job.count, space.n_free, s.n_samples
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
    crashed_keys: set[int] = set()  # presets that crashed the synth for an earlier slot
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

    checkpoint = checkpoint if job.crashed else None
    first = 0
    for saved in checkpoint.load() if checkpoint is not None else []:
        rows = slice(int(saved["start"]), int(saved["end"]))
        for name, arr in zip(_Checkpoint.ROWS, (stored, feats, params, keys, sources, attempts, peaks)):
            arr[rows] = saved[name]
        rejected = dict(zip(REJECTION_KINDS, (int(v) for v in saved["rejected"])))
        crashed_keys = {int(k) for k in saved["crashed_keys"]}
        first = rows.stop
    used.update(int(k) for k in keys[:first])
    t0 = time.perf_counter()
    for j in range(first, n):
        a, peak, free, key, source, k = _usable_render(synth, ctx, job, j, used, crashed_keys, rejected, progress)
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
            if checkpoint is not None:
                rows = slice((j // FEATURE_BATCH) * FEATURE_BATCH, j + 1)
                checkpoint.save(rows.start, rows.stop, dict(zip(_Checkpoint.ROWS, (
                    a[rows] for a in (stored, feats, params, keys, sources, attempts, peaks)))),
                    rejected, crashed_keys)
        progress.done(j + 1)
    t1 = time.perf_counter()
    arrays = _shard_arrays(job, stored if s.has_audio else None, feats, params, keys, sources, attempts,
                           peaks if int16 and s.has_audio else None)
    stats = {"rejections": rejected, "seconds": {"render": t1 - t0 - t_features, "features": t_features},
             "n_notes": len(job.notes)}
    return arrays, stats


def shard_metadata(ctx: GenerationContext, job: ShardJob) -> dict[str, str]:
    return {"format": "asm-shard/1", "index": str(job.index), "start": str(job.start),
            "count": str(job.count)}


def generate_shard(synth, ctx: GenerationContext, job: ShardJob, progress: Progress | None = None,
                   write: bool = True) -> ShardResult:
    """Build a shard and write it into the dataset directory (``write=False``: return its bytes)."""
    checkpoint = checkpoint_of(ctx, job) if write else None  # Ray's workers may not share our disk
    arrays, stats = build_shard(synth, ctx, job, progress, checkpoint)
    t = time.perf_counter()
    meta = shard_metadata(ctx, job)
    if write:
        sha, size = write_shard(Path(ctx.directory) / job.file, arrays, meta)
        checkpoint.remove()
        payload = None
    else:
        import hashlib

        payload = encode_shard(arrays, meta)
        sha, size = hashlib.sha256(payload).hexdigest(), len(payload)
    stats["seconds"]["write"] = time.perf_counter() - t
    return ShardResult(job.index, job.start, job.count, job.file, sha, size, stats["n_notes"],
                       stats["rejections"], stats["seconds"], payload)
