"""Starting points for a seeded search: estimator candidates, dataset neighbours, factory presets.

``SeedSet`` is a list of free vectors with where each came from. ``DatasetNeighbours`` is the ``nn``
candidate generator over a generated dataset's training split without a trained ``nn`` model: the
``nn`` estimator's index built from the stored log-mel; the target is featurised exactly as the
dataset was (its sample rate, length and feature settings). The index is built once and kept beside
the dataset's shards (``neighbours-<split>-<n>.safetensors``, written atomically); it is rebuilt when
its key (the dataset's shard checksums, split, size and the index format) no longer matches, so
``asm match`` reads it instead of every shard. Reuse one ``DatasetNeighbours`` across targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from asm.errors import AsmError
from asm.synth.params import ParameterSpace


@dataclass
class SeedSet:
    values: np.ndarray  # (n, n_free)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls, n_free: int) -> SeedSet:
        return cls(np.empty((0, n_free)), [])

    @classmethod
    def interleaved(cls, n_free: int, groups: Sequence[tuple[np.ndarray, str]]) -> SeedSet:
        """Candidates of several sources, each in its own order, taken round-robin by rank."""
        out = cls.empty(n_free)
        groups = [(np.atleast_2d(np.asarray(v, dtype=np.float64)), src) for v, src in groups if np.size(v)]
        for rank in range(max((len(v) for v, _ in groups), default=0)):
            for values, source in groups:
                if rank < len(values):
                    out.add(values[rank], source)
        return out

    def add(self, values: np.ndarray, source: str | Sequence[str]) -> None:
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        if values.size == 0:
            return
        self.values = np.concatenate([self.values, values]) if len(self.values) else values
        self.sources.extend([source] * len(values) if isinstance(source, str) else list(source))

    def __len__(self) -> int:
        return len(self.values)

    def unique(self, space: ParameterSpace) -> SeedSet:
        """Quantised, with repeated presets removed (first occurrence kept)."""
        if not len(self):
            return self
        q = space.quantise_free(self.values)
        _, first = np.unique(np.round(q, 6), axis=0, return_index=True)
        keep = np.sort(first)
        return SeedSet(q[keep], [self.sources[i] for i in keep])

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.sources:
            out[s] = out.get(s, 0) + 1
        return out


class DatasetNeighbours:
    """K nearest training examples of a dataset to a target (``asm.models.neighbours.NeighbourIndex``
    over the stored log-mel: standardised per mel band, pooled in time), kept beside the dataset."""

    TIME_POOL = 2
    INDEX_FORMAT = 1  # bump when the index's content changes: every stored index is then rebuilt

    def __init__(self, name: str, split: str = "train", limit: int | None = None, keep: bool = True):
        from asm.data.torch_dataset import ShardDataset

        ds = ShardDataset(name, split=split)
        try:
            n = len(ds) if limit is None else min(len(ds), int(limit))
            if n == 0:
                raise AsmError(f"dataset {name} has no {split} examples to take neighbours from")
            self.name = name
            self.synth = ds.synth
            self.sample_rate = ds.sample_rate
            self.features = ds.settings.features
            self.n_samples = ds.settings.n_samples
            self.free_signature, self.lock_signature = ds.free_signature, ds.lock_signature
            self.loaded = False  # True: read from the stored index, not built
            path = index_path(name, split, n)
            key = self._key(name, split, n) if keep else ""
            self.index = self._stored(path, key) if keep else None
            if self.index is not None:
                self.loaded = True
            else:
                self.index = self._build(ds, n)
                if keep:
                    try:
                        self.index.save(path, {"key": key, "dataset": name, "split": split})
                    except AsmError:  # a read-only dataset directory: the index is rebuilt next time
                        pass
        finally:
            ds.close()

    def _key(self, name: str, split: str, n: int) -> str:
        """What the stored index must have been built from: the dataset's shards (checksums), split and size."""
        import hashlib
        import json

        from asm.data.store import get_dataset
        from asm.registry.db import session_scope

        with session_scope() as session:
            row = get_dataset(session, name)
            shards = [[s.index, s.sha256] for s in row.shards]
            ident = [row.id, row.name, row.size, row.seed, row.free_signature, row.lock_signature]
        text = json.dumps([self.INDEX_FORMAT, self.TIME_POOL, split, n, ident, shards], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def _stored(self, path, key: str):
        from asm.models.neighbours import NeighbourIndex

        if not path.is_file():
            return None
        try:
            index, meta = NeighbourIndex.load(path)
        except AsmError:  # damaged: rebuilt and replaced
            return None
        return index if meta.get("key") == key and index.time_pool == self.TIME_POOL else None

    def _build(self, ds, n: int):
        import torch

        from asm.models.neighbours import NeighbourIndex

        mel = torch.from_numpy(np.stack([ds.features(i) for i in range(n)]))  # (N, n_mels, frames)
        params = np.stack([ds.params(i) for i in range(n)])
        return NeighbourIndex.build([mel], params, mel.mean(dim=(0, 2)), mel.std(dim=(0, 2)), self.TIME_POOL)

    def __len__(self) -> int:
        return int(self.index.keys.shape[0])

    def check_space(self, space: ParameterSpace, synth: str) -> None:
        if synth != self.synth:
            raise AsmError(f"dataset {self.name} was rendered by {self.synth}, not {synth}")
        if space.free_signature() != self.free_signature or space.lock_signature() != self.lock_signature:
            raise AsmError(f"dataset {self.name} was made with other locks on {synth}; "
                           "its presets cannot seed this search")

    def mel(self, audio: np.ndarray, sample_rate: int):
        """The target's log-mel as the dataset stored its examples' (rate, length, settings)."""
        from asm.audio.features import example_logmel

        return example_logmel(audio, sample_rate, self.sample_rate, self.n_samples, self.features)

    def query(self, audio: np.ndarray, sample_rate: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, distances) of the ``k`` nearest training examples, nearest first."""
        idx, dist = self.index.query(self.mel(audio, sample_rate), int(k))
        return idx[0].numpy(), dist[0].numpy()

    def candidates(self, audio: np.ndarray, sample_rate: int, k: int) -> np.ndarray:
        idx, _ = self.query(audio, sample_rate, k)
        return self.index.params[idx].numpy().astype(np.float64)


def index_path(name: str, split: str, n: int):
    """Where the neighbour index of ``n`` examples of a dataset's ``split`` is kept (inside the dataset)."""
    from asm.data.store import dataset_dir

    return dataset_dir(name) / f"neighbours-{split}-{n}.safetensors"




def as_estimators(estimator) -> list:
    """The estimators that seed a search: ``estimator`` may be None, one estimator or a sequence of them
    (the benchmark seeds with every trained model worth asking, e.g. a spectrally trained one beside a flow)."""
    if estimator is None:
        return []
    return list(estimator) if isinstance(estimator, (list, tuple)) else [estimator]


def estimator_groups(estimator, audio: np.ndarray, sample_rate: int, k: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """One (candidates, ``model:<name>``) group per estimator of ``estimator`` (see ``as_estimators``)."""
    return [(estimator_seeds(e, audio, sample_rate, k, seed), f"model:{e.name}") for e in as_estimators(estimator)]


def estimator_seeds(estimator, audio: np.ndarray, sample_rate: int, k: int, seed: int) -> np.ndarray:
    """``k`` candidates of an estimator for the target (point estimators give one)."""
    from asm.audio.io import resample

    if k <= 0 or estimator is None:
        return np.empty((0, 0))
    want = k if getattr(estimator, "many_candidates", False) else 1
    x = resample(np.asarray(audio, dtype=np.float32), sample_rate, estimator.sample_rate)
    return np.asarray(estimator.candidates(x, want, seed))[0]
