"""A map-style torch ``Dataset`` over a generated dataset's shards, read by memory map.

    from asm.data.torch_dataset import ShardDataset
    train = ShardDataset("mono-2k", split="train")      # "train" | "val" | "test" | None (all)
    item = train[0]
    item["features"]   # torch.float32 (n_mels, frames): the stored log-mel (natural log, float16 on disk)
    item["params"]     # torch.float32 (n_free,): normalised free parameter values, in train.free_names order
    item["split"]      # int: 0 train, 1 val, 2 test
    item["index"]      # int: the example's index in the whole dataset (stable id; train.position(i) too)
    train.notes(0)     # [Note(pitch, velocity, start, duration)]: exactly what was played
    train.audio(0)     # np.float32 (samples,): the stored render (int16 * per-example scale, or float16)
    train.has_audio    # False for a features-only dataset (--store features): audio() raises AsmError
    train.source(0)    # factory preset id it came from, or -1 for a random preset
    ShardDataset("mono-2k", "train", with_audio=True)[0]["audio"]  # audio in the item too

Attributes: ``settings`` (``DatasetSettings``: sample rate, duration, feature settings, seed, …),
``free_names`` / ``free_parameters`` (the order of ``params``; ``free_signature`` and
``lock_signature`` identify it, so a model can refuse another synth's or lock set's data),
``feature_shape``, ``n_free``.

Why it is cheap: the registry is read once, in ``__init__``. Each shard file is mapped once per
process on first use (one ``mmap`` and one file descriptor per shard, never a file open or an SQL
query per item), and items are zero-copy views converted to float32. Every ``RELEASE_EVERY`` items
the mapped pages are released from the process (``madvise(MADV_DONTNEED)``; the OS page cache
keeps them), so resident memory stays bounded whatever the dataset size. Splits are
contiguous ranges of examples, so finding an item is one binary search over shard starts. The
object pickles without its mappings, so DataLoader workers (fork or spawn) map what they read.
"""

from __future__ import annotations

import mmap
import resource
from pathlib import Path

import numpy as np
import torch

from asm.data.settings import DatasetSettings
from asm.data.shards import ShardFile
from asm.data.store import dataset_dir, get_dataset
from asm.errors import AsmError
from asm.midi.notes import Note
from asm.registry.db import session_scope

SPLITS = {"train": 0, "val": 1, "test": 2}
# Items read between releases of mapped pages. A page fault can map a whole large folio of the page
# cache (about 1 MB on recent kernels), so this bounds resident file pages to roughly 256 MB.
RELEASE_EVERY = 256


