"""Training speed of every architecture with the real memory-mapped loader (``asm perf train``).

Samples/s is measured over full optimiser steps (forward, mixed loss, backward, AdamW) after warm-up
steps; the loader share is the time the loop waited for its next batch over the step time (batches
are prepared one step ahead in a thread, so this is what loading actually costs training).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sqlalchemy import select

from asm.data.store import get_dataset
from asm.errors import AsmError
from asm.models.config import ModelConfig
from asm.registry.db import session_scope
from asm.registry.models import ModelConfigRow

PERF_DATASET = "perf-train-1s"


def ensure_perf_dataset(name: str | None, synth: str, size: int, seed: int) -> str:
    """The dataset to time on: ``name``, or a 1 s / 16 kHz asm-sub dataset made (once) for this."""
    if name:
        return name
    from asm.data.generate import generate_dataset
    from asm.data.settings import DatasetSettings

    try:
        with session_scope() as session:
            if get_dataset(session, PERF_DATASET).status == "complete":
                return PERF_DATASET
    except AsmError:
        pass
    generate_dataset(PERF_DATASET, DatasetSettings(synth=synth, size=size, duration=1.0, note_off=0.75, seed=seed))
    return PERF_DATASET


def measure_train_speed(archs: list[str], dataset: str, batch_size: int, steps: int, device: str,
                        warmup: int = 3) -> list[dict]:
    from asm.data.torch_dataset import ShardDataset
    from asm.models.checkpoint import build_network
    from asm.models.loop import batches
    from asm.models.training import SplitArrays, feature_statistics, resolve_device

    device = resolve_device(device)
    ds = ShardDataset(dataset, "train")
    arrays = SplitArrays(ds)
    mean, std = feature_statistics(ds, limit=512)
    rows = []
    for arch in archs:
        with session_scope() as session:
            row = session.scalar(select(ModelConfigRow).where(ModelConfigRow.name == arch))
            cfg = ModelConfig.from_row(row) if row is not None else ModelConfig(name=arch, arch=arch)
        meta = {"arch": cfg.arch, "config_settings": cfg.model_dump(exclude={"name", "arch", "description"}),
                "free_parameters": ds.free_parameters, "input_shape": list(ds.feature_shape)}
        torch.manual_seed(0)
        net = build_network(meta).to(device)
        net.set_normalisation(mean, std)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
        net.train()
        need = (warmup + steps) * batch_size
        order = np.random.default_rng(0).permutation(np.resize(np.arange(len(arrays)), need))
        wait = compute = 0.0
        samples = 0
        t_wait = time.perf_counter()
        for i, (mel, target) in enumerate(batches(arrays, batch_size, order)):
            got = time.perf_counter()
            mel, target = mel.to(device), target.to(device)
            ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else torch.autocast(
                "cpu", enabled=False)
            with ctx:
                loss, _ = net.loss(mel, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            done = time.perf_counter()
            if i >= warmup:
                wait += got - t_wait
                compute += done - got
                samples += len(target)
            t_wait = time.perf_counter()
        total = wait + compute
        rows.append({"arch": arch, "parameters": sum(p.numel() for p in net.parameters()),
                     "samples_per_s": samples / total, "ms_per_step": 1000 * total / steps,
                     "loader_share": wait / total, "device": device, "batch_size": batch_size})
    return rows
