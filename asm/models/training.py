"""``train-model``: train a registered model config on a generated dataset and record it.

The settings, the config, the dataset and its splits are checked before the model row exists.
The row is committed (status ``training``) before the first epoch, each completed epoch commits
its metrics, and the row becomes ``complete`` with the best checkpoint at the end. One process
at a time trains a model: it holds the lock of the model's checkpoint directory (``asm.locks``),
so a second ``--resume`` is refused with the holder's pid, host and start time. An error after
the row exists marks it ``failed``. After Ctrl-C or ``kill -9``, ``--resume NAME`` continues from
the last completed epoch (``last.pt``); epochs whose metrics were not committed before the kill
are filled in from the checkpoint. ``nn`` needs no training: it indexes the training split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from sqlalchemy import select

from asm import paths
from asm.data.store import code_version, get_dataset
from asm.errors import AsmError
from asm.models import architectures
from asm.models.checkpoint import model_lock
from asm.models.config import ModelConfig
from asm.models.loop import EpochReport, Trainer, TrainSettings
from asm.progress import Reporter
from asm.registry.db import session_scope
from asm.registry.models import Model, ModelConfigRow, ModelEpoch
from asm.registry.shipped import ensure_model_config, shipped_model_configs

META_FORMAT = 1
MODEL_NAME_LONGEST = 200  # as Model.name's column allows (it names the checkpoint directory too)
NORM_SAMPLE = 2048  # examples used for the per-band feature statistics


class SplitArrays:
    """One split of a dataset as the training loop's ``ExampleArrays`` (memory-mapped reads)."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats = np.stack([self.ds.features(int(i)) for i in indices])
        params = np.stack([self.ds.params(int(i)) for i in indices])
        return feats, params


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise AsmError(f"unknown device {device!r}: use auto, cpu or cuda")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AsmError("--device cuda was asked for, but no CUDA device is available")
    return device


