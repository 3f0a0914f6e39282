"""Fixtures: Python files that declare registry configuration with asm's typed config objects.

A fixture file builds config objects (pydantic models) and lists them in a module-level ``FIXTURE``::

    from asm.registry.synth_config import LockConfig, SynthConfig
    FIXTURE = [SynthConfig(name="amsynth", path="/usr/lib/vst/amsynth_vst.so"),
               LockConfig(synth="amsynth", values={"master_vol": "default"})]

Each config class is a ``FixtureItem`` with two methods: ``check(ctx)`` validates it against the
registry as it will be after the items before it (no writes), ``apply(session, ctx)`` writes it and
returns a one-line summary. The item types are pluggable: a new kind of configuration (datasets,
models, searches, benchmarks) is a new ``FixtureItem`` subclass in its own module; this module
never needs to know about it.

``apply_fixtures`` runs every file, builds every object (pydantic reports a wrong field by name),
checks every item, and only then applies them all in one transaction, logging each file in
``fixture_log`` (name, path, content hash, time, summaries). Any error changes nothing.
"""

from __future__ import annotations

import hashlib
import runpy
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.orm import Session

from asm.errors import AsmError
from asm.registry.models import FixtureLog


class FieldError(AsmError):
    """A semantic problem with one field of a fixture item (raised by ``FixtureItem.check``)."""

    def __init__(self, field_name: str, message: str):
        self.field_name, self.message = field_name, message
        super().__init__(f"field {field_name!r}: {message}")


class FixtureItem(BaseModel):
    """One piece of configuration in a fixture. Subclasses implement ``check`` and ``apply``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str] = "item"

    def label(self) -> str:
        """Short description for messages and the log, e.g. ``synth amsynth``."""
        return self.kind

    def check(self, ctx: FixtureContext) -> None:
        """Validate against the registry (as the items before this one leave it); raise FieldError."""

    def apply(self, session: Session, ctx: FixtureContext) -> str:
        raise NotImplementedError


def upsert_named(session: Session, row_class, name: str, **fields: Any) -> str:
    """Set ``fields`` on the ``row_class`` row called ``name``, made if missing: "added" or "updated"."""
    from sqlalchemy import select

    row = session.scalar(select(row_class).where(row_class.name == name))
    verb = "updated" if row is not None else "added"
    if row is None:
        row = row_class(name=name)
        session.add(row)
    for key, value in fields.items():
        setattr(row, key, value)
    session.flush()
    return verb


@dataclass
class FixtureContext:
    """What items share while a fixture is checked and applied (a session and per-kind state)."""

    session: Session
    state: dict[str, Any] = field(default_factory=dict)  # item kinds keep their own entries here

    def slot(self, key: str, factory=dict) -> Any:
        if key not in self.state:
            self.state[key] = factory()
        return self.state[key]


@dataclass
class LoadedFixture:
    path: Path
    name: str
    content_hash: str
    items: list[FixtureItem]


def _line_in(path: Path, tb) -> str:
    for frame in reversed(traceback.extract_tb(tb)):
        if Path(frame.filename).resolve() == path.resolve():
            return f" line {frame.lineno}"
    return ""


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(object)"
        got = err.get("input")
        shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
        parts.append(f"{exc.title} field {loc!r}: {err.get('msg', 'invalid')}{shown}")
    more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "; ".join(parts) + more


def load_fixture(path: str | Path) -> LoadedFixture:
    """Run a fixture file and collect its items; every error names the file (and line, field)."""
    path = Path(path)
    if not path.is_file():
        raise AsmError(f"fixture not found: {path}")
    if path.suffix != ".py":
        raise AsmError(f"{path}: a fixture is a Python file (.py)")
    data = path.read_bytes()
    try:
        namespace = runpy.run_path(str(path), run_name=f"asm_fixture_{path.stem}")
    except ValidationError as exc:
        raise AsmError(f"{path}{_line_in(path, exc.__traceback__)}: {_validation_message(exc)}") from None
    except AsmError as exc:
        raise AsmError(f"{path}{_line_in(path, exc.__traceback__)}: {exc}") from None
    except SyntaxError as exc:
        raise AsmError(f"{path} line {exc.lineno}: syntax error: {exc.msg}") from None
    except SystemExit as exc:  # a fixture must not end the command (it would exit with its code)
        raise AsmError(f"{path}{_line_in(path, sys.exc_info()[2])}: invalid fixture: it calls sys.exit"
                       f"({'' if exc.code is None else repr(exc.code)}) while it is loaded") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a fixture is user code: report it in one line
        raise AsmError(f"{path}{_line_in(path, sys.exc_info()[2])}: {type(exc).__name__}: {exc}") from None
    if "FIXTURE" not in namespace:
        raise AsmError(f"{path}: defines no FIXTURE (a list of config objects such as SynthConfig, LockConfig)")
    items = namespace["FIXTURE"]
    if isinstance(items, FixtureItem):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise AsmError(f"{path}: FIXTURE must be a list of config objects, not {type(items).__name__}")
    for i, item in enumerate(items):
        if not isinstance(item, FixtureItem):
            raise AsmError(f"{path}: FIXTURE[{i}] is a {type(item).__name__}, not an asm config object")
    return LoadedFixture(path, path.stem, hashlib.sha256(data).hexdigest(), list(items))


def check_fixtures(fixtures: list[LoadedFixture], ctx: FixtureContext) -> None:
    for fx in fixtures:
        for i, item in enumerate(fx.items):
            try:
                item.check(ctx)
            except AsmError as exc:
                raise AsmError(f"{fx.path}: FIXTURE[{i}] ({item.label()}): {exc}") from None


def apply_fixtures(session: Session, paths: list[str | Path], dry_run: bool = False) -> list[dict]:
    """Load, check and apply fixture files in one transaction; returns per-file summaries.

    The caller's session is committed by the caller; on any error nothing is written.
    """
    fixtures = [load_fixture(p) for p in paths]
    ctx = FixtureContext(session)
    with session.no_autoflush:
        check_fixtures(fixtures, ctx)
    if dry_run:
        return [{"name": fx.name, "path": str(fx.path), "items": [it.label() for it in fx.items],
                 "applied": False} for fx in fixtures]
    apply_ctx = ctx  # items may reuse what they learned while checking (a probed plugin)
    results = []
    for fx in fixtures:
        lines = []
        for i, item in enumerate(fx.items):
            try:
                lines.append(item.apply(session, apply_ctx))
            except AsmError as exc:
                raise AsmError(f"{fx.path}: FIXTURE[{i}] ({item.label()}): {exc}") from None
        log = FixtureLog(name=fx.name, path=str(fx.path.resolve()), content_hash=fx.content_hash,
                         summary={"items": lines})
        session.add(log)
        session.flush()
        results.append({"name": fx.name, "path": str(fx.path), "content_hash": fx.content_hash,
                        "log_id": log.id, "items": lines, "applied": True})
    return results
