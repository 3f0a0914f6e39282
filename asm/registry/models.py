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
