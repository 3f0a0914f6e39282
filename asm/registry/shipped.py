"""The fixtures shipped inside the package (``asm/fixtures``; ``fixtures/`` in a checkout links to it).

They are package data, so an installed wheel has them: the benchmark's synth set-ups and model
configs, and the model configs ``train-model`` applies on demand. A shipped model config is applied
only when a command names one the registry lacks, exactly as ``update-registry`` would (logged in
``fixture_log``): a registry holds what was asked for, and a config the user changed is never
overwritten behind their back.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from asm.registry.fixtures import apply_fixtures
from asm.registry.models import ModelConfigRow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def shipped(relative: str) -> Path:
    """A shipped fixture file, e.g. ``shipped("models/cnn.py")`` (it may not exist)."""
    return FIXTURES / relative


def model_config_fixture(name: str) -> Path | None:
    """The shipped fixture of model config ``name`` (``models/NAME.py``, a ``-`` in the name written
    ``_`` in the file's), or None."""
    if not name or "/" in name:
        return None
    path = shipped(f"models/{name.replace('-', '_')}.py")
    return path if path.is_file() else None


def shipped_model_configs() -> list[str]:
    return sorted(p.stem.replace("_", "-") for p in (FIXTURES / "models").glob("*.py"))


def ensure_model_config(session: Session, name: str):
    """The registry row of model config ``name``, applying its shipped fixture first if the registry
    lacks it; None when neither has it."""
    row = session.scalar(select(ModelConfigRow).where(ModelConfigRow.name == name))
    if row is not None:
        return row
    path = model_config_fixture(name)
    if path is None:
        return None
    apply_fixtures(session, [path])
    return session.scalar(select(ModelConfigRow).where(ModelConfigRow.name == name))
