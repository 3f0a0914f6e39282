"""SQLAlchemy 2.x models of the registry. Schema changes go through a migration in ``migrations/``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Synth(Base):
    __tablename__ = "synth"
    __table_args__ = (CheckConstraint("kind IN ('faust', 'vst2', 'vst3')", name="synth_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(Text)  # plugin path, or "builtin:<name>" for built-in Faust synths
    version: Mapped[str] = mapped_column(String(50), default="")
    plugin_id: Mapped[str | None] = mapped_column(String(64))  # VST2 4-char id or VST3 class id
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # render/feature defaults
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    parameters: Mapped[list[Parameter]] = relationship(
        back_populates="synth", order_by="Parameter.index", cascade="all, delete-orphan"
    )
    presets: Mapped[list[Preset]] = relationship(back_populates="synth", cascade="all, delete-orphan")


class Parameter(Base):
    __tablename__ = "parameter"
    __table_args__ = (
        UniqueConstraint("synth_id", "index", name="parameter_synth_index"),
        CheckConstraint(
            "kind IN ('continuous', 'stepped', 'categorical', 'boolean')", name="parameter_kind"
        ),
        CheckConstraint("\"default\" >= 0 AND \"default\" <= 1", name="parameter_default_range"),
        CheckConstraint(
            "NOT locked OR (locked_value IS NOT NULL AND locked_value >= 0 AND locked_value <= 1)",
            name="parameter_lock_value",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    synth_id: Mapped[int] = mapped_column(ForeignKey("synth.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)  # the plugin's own parameter index
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="continuous")
    minimum: Mapped[float] = mapped_column(Float, default=0.0)  # natural range, for display
    maximum: Mapped[float] = mapped_column(Float, default=1.0)
    unit: Mapped[str] = mapped_column(String(20), default="")
    scale: Mapped[str] = mapped_column(String(10), default="linear")
    default: Mapped[float] = mapped_column(Float, default=0.0)  # normalised
    steps: Mapped[int | None] = mapped_column(Integer)
    choices: Mapped[list[Any] | None] = mapped_column(JSON)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    locked_value: Mapped[float | None] = mapped_column(Float)
    # Position in the vector of free (unlocked) parameters that datasets and models use: ascending
    # plugin index, NULL when locked. Stored so the order is explicit and checkable, not implied.
    free_position: Mapped[int | None] = mapped_column(Integer)

    synth: Mapped[Synth] = relationship(back_populates="parameters")


class Preset(Base):
    __tablename__ = "preset"
    __table_args__ = (
        UniqueConstraint("synth_id", "content_hash", name="preset_synth_hash"),
        CheckConstraint("origin IN ('factory', 'user', 'random', 'matched')", name="preset_origin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    synth_id: Mapped[int] = mapped_column(ForeignKey("synth.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    origin: Mapped[str] = mapped_column(String(20), default="user")
    source_file: Mapped[str | None] = mapped_column(Text)
    source_format: Mapped[str | None] = mapped_column(String(20))  # fxp, fxb, vstpreset, json, bank
    values: Mapped[list[Any]] = mapped_column(JSON)  # normalised, one per parameter in plugin-index order
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    synth: Mapped[Synth] = relationship(back_populates="presets")


class FixtureLog(Base):
    """One row per applied fixture file: what was applied, when, and its content hash."""

    __tablename__ = "fixture_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Dataset(Base):
    """A generated dataset: every setting that made it, its parameter order and its state.

    Its examples live in fixed-size shard files under ``data/datasets/<name>/``; one ``DatasetShard``
    row per shard is committed only after the shard file is complete on disk.
    """

    __tablename__ = "dataset"
    __table_args__ = (
        CheckConstraint("mode IN ('mono', 'poly')", name="dataset_mode"),
        CheckConstraint("status IN ('generating', 'complete')", name="dataset_status"),
        CheckConstraint("size > 0", name="dataset_size"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    synth_id: Mapped[int] = mapped_column(ForeignKey("synth.id"), index=True)
    mode: Mapped[str] = mapped_column(String(10))
    size: Mapped[int] = mapped_column(Integer)
    shard_size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="generating")
    seed: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)  # every generation setting, features included
    code_version: Mapped[str] = mapped_column(String(80))
    free_signature: Mapped[str] = mapped_column(String(16))
    lock_signature: Mapped[str] = mapped_column(String(16))
    free_parameters: Mapped[list[Any]] = mapped_column(JSON)  # [{index, name, kind, n_values}] in free order
    split_counts: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"train": n, "val": n, "test": n}
    rejections: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # totals once complete
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)

    synth: Mapped[Synth] = relationship()
    shards: Mapped[list[DatasetShard]] = relationship(
        back_populates="dataset", order_by="DatasetShard.index", cascade="all, delete-orphan"
    )


class DatasetShard(Base):
    """One complete shard file of a dataset, with the checksum its contents must match."""

    __tablename__ = "dataset_shard"
    __table_args__ = (
        UniqueConstraint("dataset_id", "index", name="dataset_shard_index"),
        CheckConstraint("count > 0", name="dataset_shard_count"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)  # global index of its first example
    count: Mapped[int] = mapped_column(Integer)
    file: Mapped[str] = mapped_column(String(200))  # name inside the dataset directory
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(Integer)
    n_notes: Mapped[int] = mapped_column(Integer)
    rejections: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # silent, nonfinite, crashed, duplicate
    seconds: Mapped[float] = mapped_column(Float, default=0.0)  # worker time spent on it
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="shards")


class _Recipe:
    """The columns of a named recipe row (model, search and proxy configs): applied from fixtures,
    updated in place when the fixture changes."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class ModelConfigRow(_Recipe, Base):
    """A named estimator recipe (architecture + hyperparameters), applied from fixtures/models/*.py.

    ``arch`` is checked against ``asm.models.architectures`` when the config is validated, not by a
    CHECK constraint, so adding an architecture needs no migration."""

    __tablename__ = "model_config"

    arch: Mapped[str] = mapped_column(String(20))


