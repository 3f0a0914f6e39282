"""``train-proxy``: fit a proxy config on a dataset (free parameters -> embedding of the render).

Mirrors ``train-model`` (asm.models.training) and reuses its training loop (asm.models.loop:
seeded epoch order, best and last checkpoints written atomically, early stopping, cosine decay):
the row is committed (``training``) before the first epoch, every epoch's metrics are committed,
one process holds the proxy's checkpoint directory lock, an error marks the row ``failed``, and
``--resume NAME`` continues from ``last.pt`` after Ctrl-C or ``kill -9``.

The targets are ``asm.proxy.embedding.embed_logmel`` of the log-mel the dataset stores, so
training renders nothing. The inputs are the free parameters and, since checkpoint format 2, the
example's mean pitch (``asm.proxy.pitch``) from the notes the dataset stores with it; a format-1
proxy (parameters only) still loads and screens, blind to pitch.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import asdict

import numpy as np
import torch

from asm import paths
from asm.errors import AsmError
from asm.locks import DirectoryLock
from asm.models.checkpoint import read_checkpoint
from asm.models.training import train_or_mark_failed
from asm.progress import Reporter
from asm.registry.models import Proxy

FORMAT = 2  # 2: the mean pitch is the last input column; 1: free parameters only
FORMATS = (1, 2)  # what load_proxy reads


class EmbeddingArrays:
    """One split in memory as the loop's ``ExampleArrays``: (free parameters, target embedding)."""

    def __init__(self, params: np.ndarray, embeddings: np.ndarray):
        self.params, self.embeddings = params.astype(np.float32), embeddings.astype(np.float32)

    def __len__(self) -> int:
        return len(self.params)

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.params[indices], self.embeddings[indices]


def split_arrays(dataset: str, split: str, pitch: bool = True) -> EmbeddingArrays:
    """A split's inputs (free parameters, then with ``pitch`` the normalised mean pitch of the
    example's notes) and the embedding of each example's stored log-mel."""
    from asm.data.torch_dataset import ShardDataset
    from asm.proxy.embedding import embed_logmel
    from asm.proxy.pitch import mean_pitch, with_pitch

    ds = ShardDataset(dataset, split)
    n = len(ds)
    params = np.stack([ds.params(i) for i in range(n)]) if n else np.zeros((0, ds.n_free), np.float32)
    if pitch:
        params = with_pitch(params, np.array([mean_pitch(ds.notes(i)) for i in range(n)])) if n else \
            np.zeros((0, ds.n_free + 1), np.float32)
    embs = [embed_logmel(np.stack([ds.features(i) for i in range(a, min(n, a + 512))])).numpy()
            for a in range(0, n, 512)]
    return EmbeddingArrays(params, np.concatenate(embs) if embs else np.zeros((0, 0), np.float32))


def proxy_lock(name: str, checkpoint: str) -> DirectoryLock:
    return DirectoryLock(paths.data_dir() / checkpoint, f"proxy {name} is being trained")


def find_proxy(session, ref: str | int):
    """A proxy row by name, ``#id`` or id."""
    from sqlalchemy import select

    from asm.registry.models import Proxy

    text = str(ref).strip()
    row = session.get(Proxy, int(text.lstrip("#"))) if text.lstrip("#").isdigit() else None
    row = row or session.scalar(select(Proxy).where(Proxy.name == text))
    if row is None:
        raise AsmError(f"no proxy {text!r} (train one with asm train-proxy)")
    return row


def train_proxy(config: str, dataset: str, *, epochs: int | None = None, batch_size: int | None = None,
                lr: float | None = None, patience: int | None = None, device: str = "auto", seed: int = 0,
                name: str | None = None, resume: str | None = None, reporter: Reporter | None = None) -> dict:
    """Train (or resume) a proxy; returns the summary ``--json`` prints."""
    from asm.models.training import check_overrides, resolve_device

    reporter = reporter or Reporter()
    device = resolve_device(device)
    check_overrides(epochs, batch_size, lr, patience)
    with ExitStack() as held:
        plan = _resume_plan(resume, device, held) if resume else _new_plan(
            config, dataset, epochs, batch_size, lr, patience, device, seed, name, held)
        return train_or_mark_failed(Proxy, plan["proxy_id"], lambda: _train(plan, bool(resume), reporter))


