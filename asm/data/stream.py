"""Streaming: fresh examples rendered by the render pool's workers while the model trains.

    from asm.data.stream import ExampleStream, StreamDataset
    stream = ExampleStream.for_dataset("mono-2k", seed=7, workers=2)   # the dataset's settings, a new seed
    for item in StreamDataset(stream, start=0, stop=1000):             # a torch IterableDataset
        item["features"], item["params"], item["index"]
    stream.close()

Example ``g`` of a stream is a pure function of (stream seed, g): its first-choice preset comes from
``default_rng([seed, STREAM_STREAM, g])`` and its notes from the dataset's note generator under the
stream seed, and a silent or non-finite render is replaced exactly as in ``generate-dataset``
(``asm.data.shardgen``, keyed by the example). So any number of workers gives the same examples
in the same order, and a run that restarts at example ``g`` continues the same sequence. Presets of
the source dataset's validation and test splits are never drawn (held out), and the stream seed is
mixed with ``STREAM_STREAM``, so streamed examples do not repeat the dataset's.

Rendering runs ahead of the consumer in a background thread that feeds shard jobs to a
``RenderPool`` (at most ``ahead`` shards buffered). Shards go through a private temporary
directory (the worker writes, this process reads them into memory and deletes the file), so the
generation code is the one ``generate-dataset`` uses, crash handling included.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from asm.data.plan import MAX_DRAWS, Plan, as_label, preset_keys
from asm.data.settings import DatasetSettings
from asm.errors import AsmError

STREAM_STREAM = 6  # independent of the plan's streams (asm.data.plan STREAM_*)
STREAM_SHARD = 64  # examples per streamed shard (small: closing waits for at most one per worker)
AHEAD = 24  # shards rendered ahead of the consumer


def stream_seed(dataset_seed: int, seed: int) -> int:
    """The seed of a training stream over a dataset: differs from the dataset's own seed."""
    state = np.random.SeedSequence([int(dataset_seed), int(seed), STREAM_STREAM]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


class ExampleStream:
    """An endless, seeded sequence of (features, params, preset key) rendered on demand."""

    def __init__(self, spec, settings: DatasetSettings, *, held_out: np.ndarray | None = None,
                 workers: int | str = "auto", shard_size: int = STREAM_SHARD, ahead: int = AHEAD, pool=None):
        if settings.midi_dir is not None:
            raise AsmError("streaming plays the built-in note generator; a --midi-dir dataset cannot be streamed")
        self.spec, self.space = spec, spec.space
        self.settings = settings.model_copy(update={"store": "features", "shard_size": shard_size,
                                                    "presets": "random", "factory_fraction": 0.0})
        self.shard_size, self.ahead = shard_size, max(1, ahead)
        self.held_out = np.sort(np.asarray(held_out if held_out is not None else [], dtype=np.uint64))
        self._plan = Plan(self.settings, np.zeros((0, self.space.n_free), np.float32), np.zeros(0, np.uint64),
                          np.zeros(0, np.int32), _empty_pool(self.space.n_free))
        self._workers, self._pool, self._own_pool = workers, pool, pool is None
        self._dir: Path | None = None
        self._cond = threading.Condition()
        self._buffer: dict[int, dict[str, np.ndarray]] = {}
        self._next = 0  # next shard the producer renders
        self._want = 0  # lowest shard the consumer still needs
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False
        self.wait_seconds = 0.0  # time consumers spent blocked on a shard not yet rendered

    @classmethod
    def for_dataset(cls, dataset: str, seed: int, **kwargs) -> "ExampleStream":
        """A stream with a dataset's settings (synth, notes, features, locks) under a seed derived
        from the dataset's and ``seed``, holding out the dataset's validation and test presets."""
        from asm.data.store import dataset_dir, get_dataset
        from asm.data.torch_dataset import ShardDataset
        from asm.registry.db import session_scope
        from asm.registry.synth_loader import spec_of

        with session_scope() as session:
            row = get_dataset(session, dataset)
            stored = dict(row.settings)
            settings = DatasetSettings(**{k: v for k, v in stored.items() if k not in ("inputs", "locks")})
            spec = spec_of(row.synth, settings.sample_rate)
            if spec.space.free_signature() != row.free_signature or spec.space.lock_signature() != row.lock_signature:
                raise AsmError(f"the locks of {row.synth.name} changed since dataset {dataset} was made; "
                               "a stream of it would teach another parameter space")
        keys = []
        for split in ("val", "test"):
            ds = ShardDataset(dataset, split)
            keys.extend(_split_keys(ds, dataset_dir(dataset)))
            ds.close()
        settings = settings.model_copy(update={"seed": stream_seed(settings.seed, seed)})
        return cls(spec, settings, held_out=np.array(keys, dtype=np.uint64), **kwargs)

    # -- what example g is ------------------------------------------------------------------------
    def first_choices(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """First-choice presets (free values, keys) of examples [start, start+count): one random
        stream per example, redrawn while a preset is held out."""
        space, seed = self.space, self.settings.seed
        free = np.empty((count, space.n_free), np.float32)
        keys = np.empty(count, np.uint64)
        for j in range(count):
            rng = np.random.default_rng([seed, STREAM_STREAM, start + j])
            for _ in range(MAX_DRAWS):
                cand = as_label(space, space.random_free(rng, 1))
                key = preset_keys(space, cand)[0]
                if not _contains(self.held_out, key):
                    break
            else:
                raise AsmError(f"the free parameters of {self.settings.synth} are nearly all held out by the "
                               "validation and test presets: nothing fresh to stream")
            free[j], keys[j] = cand[0], key
        return free, keys

    def _job(self, k: int):
        from asm.data.shardgen import ShardJob

        start, n = k * self.shard_size, self.shard_size
        free, keys = self.first_choices(start, n)
        offsets, notes = self._plan.notes_block(start, n)
        return ShardJob(k, start, n, f"stream-{k:08d}.safetensors", free, keys, np.full(n, -1, np.int32),
                        np.zeros(n, np.uint8), offsets, notes)

    # -- producer -------------------------------------------------------------------------------
    def _start(self, k: int) -> None:
        from asm.data.shardgen import GenerationContext
        from asm.render import RenderPool

        self._dir = Path(tempfile.mkdtemp(prefix="asm-stream-"))
        if self._pool is None:
            self._pool = RenderPool(self.spec, self._workers, stall_timeout=120)
        self._ctx = GenerationContext("stream", str(self._dir), self.settings, self.held_out, _empty_pool(
            self.space.n_free))
        self._next = self._want = k
        self._thread = threading.Thread(target=self._produce, name="asm-stream", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._closed and self._next - self._want >= self.ahead:
                        self._cond.wait()
                    if self._closed:
                        return
                    first = self._next
                    n = min(self.ahead - (self._next - self._want), max(1, self._pool.size))
                jobs = [self._job(k) for k in range(first, first + n)]
                self._pool.run_shards(self._ctx, jobs, self._arrived)
                with self._cond:
                    self._next = max(self._next, first + n)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _arrived(self, result) -> None:
        from asm.data.shards import ShardFile

        path = self._dir / result.file
        sf = ShardFile(path)
        arrays = {k: np.array(sf[k]) for k in ("features", "params", "preset_key")}
        sf.close()
        path.unlink(missing_ok=True)
        with self._cond:
            if result.index >= self._want:
                self._buffer[result.index] = arrays
            self._cond.notify_all()

    def _shard(self, k: int) -> dict[str, np.ndarray]:
        import time

        if self._thread is None:
            self._start(k)
        with self._cond:
            if k < self._want:
                raise AsmError(f"stream shard {k} was already released (the stream only moves forward)")
            t = time.perf_counter()
            while k not in self._buffer:
                if self._error is not None:
                    raise self._error
                if self._closed:
                    raise AsmError("the example stream is closed")
                if k >= self._want + self.ahead:  # would wait for ever: the producer stops before it
                    raise AsmError(f"stream shard {k} is beyond the {self.ahead} shards rendered ahead of "
                                   f"shard {self._want}; release earlier shards first")
                self._cond.wait(timeout=1.0)
            self.wait_seconds += time.perf_counter() - t
            return self._buffer[k]

    def _release_below(self, k: int) -> None:
        if k > self._want:
            for old in [i for i in self._buffer if i < k]:
                del self._buffer[old]
            self._want = k
            self._next = max(self._next, k)
            self._cond.notify_all()

    def release_below(self, g: int) -> None:
        """The consumer needs no example before ``g`` any more: let the producer run ahead of it."""
        with self._cond:
            self._release_below(g // self.shard_size)

    # -- consumer --------------------------------------------------------------------------------
    def examples(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features, params and preset keys of examples ``indices`` (blocks until rendered)."""
        indices = np.asarray(indices, dtype=np.int64)
        feats = np.empty((len(indices), self.settings.features.n_mels, self.settings.n_frames), np.float16)
        params = np.empty((len(indices), self.space.n_free), np.float32)
        keys = np.empty(len(indices), np.uint64)
        for k in np.unique(indices // self.shard_size):
            rows = np.flatnonzero(indices // self.shard_size == k)
            shard = self._shard(int(k))
            j = indices[rows] - k * self.shard_size
            feats[rows], params[rows], keys[rows] = shard["features"][j], shard["params"][j], shard["preset_key"][j]
        return feats, params, keys

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=600)
        if self._pool is not None and self._own_pool:
            self._pool.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "ExampleStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StreamDataset(torch.utils.data.IterableDataset):
    """Examples ``start, start+1, …`` (to ``stop``, or forever) of an ``ExampleStream``, in order.

    Use it with ``DataLoader(num_workers=0)``: the parallel work (rendering) happens in the stream's
    render workers, and loader workers would each need their own render pool.
    """

    def __init__(self, stream: ExampleStream, start: int = 0, stop: int | None = None):
        self.stream, self.start, self.stop = stream, start, stop

    def __iter__(self):
        g, size = self.start, self.stream.shard_size
        while self.stop is None or g < self.stop:
            end = (g // size + 1) * size if self.stop is None else min(self.stop, (g // size + 1) * size)
            idx = np.arange(g, end)
            feats, params, _ = self.stream.examples(idx)
            for j, i in enumerate(idx):
                yield {"features": torch.from_numpy(feats[j].astype(np.float32)),
                       "params": torch.from_numpy(params[j].copy()), "index": int(i)}
            self.stream.release_below(end)
            g = end


class StreamArrays:
    """A stream as the training loop's ``ExampleArrays``: epoch ``e`` is examples
    ``[e*epoch_size, (e+1)*epoch_size)``, so no example is seen twice, and a run resumed at epoch
    ``e`` trains on what an uninterrupted one would. ``order`` shuffles within windows of
    ``window`` examples (kept in order), so training starts before the epoch is rendered."""

    def __init__(self, stream: ExampleStream, epoch_size: int, window: int = 1024):
        self.stream, self.epoch_size = stream, int(epoch_size)
        self.window = max(1, int(window))
        self._epoch = 0
        # a batch may touch every shard of its window (and the next one's first): render that far ahead
        stream.ahead = max(stream.ahead, -(-self.window // stream.shard_size) + 2)

    def __len__(self) -> int:
        return self.epoch_size

    def order(self, seed: int, epoch: int) -> np.ndarray:
        self._epoch = epoch
        self.stream.release_below(epoch * self.epoch_size)
        rng = np.random.default_rng([seed, epoch])
        return np.concatenate([a + rng.permutation(min(self.window, self.epoch_size - a))
                               for a in range(0, self.epoch_size, self.window)])

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64)
        base = self._epoch * self.epoch_size
        if len(indices):  # windows come in order: nothing before this batch's window is needed again
            self.stream.release_below(base + int(indices.min()) // self.window * self.window)
        feats, params, _ = self.stream.examples(base + indices)
        return feats, params


def _contains(sorted_keys: np.ndarray, key) -> bool:
    i = int(np.searchsorted(sorted_keys, np.uint64(key)))
    return i < len(sorted_keys) and sorted_keys[i] == np.uint64(key)


def _empty_pool(n_free: int):
    from asm.data.plan import FactoryPool

    return FactoryPool(np.zeros((0, n_free), np.float32), np.zeros(0, np.int32), np.zeros(0, np.uint64))


def _split_keys(ds, directory: Path) -> list[int]:
    """The preset keys of one split of a dataset (read from its shards)."""
    from asm.data.shards import ShardFile

    keys: list[int] = []
    lo, hi = (ds.position(0), ds.position(len(ds) - 1) + 1) if len(ds) else (0, 0)
    for f in ds._files:
        sf = ShardFile(Path(f))
        start = int(sf.metadata.get("start", 0))
        k = np.asarray(sf["preset_key"])
        a, b = max(lo, start) - start, min(hi, start + len(k)) - start
        if b > a:
            keys.extend(int(x) for x in k[a:b])
        sf.close()
    return keys
