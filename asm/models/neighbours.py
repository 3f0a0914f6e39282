"""The ``nn`` estimator: nearest neighbours of a target among a training set's examples.

No training: the index is the training split's log-mel, pooled in time and standardised per mel
band, stored as float16. A query returns the K closest examples' parameter vectors, best first,
so ``nn`` is both a baseline and a candidate generator for search. A training example's own audio
finds itself at distance 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from asm.data.shards import ShardFile, write_shard
from asm.errors import AsmError


@dataclass
class NeighbourIndex:
    keys: torch.Tensor  # (N, D) float16, standardised pooled log-mel
    params: torch.Tensor  # (N, n_free) float32
    mean: torch.Tensor  # (n_mels, 1)
    std: torch.Tensor  # (n_mels, 1)
    time_pool: int = 2

    @staticmethod
    def embed(mel: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, time_pool: int) -> torch.Tensor:
        x = (mel.float() - mean) / std
        if time_pool > 1:
            x = F.avg_pool1d(x, time_pool, ceil_mode=True)
        return x.flatten(1)

    @classmethod
    def build(cls, batches, params: np.ndarray, mean: torch.Tensor, std: torch.Tensor,
              time_pool: int = 2) -> "NeighbourIndex":
        """``batches`` yields log-mel tensors (b, n_mels, frames) in the order of ``params``."""
        mean = mean.reshape(-1, 1).float()
        std = std.reshape(-1, 1).float().clamp_min(1e-3)
        keys = torch.cat([cls.embed(torch.as_tensor(m), mean, std, time_pool).half() for m in batches])
        return cls(keys, torch.as_tensor(np.asarray(params), dtype=torch.float32), mean, std, time_pool)

    def query(self, mel: torch.Tensor, k: int = 1, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices (B, k) and distances (B, k) of the k nearest training examples, nearest first."""
        q = self.embed(torch.as_tensor(mel), self.mean, self.std, self.time_pool)
        k = min(k, self.keys.shape[0])
        best_d = torch.full((q.shape[0], 0), float("inf"))
        best_i = torch.zeros((q.shape[0], 0), dtype=torch.long)
        for start in range(0, self.keys.shape[0], chunk):
            block = self.keys[start : start + chunk].float()
            d = torch.cdist(q, block)
            d_all = torch.cat([best_d, d], dim=1)
            i_all = torch.cat([best_i, torch.arange(start, start + block.shape[0]).expand(q.shape[0], -1)], dim=1)
            best_d, pos = torch.topk(d_all, min(k, d_all.shape[1]), dim=1, largest=False, sorted=True)
            best_i = torch.gather(i_all, 1, pos)
        return best_i, best_d

    def candidates(self, mel: torch.Tensor, k: int = 1) -> torch.Tensor:
        """(B, k, n_free) parameter vectors of the nearest examples."""
        idx, _ = self.query(mel, k)
        return self.params[idx]

    def state(self) -> dict:
        return {"keys": self.keys, "params": self.params, "mean": self.mean, "std": self.std,
                "time_pool": self.time_pool}

    @classmethod
    def from_state(cls, state: dict) -> "NeighbourIndex":
        return cls(state["keys"], state["params"], state["mean"], state["std"], int(state["time_pool"]))

    def save(self, path: Path, metadata: dict[str, str]) -> None:
        """Write the index as one safetensors file (temporary file, then rename: never half-written)."""
        arrays = {"keys": self.keys.numpy(), "params": self.params.numpy(),
                  "mean": self.mean.numpy(), "std": self.std.numpy()}
        write_shard(path, arrays, {**metadata, "time_pool": str(self.time_pool)})

    @classmethod
    def load(cls, path: Path) -> tuple["NeighbourIndex", dict[str, str]]:
        """(index, metadata) of a file written by ``save``; AsmError if it cannot be read."""
        f = ShardFile(path)
        try:
            t = {k: torch.from_numpy(np.array(f[k])) for k in ("keys", "params", "mean", "std")}
            meta = dict(f.metadata)
        except (KeyError, ValueError, TypeError) as exc:
            raise AsmError(f"cannot read neighbour index {path}: {exc}") from None
        finally:
            f.close()
        return cls(t["keys"], t["params"], t["mean"], t["std"], int(meta.get("time_pool", 2))), meta