def _meta(row, dataset_name: str) -> dict:
    return {"format": FORMAT, "pitch_input": True, "net": row.net, "config_settings": dict(row.config_settings),
            "free_parameters": list(row.free_parameters), "free_signature": row.free_signature,
            "lock_signature": row.lock_signature, "dataset": dataset_name, "seed": row.seed,
            "proxy_name": row.name, "code_version": row.code_version}


def _plan(row, dataset_name: str, device: str, settings) -> dict:
    return {"proxy_id": row.id, "name": row.name, "net": row.net, "dataset": dataset_name,
            "checkpoint": row.checkpoint, "device": device, "meta": _meta(row, dataset_name), "settings": settings}


def _resume_plan(resume: str, device: str, held: ExitStack) -> dict:
    from asm.models.loop import TrainSettings
    from asm.registry.db import session_scope

    with session_scope() as session:
        row = find_proxy(session, resume)
        if row.status == "complete":
            raise AsmError(f"proxy {row.name} already finished training ({row.epochs_done} epochs)")
        last = paths.data_dir() / row.checkpoint / "last.pt"
        if last.is_file() and (read_checkpoint(last).get("meta") or {}).get("format") != FORMAT:
            raise AsmError(f"proxy {row.name} was started by an older asm (checkpoint format 1); "
                           "train a new one with asm train-proxy")
        held.enter_context(proxy_lock(row.name, row.checkpoint))
        row.status = "training"
        return _plan(row, row.dataset.name, device, TrainSettings(**{**row.train_settings, "device": device}))


def _new_plan(config, dataset, epochs, batch_size, lr, patience, device, seed, name, held: ExitStack) -> dict:
    from sqlalchemy import select

    from asm.data.store import code_version, get_dataset
    from asm.models.loop import TrainSettings
    from asm.models.training import MODEL_NAME_LONGEST, open_splits
    from asm.proxy.config import ProxyConfig, ensure_config, shipped_configs
    from asm.registry.db import session_scope
    from asm.registry.models import Proxy, ProxyConfigRow

    with session_scope() as session:
        cfg_row = ensure_config(session, config)
        if cfg_row is None:
            known = sorted({*session.scalars(select(ProxyConfigRow.name)), *shipped_configs()})
            raise AsmError(f"unknown proxy config {config!r}; known: {', '.join(known)}")
        dataset_row = get_dataset(session, dataset)
        if dataset_row.status != "complete":
            raise AsmError(f"dataset {dataset} is incomplete; finish it with its generate-dataset command")
        cfg = ProxyConfig.from_row(cfg_row)
        pick = lambda given, default: default if given is None else given  # noqa: E731
        settings = TrainSettings(epochs=pick(epochs, cfg.train.epochs), batch_size=pick(batch_size, cfg.train.batch_size),
                                 lr=pick(lr, cfg.train.lr), weight_decay=cfg.train.weight_decay,
                                 patience=pick(patience, cfg.train.patience), seed=seed, device=device)
        proxy_name = name or f"{cfg_row.name}-{dataset_row.name}-s{seed}"
        paths.check_name(proxy_name, "proxy", MODEL_NAME_LONGEST)
        existing = session.scalar(select(Proxy).where(Proxy.name == proxy_name))
        if existing is not None:
            hint = (f"resume it with --resume {proxy_name}" if existing.status != "complete"
                    else "pick another --name or --seed")
            raise AsmError(f"proxy {proxy_name} exists ({existing.status}); {hint}")
        dataset_name = dataset_row.name
    open_splits(dataset_name)  # both splits have examples: before any row exists
    with session_scope() as session:
        cfg_row = session.scalar(select(ProxyConfigRow).where(ProxyConfigRow.name == config))
        dataset_row = get_dataset(session, dataset_name)
        row = Proxy(name=proxy_name, config_id=cfg_row.id, dataset_id=dataset_row.id, synth_id=dataset_row.synth_id,
                    net=cfg_row.net, status="training", seed=seed, device=device,
                    train_settings={k: v for k, v in asdict(settings).items() if k != "device"},
                    config_settings=dict(cfg_row.settings), free_signature=dataset_row.free_signature,
                    lock_signature=dataset_row.lock_signature, free_parameters=list(dataset_row.free_parameters),
                    checkpoint="", history=[], code_version=code_version())
        session.add(row)
        session.flush()
        row.checkpoint = f"proxies/{row.id:05d}-{proxy_name}"
        held.enter_context(proxy_lock(proxy_name, row.checkpoint))
        return _plan(row, dataset_name, device, settings)