class Model(Base):
    """A trained (or, for ``nn``, indexed) estimator: what it was built from and where its checkpoint is."""

    __tablename__ = "model"
    __table_args__ = (
        CheckConstraint("status IN ('training', 'complete', 'failed')", name="model_status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("model_config.id"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id"), index=True)
    synth_id: Mapped[int] = mapped_column(ForeignKey("synth.id"), index=True)
    arch: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default="training")
    seed: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(20), default="cpu")
    train_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    config_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the config as trained
    feature_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sample_rate: Mapped[int] = mapped_column(Integer)
    free_signature: Mapped[str] = mapped_column(String(16))
    lock_signature: Mapped[str] = mapped_column(String(16))
    free_parameters: Mapped[list[Any]] = mapped_column(JSON)  # [{index, name, kind, n_values}] in free order
    checkpoint: Mapped[str] = mapped_column(Text)  # directory under the data dir
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    best_val_loss: Mapped[float | None] = mapped_column(Float)
    baseline_val_loss: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    code_version: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)

    config: Mapped[ModelConfigRow] = relationship()
    dataset: Mapped[Dataset] = relationship()
    synth: Mapped[Synth] = relationship()
    epochs: Mapped[list[ModelEpoch]] = relationship(
        back_populates="model", order_by="ModelEpoch.epoch", cascade="all, delete-orphan"
    )