def feature_statistics(ds, limit: int = NORM_SAMPLE, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-mel-band mean and standard deviation over (a seeded sample of) the training split."""
    n = len(ds)
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(n, limit), replace=False))
    total = sq = None
    count = 0
    for start in range(0, len(idx), 256):
        block = torch.from_numpy(np.stack([ds.features(int(i)) for i in idx[start : start + 256]])).double()
        s, q = block.sum(dim=(0, 2)), (block**2).sum(dim=(0, 2))
        total = s if total is None else total + s
        sq = q if sq is None else sq + q
        count += block.shape[0] * block.shape[2]
    mean = total / count
    std = (sq / count - mean**2).clamp_min(1e-6).sqrt()
    return mean.float(), std.float()


def baseline_loss(layout, weights, train: SplitArrays, val: SplitArrays) -> float:
    """Validation loss of the best input-free predictor (training mean / class frequencies)."""
    from asm.models.heads import constant_prediction

    n = len(train)
    sample = np.sort(np.random.default_rng(0).choice(n, size=min(n, 20000), replace=False))
    train_targets = torch.from_numpy(_labels(train, sample))
    val_targets = torch.from_numpy(_labels(val, np.arange(len(val))))
    pred = constant_prediction(layout, train_targets, len(val_targets))
    loss, _ = layout.loss(pred, val_targets, weights)
    return float(loss)


def architectures_kind(arch: str) -> str:
    from asm.models import architectures

    return architectures.get(arch).kind


def _labels(arrays, indices: np.ndarray) -> np.ndarray:
    """Labels of a split (``SplitArrays``, or ``CanonicalArrays`` around one) without its features."""
    split = getattr(arrays, "arrays", arrays)
    params = np.stack([split.ds.params(int(i)) for i in indices])
    canon = getattr(arrays, "canon", None)
    return canon(params) if canon is not None else params


def default_name(config: str, dataset: str, seed: int) -> str:
    return f"{config}-{dataset}-s{seed}"


def check_overrides(epochs: int | None, batch_size: int | None, lr: float | None, patience: int | None) -> None:
    """Explicit training settings are used as given, so they must be valid (0 is not "the default")."""
    for flag, value in (("--epochs", epochs), ("--batch-size", batch_size), ("--patience", patience)):
        if value is not None and value < 1:
            raise AsmError(f"{flag} must be at least 1, got {value}")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise AsmError(f"--lr must be a finite number greater than 0, got {lr:g}")


def open_splits(dataset: str) -> tuple:
    """The train and val splits of a dataset, refused (before any model row exists) when either is empty."""
    from asm.data.torch_dataset import ShardDataset

    train_ds, val_ds = ShardDataset(dataset, "train"), ShardDataset(dataset, "val")
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise AsmError(f"dataset {dataset} needs examples in both its train and val splits "
                       f"(it has {len(train_ds)} train and {len(val_ds)} val examples)")
    return train_ds, val_ds


def train_model(config: str, dataset: str, *, epochs: int | None = None, batch_size: int | None = None,
                lr: float | None = None, patience: int | None = None, device: str = "auto", seed: int = 0,
                name: str | None = None, resume: str | None = None,
                reporter: Reporter | None = None, stream: int | None = None, workers: int | str = "auto",
                train_limit: int | None = None, canonical: bool = False) -> dict:
    """Train (or resume) a model and return the summary ``--json`` prints.

    Settings and data are checked before the model row exists; the row's process holds the
    model's lock until it finishes; a failure after that marks the row ``failed`` (``--resume``
    retries it, ``asm delete-model`` removes it). Ctrl-C leaves it ``training``, to resume.

    Progress: stage ``training <name>`` counts epochs (figures: train and val loss, lr, improved),
    stage ``batches`` the current epoch's batches (figure: loss); ``nn`` has one step, ``indexing <name>``.
    """
    reporter = reporter or Reporter()
    device = resolve_device(device)
    check_overrides(epochs, batch_size, lr, patience)
    if stream is not None and stream < 1:
        raise AsmError(f"--stream must be at least 1 example per epoch, got {stream}")
    with ExitStack() as held:
        if resume:
            plan = _resume_plan(resume, device, held)
        else:
            plan = _new_plan(config, dataset, epochs, batch_size, lr, patience, device, seed, name, held, stream,
                             train_limit, canonical)
        plan["workers"] = workers
        return train_or_mark_failed(Model, plan["model_id"], lambda: _train(plan, bool(resume), reporter))


def train_or_mark_failed(row_type, row_id: int, train: Callable[[], dict]) -> dict:
    """Run ``train``; an error marks row ``row_id`` (a Model or a Proxy) ``failed``, so ``--resume``
    retries it and ``delete-*`` removes it. Ctrl-C leaves it ``training``, to resume."""
    try:
        return train()
    except KeyboardInterrupt:
        raise
    except BaseException:
        with suppress(Exception):  # the original error matters more than this row update
            with session_scope() as session:
                session.get(row_type, row_id).status = "failed"
        raise


def _meta(row, dataset_name: str) -> dict:
    return {"format": META_FORMAT, "arch": row.arch, "config_settings": dict(row.config_settings),
            "free_parameters": list(row.free_parameters), "free_signature": row.free_signature,
            "lock_signature": row.lock_signature, "feature_settings": dict(row.feature_settings),
            "sample_rate": row.sample_rate, "dataset": dataset_name, "dataset_id": row.dataset_id,
            "seed": row.seed, "code_version": row.code_version, "model_name": row.name}


def _resume_plan(resume: str, device: str, held: ExitStack) -> dict:
    """Lock an unfinished model (refused while another process trains it) and set it training again."""
    from asm.models.estimator import find_model

    with session_scope() as session:
        row = find_model(session, resume)
        if row.status == "complete":
            raise AsmError(f"model {row.name} already finished training ({row.epochs_done} epochs)")
        held.enter_context(model_lock(row.name, row.checkpoint))
        row.status = "training"
        return {"model_id": row.id, "name": row.name, "arch": row.arch, "dataset": row.dataset.name,
                "checkpoint": row.checkpoint, "device": device, "meta": _meta(row, row.dataset.name),
                "settings": TrainSettings(**{**row.train_settings, "device": device})}


def _new_plan(config, dataset, epochs, batch_size, lr, patience, device, seed, name, held: ExitStack,
              stream: int | None = None, train_limit: int | None = None, canonical: bool = False) -> dict:
    """Check the config, the dataset and the name, then create the model row and take its lock."""
    def name_is_free(session, model_name: str) -> None:
        existing = session.scalar(select(Model).where(Model.name == model_name))
        if existing is not None:
            hint = {"training": f"resume it with --resume {model_name}",
                    "failed": f"retry it with --resume {model_name} or remove it with asm delete-model {model_name}",
                    }.get(existing.status, "pick another --name or --seed")
            raise AsmError(f"model {model_name} exists ({existing.status}); {hint}")

    with session_scope() as session:
        cfg_row = ensure_model_config(session, config)  # a shipped config is applied on first use
        if cfg_row is None:
            known = sorted({*session.scalars(select(ModelConfigRow.name)), *shipped_model_configs()})
            raise AsmError(f"unknown model config {config!r}; known: {', '.join(known) or 'none'} "
                           "(add one with a fixture and asm update-registry)")
        dataset_row = get_dataset(session, dataset)
        if dataset_row.status != "complete":
            raise AsmError(f"dataset {dataset} is incomplete; finish it with its generate-dataset command")
        cfg = ModelConfig.from_row(cfg_row)
        pick = lambda given, default: default if given is None else given  # noqa: E731
        settings = TrainSettings(
            epochs=pick(epochs, cfg.train.epochs), batch_size=pick(batch_size, cfg.train.batch_size),
            lr=pick(lr, cfg.train.lr), weight_decay=cfg.train.weight_decay,
            patience=pick(patience, cfg.train.patience), seed=seed, device=device, stream=stream or 0,
            train_limit=train_limit or 0, canonical=canonical)
        if stream and architectures_kind(cfg_row.arch) == "index":
            raise AsmError(f"config {cfg_row.name} indexes stored examples: it cannot train on a --stream")
        if cfg.spectral is not None:
            from asm.models.spectral import check_twin

            check_twin(dataset_row.synth.name, f"model config {cfg_row.name}")  # before any row: a synth without a twin is refused
            if stream:
                raise AsmError(f"config {cfg_row.name} trains through the twin on stored examples: "
                               "it cannot train on a --stream")
        if settings.epochs < 1 or settings.batch_size < 1 or not settings.lr > 0:
            raise AsmError("--epochs and --batch-size must be positive and --lr greater than 0")
        model_name = name if name is not None else default_name(cfg_row.name, dataset_row.name, seed)
        paths.check_name(model_name, "model", MODEL_NAME_LONGEST)
        name_is_free(session, model_name)
        dataset_name = dataset_row.name
    train_ds, _ = open_splits(dataset_name)  # no model row for a dataset it cannot train on
    if canonical:
        _canonicaliser(train_ds)
    if stream and train_ds.settings.midi_dir is not None:
        raise AsmError(f"dataset {dataset_name} plays MIDI chunks: --stream plays the built-in note generator "
                       "and cannot stream it")

    with session_scope() as session:
        name_is_free(session, model_name)
        cfg_row = session.scalar(select(ModelConfigRow).where(ModelConfigRow.name == config))
        dataset_row = get_dataset(session, dataset_name)
        ds_settings = dict(dataset_row.settings)
        row = Model(
            name=model_name, config_id=cfg_row.id, dataset_id=dataset_row.id, synth_id=dataset_row.synth_id,
            arch=cfg_row.arch, status="training", seed=seed, device=device,
            train_settings={k: v for k, v in asdict(settings).items() if k != "device"},
            config_settings=dict(cfg_row.settings), feature_settings=dict(ds_settings["features"]),
            sample_rate=int(ds_settings["sample_rate"]), free_signature=dataset_row.free_signature,
            lock_signature=dataset_row.lock_signature, free_parameters=list(dataset_row.free_parameters),
            checkpoint="", code_version=code_version())
        session.add(row)
        session.flush()
        row.checkpoint = f"models/{row.id:05d}-{model_name}"
        held.enter_context(model_lock(model_name, row.checkpoint))  # before the row is visible to others
        return {"model_id": row.id, "name": model_name, "arch": row.arch, "dataset": dataset_name,
                "checkpoint": row.checkpoint, "device": device, "meta": _meta(row, dataset_name),
                "settings": settings}


def _train(plan: dict, resume: bool, reporter: Reporter) -> dict:
    """Everything after the row exists: statistics, the fit (or the nn index), the final row update."""
    model_id, settings, meta = plan["model_id"], plan["settings"], plan["meta"]
    directory = paths.ensure_dir(paths.data_dir() / plan["checkpoint"])
    train_ds, val_ds = open_splits(plan["dataset"])
    if settings.train_limit:
        train_ds = train_ds.head(settings.train_limit)
    train, val = SplitArrays(train_ds), SplitArrays(val_ds)
    canon = _canonicaliser(train_ds) if settings.canonical else None
    if canon is not None:
        from asm.data.symmetry import CanonicalArrays

        val = CanonicalArrays(val, canon)  # train is wrapped where it is fitted (split or stream)
    meta["input_shape"] = list(train_ds.feature_shape)
    started = time.perf_counter()
    mean, std = feature_statistics(train_ds, seed=settings.seed)

    if architectures.get(plan["arch"]).kind == "index":
        result = _build_neighbours(train_ds, mean, std, meta, directory, reporter)
    elif settings.stream:  # fresh examples each epoch; the dataset gives validation, statistics, baseline
        from asm.data.stream import ExampleStream, StreamArrays

        with ExampleStream.for_dataset(plan["dataset"], settings.seed, workers=plan.get("workers", "auto")) as s:
            result = _fit(meta, settings, mean, std, train, val, directory, model_id, resume, reporter,
                          fit_on=_canonical(StreamArrays(s, settings.stream), canon))
    else:
        result = _fit(meta, settings, mean, std, train, val, directory, model_id, resume, reporter,
                      fit_on=_canonical(train, canon) if canon is not None else None,
                      spectral=_spectral_term(meta, train_ds, val_ds))
    seconds = time.perf_counter() - started

    with session_scope() as session:
        row = session.get(Model, model_id)
        row.status = "complete"
        row.epochs_done = result["epochs"]
        row.best_epoch = result.get("best_epoch")
        row.best_val_loss = result.get("best_val_loss")
        row.baseline_val_loss = result.get("baseline_val_loss")
        row.seconds = (row.seconds or 0.0) + seconds
        row.completed_at = datetime.now(timezone.utc).replace(tzinfo=None)
        total_seconds = row.seconds
    return {"model_id": model_id, "name": plan["name"], "arch": plan["arch"], "dataset": plan["dataset"],
            "device": plan["device"], "seconds": round(total_seconds, 3), **result}


def _canonicaliser(train_ds):
    from asm.data.symmetry import Canonicaliser

    canon = Canonicaliser.for_dataset(train_ds)
    if canon is None:
        raise AsmError(f"--canonical: no parameter symmetry of {train_ds.synth} is free in dataset {train_ds.name}")
    return canon


def _canonical(arrays, canon):
    if canon is None:
        return arrays
    from asm.data.symmetry import CanonicalArrays

    return CanonicalArrays(arrays, canon)


def _build_neighbours(train_ds, mean, std, meta, directory: Path, reporter: Reporter) -> dict:
    from asm.models.loop import atomic_save
    from asm.models.neighbours import NeighbourIndex

    n = len(train_ds)
    stage = f"indexing {meta['model_name']}"
    reporter.start(stage, 1)
    order = np.arange(n)
    params = np.stack([train_ds.params(int(i)) for i in order])
    blocks = (np.stack([train_ds.features(int(i)) for i in order[a : a + 512]]) for a in range(0, n, 512))
    index = NeighbourIndex.build(blocks, params, mean, std, int(meta["config_settings"].get("nn", {})
                                                                  .get("time_pool", 2)))
    atomic_save({"index": index.state(), "meta": meta}, directory / "index.pt")
    reporter.update(1, stage=stage)
    reporter.finish(stage)
    return {"epochs": 0, "best_epoch": None, "best_val_loss": None, "baseline_val_loss": None,
            "indexed_examples": n}


def _spectral_term(meta: dict, train_ds, val_ds):
    """For a spectral config, ``(layout, device) -> SpectralTerm`` (``asm.models.spectral``; ``_fit`` gives
    the network's layout); None for the others."""
    spectral = meta["config_settings"].get("spectral")
    if not spectral:
        return None
    from asm.models.spectral import SpectralTerm

    what = f"model {meta['model_name']}"
    return lambda layout, device: SpectralTerm(spectral, train_ds, val_ds, layout, what=what, device=device)


def record_epochs(model_id: int, reports: list[dict], state, baseline: float | None = None) -> None:
    """Commit finished epochs (``EpochReport`` dicts; those already stored are skipped) and the trainer
    ``state``'s progress to a model row: training and fine-tuning record alike."""
    with session_scope() as session:
        row = session.get(Model, model_id)
        have = {e.epoch for e in row.epochs}
        for r in reports:
            if r["epoch"] in have:
                continue
            row.epochs.append(ModelEpoch(epoch=r["epoch"], train_loss=r["train_loss"], val_loss=r["val_loss"],
                                         lr=r["lr"], seconds=r["seconds"], load_seconds=r["load_seconds"],
                                         parts=r["parts"]))
        row.epochs_done = state.epoch
        row.best_epoch = state.best_epoch
        row.best_val_loss = state.best_val_head
        if baseline is not None:
            row.baseline_val_loss = baseline


def _fit(meta, settings: TrainSettings, mean, std, train, val, directory: Path, model_id: int, resume: bool,
         reporter: Reporter, fit_on=None, spectral=None) -> dict:
    """``fit_on``: what the epochs train on, when not ``train`` (a stream); ``train`` still gives the
    constant-predictor baseline. ``spectral``: ``(layout, device) -> SpectralTerm`` for a spectral config."""
    from asm.models.checkpoint import build_network

    torch.manual_seed(settings.seed)
    network = build_network(meta)
    network.set_normalisation(mean, std)
    baseline = baseline_loss(network.layout, network.weights, _canonical(train, getattr(val, "canon", None)), val)
    meta["baseline_val_loss"] = baseline
    term = spectral(network.layout, settings.device) if spectral is not None else None
    trainer = Trainer(network, fit_on if fit_on is not None else train, val, settings, directory, extra={"meta": meta},
                      spectral=term)
    resumed = trainer.resume() if resume else False
    if resume and not resumed:
        reporter.event("no completed epoch was saved: starting from the first epoch")

    def record(reports: list[dict]) -> None:
        record_epochs(model_id, reports, trainer.state, baseline)

    if resumed:
        record(trainer.state.history)  # epochs finished before a kill but not yet committed
        reporter.event(f"resumed after epoch {trainer.state.epoch}")
    stage = f"training {meta['model_name']}"
    reporter.start(stage, settings.epochs, trainer.state.epoch)

    def on_epoch(report: EpochReport) -> None:
        record([asdict(report)])
        reporter.update(report.epoch, stage=stage, train=report.train_loss, val=report.val_loss, lr=report.lr,
                        improved=report.improved, data_wait=f"{report.load_seconds / max(report.seconds, 1e-9):.0%}")

    def on_step(step: int, steps: int, loss: float) -> None:
        reporter.update(step, stage="batches", total=steps, loss=loss)

    try:
        state = trainer.run(on_epoch=on_epoch, on_step=on_step)
    finally:
        reporter.finish("batches")
        reporter.finish(stage)
    stopped_early = state.epoch < settings.epochs
    step_seconds = sum(h["seconds"] for h in state.history)
    wait = sum(h["load_seconds"] for h in state.history) / step_seconds if step_seconds > 0 else None
    return {"epochs": state.epoch, "best_epoch": state.best_epoch, "best_val_loss": state.best_val_head,
            "baseline_val_loss": baseline, "stopped_early": stopped_early, "data_wait_share": wait,
            "streamed_examples": state.epoch * settings.stream if settings.stream else None}
