"""Synths in the registry: lookup, automatic registration of built-ins, parameter spaces, locks."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from asm.errors import AsmError
from asm.registry.models import Parameter, Preset, Synth
from asm.synth.builtin import BUILTINS, BuiltinSynth
from asm.synth.params import Kind, ParameterSpace, ParameterSpec


def get_synth(session: Session, name: str) -> Synth:
    """The synth called ``name``; built-in synths are registered on first use."""
    synth = session.scalar(select(Synth).where(Synth.name == name))
    builtin = BUILTINS.get(name)
    if builtin is not None and (synth is None or synth.version != builtin.version):
        synth = register_builtin(session, builtin)
    if synth is None:
        known = sorted(set(session.scalars(select(Synth.name))) | set(BUILTINS))
        raise AsmError(f"unknown synth {name!r}; known synths: {', '.join(known)}")
    return synth


def register_builtin(session: Session, builtin: BuiltinSynth) -> Synth:
    """Insert a built-in synth, or bring its parameters up to date while keeping locks and presets."""
    synth = session.scalar(select(Synth).where(Synth.name == builtin.name))
    if synth is None:
        synth = Synth(name=builtin.name, kind="faust", path=f"builtin:{builtin.name}", settings={})
        session.add(synth)
    synth.version = builtin.version
    sync_parameters(synth, builtin.params)
    session.flush()
    return synth


def sync_parameters(synth: Synth, specs: tuple[ParameterSpec, ...] | list[ParameterSpec]) -> list[str]:
    """Make the synth's parameter rows match ``specs`` (by plugin index), keeping existing locks.

    Returns a list of human-readable changes (added, removed, renamed, kind changed).
    """
    changes: list[str] = []
    existing = {p.index: p for p in synth.parameters}
    wanted = {s.index: s for s in specs}
    for index, row in list(existing.items()):
        if index not in wanted:
            changes.append(f"removed {index}:{row.name}")
            synth.parameters.remove(row)
    for index, spec in sorted(wanted.items()):
        row = existing.get(index)
        if row is None:
            row = Parameter(index=index, locked=False)
            synth.parameters.append(row)
            if existing:
                changes.append(f"added {index}:{spec.name}")
        else:
            if row.name != spec.name:
                changes.append(f"renamed {index}:{row.name} -> {spec.name}")
            if row.kind != spec.kind.value:
                changes.append(f"{spec.name}: kind {row.kind} -> {spec.kind.value}")
        row.name = spec.name
        row.kind = spec.kind.value
        row.minimum, row.maximum = spec.minimum, spec.maximum
        row.unit, row.scale = spec.unit, spec.scale
        row.default = spec.default
        row.steps = spec.steps
        row.choices = list(spec.choices) if spec.choices else None
        if row.locked and row.locked_value is not None:
            row.locked_value = spec.quantise(row.locked_value)
    synth.parameters.sort(key=lambda p: p.index)
    return changes


def parameter_spec(row: Parameter) -> ParameterSpec:
    return ParameterSpec(
        index=row.index,
        name=row.name,
        kind=Kind(row.kind),
        default=row.default,
        steps=row.steps,
        choices=tuple(row.choices) if row.choices else None,
        minimum=row.minimum,
        maximum=row.maximum,
        unit=row.unit,
        scale=row.scale,
        locked=row.locked,
        locked_value=row.locked_value,
    )


def space_of(synth: Synth) -> ParameterSpace:
    return ParameterSpace(parameter_spec(p) for p in synth.parameters)


def set_locks(session: Session, synth: Synth, locks: dict[int, float | None]) -> None:
    """Lock (value) or unlock (None) parameters given by plugin index; values are quantised."""
    rows = {p.index: p for p in synth.parameters}
    for index, value in locks.items():
        row = rows[index]
        if value is None:
            row.locked, row.locked_value = False, None
        else:
            row.locked, row.locked_value = True, parameter_spec(row).quantise(value)
    session.flush()


def find_preset(session: Session, synth: Synth, name: str) -> Preset:
    """A preset by name (or ``#id``); ambiguous names list the candidates."""
    if name.startswith("#") and name[1:].isdigit():
        preset = session.get(Preset, int(name[1:]))
        if preset is None or preset.synth_id != synth.id:
            raise AsmError(f"no preset {name} for synth {synth.name}")
        return preset
    hits = list(session.scalars(select(Preset).where(Preset.synth_id == synth.id, Preset.name == name)))
    if not hits:
        raise AsmError(f"no preset named {name!r} for synth {synth.name}")
    if len(hits) > 1:
        ids = ", ".join(f"#{p.id}" for p in hits[:10])
        raise AsmError(f"preset name {name!r} is ambiguous for {synth.name}; use an id: {ids}")
    return hits[0]
