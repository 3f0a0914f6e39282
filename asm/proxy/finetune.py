"""``finetune-model``: fine-tune a trained estimator through a frozen proxy.

Parameter loss first, then the sound: the estimator was trained on its parameter loss
(``train-model``); here it goes on with that loss plus ``weight`` x the L1 distance, in the proxy's
standardised units, between the proxy's embedding of its prediction (played at the example's mean
pitch) and the embedding of the example's stored log-mel (what the proxy was trained to predict).
Many presets sound alike, so a prediction off in parameter space but right in sound is no longer
punished for it alone.

The proxy stays frozen. Continuous, stepped and boolean values pass gradients (stepped and boolean
as their softmax expectation, ``k / (n - 1)`` weighted by the class probabilities); categorical
choices enter the proxy as their argmax (one-hot, no gradient), so only the parameter loss trains
those heads. The result is a new model row (``<model>-ft-<proxy>`` by default) with the same config,
dataset and checkpoint layout as its source, so ``asm match --model``, ``test-model`` and the
benchmark read it as any other model. Not resumable: run it again under another ``--name``.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import asdict
from datetime import datetime, timezone

import numpy as np
import torch
from torch import nn

from asm import paths
from asm.errors import AsmError
from asm.models.training import SplitArrays
from asm.progress import Reporter


class PitchedArrays(SplitArrays):
    """A split as the training loop reads it, with the normalised mean pitch appended to each target row."""

    def __init__(self, ds):
        from asm.proxy.pitch import mean_pitch, pitch_value

        super().__init__(ds)
        self.pitch = np.array([pitch_value(mean_pitch(ds.notes(i))) for i in range(len(ds))], np.float32)

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats, params = super().get(indices)
        return feats, np.concatenate([params, self.pitch[np.asarray(indices, dtype=np.int64)][:, None]], axis=1)


def soft_free(network, pred) -> torch.Tensor:
    """A differentiable normalised free vector from an estimator's ``Prediction``: continuous values as
    predicted, discrete ones as their expected value under the softmax (exactly ``decode``'s when sure)."""
    layout = network.layout
    parts = [None] * layout.n_free
    for j, i in enumerate(layout.continuous):
        parts[i] = pred.continuous[:, j]
    for j, i in enumerate(layout.discrete):
        block = pred.logits[:, layout.offsets[j] : layout.offsets[j + 1]].float()
        n = layout.n_values[j]
        grid = torch.arange(n, device=block.device, dtype=block.dtype) / max(1, n - 1)
        parts[i] = (torch.softmax(block, dim=1) * grid).sum(dim=1)
    return torch.stack(parts, dim=1)


class ProxyTuned(nn.Module):
    """An estimator network whose loss adds ``weight`` x the proxy's embedding distance. Its state is the
    estimator's own (the proxy is frozen and kept out of ``parameters`` and ``state_dict``), so its
    checkpoints are ordinary model checkpoints."""

    def __init__(self, network, proxy, weight: float):
        super().__init__()
        self.network = network
        object.__setattr__(self, "proxy", proxy)  # not a submodule: not trained, not saved
        for p in proxy.parameters():
            p.requires_grad_(False)
        proxy.eval()
        self.weight = float(weight)
        self.categorical = [i for i in range(len(proxy.layout.params) - int(proxy.pitch_input))
                            if proxy.layout.categorical(i)]

    def state_dict(self, *args, **kwargs):
        return self.network.state_dict(*args, **kwargs)

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        return self.network.load_state_dict(state, strict=strict, assign=assign)

    def _apply(self, fn, *args, **kwargs):
        self.proxy._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def loss(self, mel: torch.Tensor, target: torch.Tensor, generator=None):
        from asm.proxy.embedding import embed_logmel

        params, pitch = target[:, :-1], target[:, -1:]
        total, parts = self.network.loss(mel, params, generator)
        pred, _ = self.network(mel)
        free = soft_free(self.network, pred)
        if self.categorical:  # hard choices: the proxy one-hot encodes them
            hard = self.network.layout.decode(pred)
            free = free.clone()
            free[:, self.categorical] = hard[:, self.categorical].to(free.dtype)
        x = torch.cat([free, pitch.to(free.dtype)], dim=1) if self.proxy.pitch_input else free
        with torch.no_grad():
            z_true = (embed_logmel(mel.float()) - self.proxy.mean) / self.proxy.std
        embedding = (self.proxy.standardised(x.float()) - z_true).abs().mean()
        parts["parameters"] = parts["head"]
        parts["embedding"] = embedding.detach()
        total = total + self.weight * embedding
        parts["head"] = total.detach()
        return total, parts


def finetune_model(model: str, proxy: str, *, epochs: int = 10, weight: float = 1.0, lr: float = 3e-4,
                   batch_size: int | None = None, device: str = "auto", seed: int = 0, name: str | None = None,
                   reporter: Reporter | None = None) -> dict:
    """Fine-tune ``model`` through the frozen ``proxy`` into a new model; returns the summary ``--json`` prints."""
    from asm.models.checkpoint import read_checkpoint
    from asm.models.training import resolve_device, train_or_mark_failed
    from asm.registry.db import session_scope
    from asm.registry.models import Model

    reporter = reporter or Reporter()
    device = resolve_device(device)
    if epochs < 1 or not lr > 0 or not weight >= 0 or (batch_size is not None and batch_size < 1):
        raise AsmError("--epochs and --batch-size must be positive, --lr greater than 0 and --weight at least 0")
    with ExitStack() as held:
        with session_scope() as session:
            plan = _new_row(session, held, model, proxy, name, epochs, batch_size, lr, weight, device, seed)
        source = read_checkpoint(plan["source"])
        out = train_or_mark_failed(Model, plan["model_id"], lambda: _finetune(source, plan, weight, reporter))
    return {"model_id": plan["model_id"], "name": plan["name"], "from": model, "proxy": plan["proxy_name"],
            "dataset": plan["dataset"], "weight": weight, **out}


def _new_row(session, held: ExitStack, model, proxy, name, epochs, batch_size, lr, weight, device, seed) -> dict:
    """Check the source model and the proxy, create the new model row and take its lock."""
    from sqlalchemy import select

    from asm.models.checkpoint import model_lock
    from asm.models.estimator import find_model
    from asm.models.loop import TrainSettings
    from asm.models.training import MODEL_NAME_LONGEST
    from asm.proxy.train import load_proxy
    from asm.registry.models import Model

    src = find_model(session, model)
    source = paths.data_dir() / src.checkpoint / "best.pt"
    if src.arch == "nn" or not source.is_file():
        raise AsmError(f"model {src.name} has no trained network to fine-tune ({src.arch})")
    proxy_net, _, prow = load_proxy(session, proxy)
    if (prow.synth_id != src.synth_id or prow.free_signature != src.free_signature
            or prow.lock_signature != src.lock_signature):
        raise AsmError(f"proxy {prow.name} was trained for other parameters or locks than model {src.name}")
    new_name = name or f"{src.name}-ft-{prow.name}"
    paths.check_name(new_name, "model", MODEL_NAME_LONGEST)
    if session.scalar(select(Model).where(Model.name == new_name)) is not None:
        raise AsmError(f"model {new_name} exists; pick another --name")
    base = TrainSettings(**{**src.train_settings, "device": device})
    settings = TrainSettings(epochs=epochs, batch_size=batch_size or base.batch_size, lr=lr,
                             weight_decay=base.weight_decay, patience=epochs, seed=seed, device=device)
    row = Model(name=new_name, config_id=src.config_id, dataset_id=src.dataset_id, synth_id=src.synth_id,
                arch=src.arch, status="training", seed=seed, device=device,
                train_settings={**{k: v for k, v in asdict(settings).items() if k != "device"},
                                "finetune": {"from": src.name, "proxy": prow.name, "weight": weight}},
                config_settings=dict(src.config_settings), feature_settings=dict(src.feature_settings),
                sample_rate=src.sample_rate, free_signature=src.free_signature,
                lock_signature=src.lock_signature, free_parameters=list(src.free_parameters),
                checkpoint="", code_version=src.code_version)
    session.add(row)
    session.flush()
    row.checkpoint = f"models/{row.id:05d}-{new_name}"
    held.enter_context(model_lock(new_name, row.checkpoint))
    return {"model_id": row.id, "name": new_name, "checkpoint": row.checkpoint, "dataset": src.dataset.name,
            "settings": settings, "proxy": proxy_net, "proxy_name": prow.name, "source": source}


def _finetune(source: dict, plan: dict, weight: float, reporter: Reporter) -> dict:
    from asm.models.checkpoint import build_network
    from asm.models.loop import Trainer, evaluate_loss
    from asm.models.training import open_splits, record_epochs
    from asm.registry.db import session_scope
    from asm.registry.models import Model

    settings, name, model_id = plan["settings"], plan["name"], plan["model_id"]
    started = time.perf_counter()
    meta = dict(source["meta"])
    meta["model_name"] = name
    network = build_network(meta)
    network.load_state_dict(source["network"])
    tuned = ProxyTuned(network, plan["proxy"], weight)
    train_ds, val_ds = open_splits(plan["dataset"])
    train, val = PitchedArrays(train_ds), PitchedArrays(val_ds)
    torch.manual_seed(settings.seed)
    before = evaluate_loss(tuned, val, max(settings.batch_size, 256), torch.device(settings.device))
    directory = paths.ensure_dir(paths.data_dir() / plan["checkpoint"])
    trainer = Trainer(tuned, train, val, settings, directory, extra={"meta": meta})
    stage = f"fine-tuning {name}"
    reporter.start(stage, settings.epochs)

    def on_epoch(report) -> None:
        record_epochs(model_id, [asdict(report)], trainer.state)
        reporter.update(report.epoch, stage=stage, train=report.train_loss, val=report.val_loss,
                        improved=report.improved)

    try:
        state = trainer.run(on_epoch=on_epoch)
    finally:
        reporter.finish(stage)
    best = next(h for h in state.history if h["epoch"] == state.best_epoch)
    seconds = time.perf_counter() - started
    with session_scope() as session:
        row = session.get(Model, model_id)
        row.status = "complete"
        row.baseline_val_loss = before["head"]
        row.seconds = seconds
        row.completed_at = datetime.now(timezone.utc).replace(tzinfo=None)
    return {"epochs": state.epoch, "best_epoch": state.best_epoch,
            "val_before": {"parameters": before["parameters"], "embedding": before["embedding"]},
            "val_after": {"parameters": best["parts"]["val_parameters"], "embedding": best["parts"]["val_embedding"]},
            "seconds": round(seconds, 3)}