def build_network(meta: dict):
    from asm.proxy.models import ProxyNetwork

    return ProxyNetwork(meta["net"], meta["free_parameters"], int(meta["embed_dim"]),
                        pitch_input=bool(meta.get("pitch_input", False)), **meta["config_settings"].get("hyper", {}))


def constant_baseline(train: EmbeddingArrays, val: EmbeddingArrays, mean, std) -> float:
    """Validation L1 (standardised units) of the best input-free answer: the training median."""
    z_train = (torch.from_numpy(train.embeddings) - mean) / std
    z_val = (torch.from_numpy(val.embeddings) - mean) / std
    return float((z_val - z_train.median(dim=0).values).abs().mean())


def _train(plan: dict, resume: bool, reporter: Reporter) -> dict:
    from datetime import datetime, timezone

    from asm.models.loop import Trainer
    from asm.registry.db import session_scope
    from asm.registry.models import Proxy

    started = time.perf_counter()
    settings, meta = plan["settings"], plan["meta"]
    directory = paths.ensure_dir(paths.data_dir() / plan["checkpoint"])
    pitch = bool(meta.get("pitch_input", False))
    train, val = split_arrays(plan["dataset"], "train", pitch), split_arrays(plan["dataset"], "val", pitch)
    meta["embed_dim"] = int(train.embeddings.shape[1])
    e = torch.from_numpy(train.embeddings)
    mean, std = e.mean(dim=0), e.std(dim=0).clamp_min(1e-4)
    torch.manual_seed(settings.seed)
    network = build_network(meta)
    network.set_normalisation(mean, std)
    baseline = constant_baseline(train, val, mean, std)
    trainer = Trainer(network, train, val, settings, directory, extra={"meta": meta})
    if resume and trainer.resume():
        reporter.event(f"resumed after epoch {trainer.state.epoch}")

    def record() -> None:
        with session_scope() as session:
            row = session.get(Proxy, plan["proxy_id"])
            row.history = list(trainer.state.history)
            row.epochs_done = trainer.state.epoch
            row.best_epoch = trainer.state.best_epoch
            row.best_val_loss = trainer.state.best_val_head if trainer.state.epoch else None
            row.baseline_val_loss = baseline

    record()
    stage = f"training {plan['name']}"
    reporter.start(stage, settings.epochs, trainer.state.epoch)

    def on_epoch(report) -> None:
        record()
        reporter.update(report.epoch, stage=stage, train=report.train_loss, val=report.val_loss,
                        improved=report.improved)

    try:
        state = trainer.run(on_epoch=on_epoch)
    finally:
        reporter.finish(stage)
    seconds = time.perf_counter() - started
    with session_scope() as session:
        row = session.get(Proxy, plan["proxy_id"])
        row.status = "complete"
        row.seconds = (row.seconds or 0.0) + seconds
        row.completed_at = datetime.now(timezone.utc).replace(tzinfo=None)
        total = row.seconds
    return {"proxy_id": plan["proxy_id"], "name": plan["name"], "net": plan["net"], "dataset": plan["dataset"],
            "device": plan["device"], "epochs": state.epoch, "best_epoch": state.best_epoch,
            "best_val_l1": state.best_val_head, "baseline_val_l1": baseline, "seconds": round(total, 3)}


def load_proxy(session, ref: str | int):
    """(network in eval mode, its checkpoint meta, the row) of a finished proxy."""
    row = find_proxy(session, ref)
    if row.status != "complete":
        raise AsmError(f"proxy {row.name} is not finished ({row.status}); resume it with "
                       f"asm train-proxy --resume {row.name}")
    path = paths.data_dir() / row.checkpoint / "best.pt"
    ckpt = read_checkpoint(path)
    meta = ckpt.get("meta") or {}
    if meta.get("format") not in FORMATS:
        raise AsmError(f"{path} is not an asm proxy checkpoint (formats {', '.join(map(str, FORMATS))})")
    network = build_network(meta)
    network.load_state_dict(ckpt["network"])
    network.eval()
    return network, meta, row
