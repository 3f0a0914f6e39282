"""The training loop: independent of the registry (the CLI layer records what it reports).

- Epoch order comes from ``(seed, epoch)``, so a resumed run sees the same batches as an
  uninterrupted one; dropout and dequantisation use torch's RNG, saved with every epoch.
- Validation every epoch; early stopping with patience; the **best** checkpoint is kept (not the
  last) and ``last.pt`` (with optimiser and RNG state) lets ``--resume`` continue from the last
  completed epoch after Ctrl-C or ``kill -9``. Both are written atomically.
- Cosine learning-rate decay computed from the epoch number (so resuming needs no scheduler state).
- On CUDA the forward pass runs under bfloat16 autocast (mixed precision).
- A ``spectral`` term (``asm.models.spectral.SpectralTerm``, configs with a ``spectral`` section) adds
  the twin's spectral loss with the weight its schedule gives the epoch; its validation loss is measured
  every epoch and, with ``select_by: spectral``, names the best epoch. A step whose gradient is not
  finite is skipped (counted in ``skipped_steps``).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from asm.atomic import atomic_path
from asm.models.network import Network


class ExampleArrays(Protocol):
    """Random access to one split: features (b, n_mels, frames) and free parameters (b, n_free)."""

    def __len__(self) -> int: ...

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class TrainSettings:
    epochs: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    min_lr_ratio: float = 0.02
    weight_decay: float = 1e-4
    patience: int = 20
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    stream: int = 0  # > 0: each epoch trains on this many fresh streamed examples (asm.data.stream)
    train_limit: int = 0  # > 0: train on the first N examples of the train split only (learning curves)
    canonical: bool = False  # labels in the canonical order of the synth's symmetries (asm.data.symmetry)


@dataclass
class EpochReport:
    epoch: int
    train_loss: float
    val_loss: float
    lr: float
    seconds: float
    load_seconds: float
    improved: bool
    parts: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainState:
    """Everything needed to continue training after the last completed epoch."""

    epoch: int = 0  # epochs completed
    best_val_loss: float = math.inf
    best_val_head: float = math.inf  # parameter loss at the best epoch (comparable with the baseline)
    best_epoch: int = 0
    since_best: int = 0
    history: list[dict] = field(default_factory=list)


def batches(data: ExampleArrays, batch_size: int, order: np.ndarray,
            with_indices: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
    """Batches in ``order``, prepared one step ahead in a thread (memory-mapped reads overlap compute);
    ``with_indices``: each batch also carries its examples' indices (sorted, as the rows are)."""
    chunks = [np.sort(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]

    def load(idx: np.ndarray):
        feats, params = data.get(idx)
        return torch.from_numpy(np.asarray(feats, dtype=np.float32)), torch.from_numpy(
            np.asarray(params, dtype=np.float32))

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(load, chunks[0]) if chunks else None
        for i in range(len(chunks)):
            batch = pending.result()
            pending = pool.submit(load, chunks[i + 1]) if i + 1 < len(chunks) else None
            yield (*batch, chunks[i]) if with_indices else batch


def cosine_lr(settings: TrainSettings, epoch: int) -> float:
    progress = min(1.0, epoch / max(1, settings.epochs - 1))
    floor = settings.lr * settings.min_lr_ratio
    return floor + 0.5 * (settings.lr - floor) * (1 + math.cos(math.pi * progress))


def evaluate_loss(network: Network, data: ExampleArrays, batch_size: int, device: torch.device) -> dict[str, float]:
    """Mean validation losses: ``loss`` (what training minimises, used for model selection) and
    ``head`` (the mixed parameter loss, comparable with the constant-predictor baseline)."""
    network.eval()
    sums: dict[str, float] = {}
    count = 0
    gen = torch.Generator().manual_seed(0)  # fixed dequantisation noise: comparable across epochs
    with torch.no_grad():
        for mel, target in batches(data, batch_size, np.arange(len(data))):
            with _autocast(device):
                loss, parts = network.loss(mel.to(device), target.to(device), generator=gen)
            for key, value in {"loss": loss, **parts}.items():
                sums[key] = sums.get(key, 0.0) + float(value) * len(target)
            count += len(target)
    return {k: v / max(1, count) for k, v in sums.items()}


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class Trainer:
    def __init__(self, network: Network, train: ExampleArrays, val: ExampleArrays, settings: TrainSettings,
                 run_dir: Path, extra: dict | None = None, spectral=None):
        self.network = network
        self.spectral = spectral  # asm.models.spectral.SpectralTerm or None
        self.train_data, self.val_data = train, val
        self.settings = settings
        self.run_dir = run_dir
        self.extra = extra or {}  # stored in every checkpoint: config, parameter order, dataset, ...
        self.device = torch.device(settings.device)
        self.network.to(self.device)
        self.optimizer = torch.optim.AdamW(network.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        self.state = TrainState()

    # --- checkpoints -------------------------------------------------------------------------
    def _checkpoint(self, with_optimizer: bool) -> dict:
        ckpt = {"network": self.network.state_dict(), "state": asdict(self.state),
                "settings": asdict(self.settings), **self.extra}
        if with_optimizer:
            ckpt["optimizer"] = self.optimizer.state_dict()
            ckpt["torch_rng"] = torch.random.get_rng_state()
            if torch.cuda.is_available():
                ckpt["cuda_rng"] = torch.cuda.get_rng_state_all()
        return ckpt

    def resume(self) -> bool:
        """Continue from ``last.pt`` if it exists; returns whether it did."""
        path = self.run_dir / "last.pt"
        if not path.exists():
            return False
        ckpt = torch.load(path, map_location=self.device, weights_only=False)
        self.network.load_state_dict(ckpt["network"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        torch.random.set_rng_state(ckpt["torch_rng"])
        if "cuda_rng" in ckpt and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
        self.state = TrainState(**ckpt["state"])
        return True

    # --- loop --------------------------------------------------------------------------------
    def run(self, on_epoch: Callable[[EpochReport], None] | None = None,
            on_step: Callable[[int, int, float], None] | None = None) -> TrainState:
        s = self.settings
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while self.state.epoch < s.epochs and self.state.since_best < s.patience:
            epoch = self.state.epoch
            lr = cosine_lr(s, epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            started = time.perf_counter()
            self.network.train()
            epoch_order = getattr(self.train_data, "order", None)  # a stream orders its own epochs
            order = (epoch_order(s.seed, epoch) if epoch_order is not None
                     else np.random.default_rng([s.seed, epoch]).permutation(len(self.train_data)))
            total, count, load_time = 0.0, 0, 0.0
            parts_sum: dict[str, float] = {}
            n_batches = math.ceil(len(order) / s.batch_size)
            spectral_weight = self.spectral.weight(epoch) if self.spectral is not None else 0.0
            skipped = 0
            t_wait = time.perf_counter()
            for step, (mel, target, idx) in enumerate(batches(self.train_data, s.batch_size, order, True)):
                load_time += time.perf_counter() - t_wait
                mel, target = mel.to(self.device, non_blocking=True), target.to(self.device, non_blocking=True)
                with _autocast(self.device):
                    if self.spectral is not None:  # the prediction feeds the twin
                        loss, parts, pred = self.network.loss(mel, target, with_prediction=True)
                    else:  # proxies' networks (the same loop) have no prediction to hand back
                        loss, parts = self.network.loss(mel, target)
                if spectral_weight > 0:
                    term = self.spectral.train_loss(pred, idx, target, np.random.default_rng([s.seed, epoch, step]))
                    loss = loss + spectral_weight * term
                    parts["spectral"] = term.detach()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), s.grad_clip or math.inf)
                if torch.isfinite(norm):
                    self.optimizer.step()
                else:  # a render the twin could not differentiate: skip the step, keep the weights
                    skipped += 1
                total += float(loss.detach()) * len(target)
                count += len(target)
                for k, v in parts.items():
                    parts_sum[k] = parts_sum.get(k, 0.0) + float(v) * len(target)
                if on_step:
                    on_step(step + 1, n_batches, total / count)
                t_wait = time.perf_counter()
            val = evaluate_loss(self.network, self.val_data, max(s.batch_size, 256), self.device)
            val_loss = val["loss"]
            extra_parts: dict[str, float] = {}
            if self.spectral is not None:
                val["spectral"] = self.spectral.validation_loss(self.network)
                if self.spectral.settings.select_by == "spectral":
                    val_loss = val["spectral"]
                extra_parts = {"spectral_weight": spectral_weight, "skipped_steps": float(skipped)}
            improved = val_loss < self.state.best_val_loss
            self.state.epoch = epoch + 1
            if improved:
                self.state.best_val_loss, self.state.best_epoch, self.state.since_best = val_loss, epoch + 1, 0
                self.state.best_val_head = val["head"]
            elif self.spectral is None or self.spectral.counts_for_patience(epoch):
                self.state.since_best += 1
            report = EpochReport(epoch + 1, total / max(1, count), val_loss, lr, time.perf_counter() - started,
                                 load_time, improved, {**{k: v / max(1, count) for k, v in parts_sum.items()},
                                                       **{f"val_{k}": v for k, v in val.items()}, **extra_parts})
            self.state.history.append(asdict(report))
            if improved:
                atomic_save(self._checkpoint(with_optimizer=False), self.run_dir / "best.pt")
            atomic_save(self._checkpoint(with_optimizer=True), self.run_dir / "last.pt")
            if on_epoch:
                on_epoch(report)
        return self.state