class ModelEpoch(Base):
    """Per-epoch training metrics, committed as each epoch completes."""

    __tablename__ = "model_epoch"
    __table_args__ = (UniqueConstraint("model_id", "epoch", name="model_epoch_unique"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float] = mapped_column(Float)
    val_loss: Mapped[float] = mapped_column(Float)
    lr: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    load_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    parts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    model: Mapped[Model] = relationship(back_populates="epochs")


class SearchConfigRow(_Recipe, Base):
    """A named search recipe (algorithm, objectives, termination, seeding), from fixtures/search/*.py."""

    __tablename__ = "search_config"


class Run(Base):
    """One execution that produces results: a ``test-model`` evaluation, an ``asm match``, a benchmark, a DDSP training."""

    __tablename__ = "run"
    __table_args__ = (
        CheckConstraint("kind IN ('test-model', 'match', 'benchmark', 'ddsp-train', 'test-proxy')", name="run_kind"),
        CheckConstraint("status IN ('running', 'complete', 'failed', 'interrupted')", name="run_status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(12), default="running")
    synth_id: Mapped[int | None] = mapped_column(ForeignKey("synth.id"), index=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("model.id"), index=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("dataset.id"), index=True)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report_path: Mapped[str | None] = mapped_column(Text)
    code_version: Mapped[str] = mapped_column(String(80), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)

    results: Mapped[list[Result]] = relationship(back_populates="run", cascade="all, delete-orphan")


class Result(Base):
    """One method's answer for one target within a run, with its scores (see asm.audio.metrics)."""

    __tablename__ = "result"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(100))  # e.g. "model:cnn", "nn", "nsga2", "hybrid", "random"
    target_set: Mapped[str] = mapped_column(String(40), default="")  # test | factory | ood | file
    target: Mapped[str] = mapped_column(Text, default="")  # dataset example ref or file path
    example_index: Mapped[int | None] = mapped_column(Integer)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("model.id"), index=True)
    preset_id: Mapped[int | None] = mapped_column(ForeignKey("preset.id", ondelete="SET NULL"))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # metric name -> value
    param_mae: Mapped[float | None] = mapped_column(Float)  # continuous free parameters, truth known
    param_accuracy: Mapped[float | None] = mapped_column(Float)  # discrete free parameters, truth known
    renders: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    values: Mapped[list[Any] | None] = mapped_column(JSON)  # the answer: free values in free order
    notes: Mapped[list[Any] | None] = mapped_column(JSON)  # [[pitch, velocity, start, duration], ...]
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # curves, paths, per-method details
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    run: Mapped[Run] = relationship(back_populates="results")


class DdspModel(Base):
    """A DDSP timbre model of one instrument (``asm ddsp train``): its config as trained, its audio, its state.

    The model config is the ``config`` column (synth and decoder sizes, sample rate); the weights are the
    newest ``DdspCheckpoint`` file under ``checkpoint`` (a directory under the data dir).
    """

    __tablename__ = "ddsp_model"
    __table_args__ = (CheckConstraint("status IN ('training', 'complete', 'failed')", name="ddsp_model_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(12), default="training")
    sample_rate: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(20), default="cpu")
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # asm.ddsp.config.DdspConfig as a dict
    train_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sources: Mapped[list[Any]] = mapped_column(JSON, default=list)  # the audio files it learned from
    feature_cache: Mapped[str] = mapped_column(Text, default="")  # file under the data dir
    checkpoint: Mapped[str] = mapped_column(Text)  # directory under the data dir
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    first_loss: Mapped[float | None] = mapped_column(Float)
    last_loss: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    code_version: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)

    checkpoints: Mapped[list[DdspCheckpoint]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="DdspCheckpoint.step"
    )


class DdspCheckpoint(Base):
    """One saved state of a DDSP model's training (weights, optimiser, generator), written atomically."""

    __tablename__ = "ddsp_checkpoint"
    __table_args__ = (UniqueConstraint("model_id", "step", name="ddsp_checkpoint_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("ddsp_model.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float] = mapped_column(Float)
    file: Mapped[str] = mapped_column(String(200))  # name inside the model's checkpoint directory
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    model: Mapped[DdspModel] = relationship(back_populates="checkpoints")


class ProxyConfigRow(_Recipe, Base):
    """A named neural-proxy recipe (``fixtures/proxies/*.py``): network kind and hyperparameters."""

    __tablename__ = "proxy_config"

    net: Mapped[str] = mapped_column(String(20))


class Proxy(Base):
    """A trained neural proxy (free parameters -> audio embedding), checkpoints under ``checkpoint``."""

    __tablename__ = "proxy"
    __table_args__ = (CheckConstraint("status IN ('training', 'complete', 'failed')", name="proxy_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("proxy_config.id"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id"), index=True)
    synth_id: Mapped[int] = mapped_column(ForeignKey("synth.id"), index=True)
    net: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default="training")
    seed: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(20), default="cpu")
    train_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    config_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    free_signature: Mapped[str] = mapped_column(String(16))
    lock_signature: Mapped[str] = mapped_column(String(16))
    free_parameters: Mapped[list[Any]] = mapped_column(JSON)
    checkpoint: Mapped[str] = mapped_column(Text)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    best_val_loss: Mapped[float | None] = mapped_column(Float)
    baseline_val_loss: Mapped[float | None] = mapped_column(Float)
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)  # one dict per completed epoch
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    code_version: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)

    config: Mapped[ProxyConfigRow] = relationship()
    dataset: Mapped[Dataset] = relationship()
    synth: Mapped[Synth] = relationship()