class ShardDataset(torch.utils.data.Dataset):
    def __init__(self, name: str, split: str | None = "train", *, with_audio: bool = False):
        if split is not None and split not in SPLITS:
            raise AsmError(f"unknown split {split!r}: use train, val, test (or None for all)")
        with session_scope() as session:
            row = get_dataset(session, name)
            if row.status != "complete":
                raise AsmError(f"dataset {name} is incomplete ({len(row.shards)} shards written); "
                               "run its generate-dataset command again to finish it")
            stored = dict(row.settings)
            self.free_parameters: list[dict] = list(row.free_parameters)
            self.free_signature, self.lock_signature = row.free_signature, row.lock_signature
            self.split_counts = dict(row.split_counts)
            self.synth = row.synth.name
            shards = [(s.start, s.count, s.file) for s in row.shards]
        self.name, self.split, self.with_audio = name, split, with_audio
        self.settings = DatasetSettings(**{k: v for k, v in stored.items() if k not in ("inputs", "locks")})
        if with_audio and not self.settings.has_audio:
            raise AsmError(f"dataset {name} stores features only (--store features): it has no audio to read")
        self.locks = {int(k): v for k, v in (stored.get("locks") or {}).items()}
        directory = dataset_dir(name)
        self._files = [str(directory / f) for _, _, f in shards]
        self._starts = np.array([s for s, _, _ in shards], dtype=np.int64)
        counts = self.split_counts
        bounds = {"train": (0, counts["train"]), "val": (counts["train"], counts["train"] + counts["val"]),
                  "test": (counts["train"] + counts["val"], self.settings.size)}
        self._lo, hi = bounds[split] if split is not None else (0, self.settings.size)
        self._len = hi - self._lo
        self._maps: dict[int, ShardFile] = {}
        self._reads = 0
        self._touched: set[int] = set()  # shards read since the last release
        self.releases = 0
        _allow_open_files(len(self._files))

    # -- shape -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    @property
    def free_names(self) -> list[str]:
        return [p["name"] for p in self.free_parameters]

    @property
    def n_free(self) -> int:
        return len(self.free_parameters)

    @property
    def sample_rate(self) -> int:
        return self.settings.sample_rate

    @property
    def feature_shape(self) -> tuple[int, int]:
        return self.settings.features.n_mels, self.settings.n_frames

    # -- access ------------------------------------------------------------------------------------
    def position(self, i: int) -> int:
        """The dataset-wide index of item ``i`` of this split."""
        if not -self._len <= i < self._len:
            raise IndexError(f"index {i} out of range for {self._len} examples")
        return self._lo + (i % self._len)

    def _locate(self, i: int) -> tuple[ShardFile, int]:
        g = self.position(int(i))
        k = int(np.searchsorted(self._starts, g, side="right")) - 1
        shard = self._maps.get(k)
        if shard is None:
            shard = self._maps[k] = ShardFile(Path(self._files[k]), random_access=True)
        self._touched.add(k)
        return shard, g - int(self._starts[k])

    def _release(self) -> None:
        """Unmap the pages read since the last release from this process (they stay in the OS page
        cache), so resident memory is bounded by the last RELEASE_EVERY items, not the dataset size."""
        for k in self._touched:
            self._maps[k].advise(mmap.MADV_DONTNEED)
        self._touched.clear()
        self.releases += 1

    def __getitem__(self, i: int) -> dict:
        self._reads += 1
        if self._reads % RELEASE_EVERY == 0:
            self._release()
        shard, j = self._locate(i)
        item = {
            "features": torch.from_numpy(shard["features"][j].astype(np.float32)),
            "params": torch.from_numpy(np.array(shard["params"][j], dtype=np.float32)),
            "split": int(shard["split"][j]),
            "index": self._lo + (int(i) % self._len),
        }
        if self.with_audio:
            item["audio"] = torch.from_numpy(self._audio(shard, j))
        return item

    def head(self, n: int) -> "ShardDataset":
        """The first ``n`` items of this split as a dataset of their own (a learning curve's subset)."""
        import copy

        part = copy.copy(self)
        part._maps, part._touched = {}, set()
        part._len = min(int(n), self._len)
        return part

    def features(self, i: int) -> np.ndarray:
        shard, j = self._locate(i)
        return shard["features"][j].astype(np.float32)

    def params(self, i: int) -> np.ndarray:
        shard, j = self._locate(i)
        return np.array(shard["params"][j], dtype=np.float32)

    @staticmethod
    def _audio(shard: ShardFile, j: int) -> np.ndarray:
        a = shard["audio"][j]
        if "audio_scale" in shard:
            return a.astype(np.float32) * np.float32(shard["audio_scale"][j])
        return a.astype(np.float32)

    @property
    def has_audio(self) -> bool:
        """False for a features-only dataset (``--store features``): re-render from params and notes."""
        return self.settings.has_audio

    def audio(self, i: int) -> np.ndarray:
        """The stored render of item ``i`` as float32."""
        if not self.has_audio:
            raise AsmError(f"dataset {self.name} stores features only: render item {i} from its "
                           "params and notes instead")
        shard, j = self._locate(i)
        return self._audio(shard, j)

    def notes(self, i: int) -> list[Note]:
        """The notes item ``i`` played (replay them to render any preset the same way)."""
        shard, j = self._locate(i)
        a, b = int(shard["note_offsets"][j]), int(shard["note_offsets"][j + 1])
        return [Note(int(p), int(v), float(s), float(d)) for p, v, s, d in zip(
            shard["note_pitch"][a:b], shard["note_velocity"][a:b], shard["note_start"][a:b],
            shard["note_duration"][a:b])]

    def source(self, i: int) -> int:
        """The factory preset id item ``i`` came from, or -1 for a random preset."""
        shard, j = self._locate(i)
        return int(shard["source"][j])

    def close(self) -> None:
        for m in self._maps.values():
            m.close()
        self._maps.clear()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_maps"] = {}
        state["_touched"] = set()
        return state


def _allow_open_files(n_shards: int) -> None:
    """Every mapped shard holds a file descriptor: raise the soft limit if a big dataset needs it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n_shards + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            pass
