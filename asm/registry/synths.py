"""Synths in the registry: lookup, automatic registration of built-ins, parameter spaces, locks."""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from asm.errors import AsmError
from asm.registry.models import Parameter, Preset, Synth
from asm.synth.builtin import BUILTINS, BuiltinSynth
from asm.synth.known_plugins import describe
from asm.synth.params import Kind, ParameterSpace, ParameterSpec, preset_hash


def get_synth(session: Session, name: str) -> Synth:
    """The synth called ``name``; built-in synths are registered on first use."""
    synth = session.scalar(select(Synth).where(Synth.name == name))
    builtin = BUILTINS.get(name)
    writable = not session.info.get("read_only")  # a read-only registry shows what it holds
    if builtin is not None and writable and (synth is None or synth.version != builtin.version):
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
    """Make the synth's parameter rows match ``specs``, keeping locks and presets meaningful.

    A parameter is followed by its name when the name is unique (a plugin update that moves it to
    another index keeps its lock, and presets move their value with it), otherwise by its index.
    Preset values are re-ordered to the new indices (added parameters take their default); presets
    that become identical are merged. Returns human-readable changes (empty: nothing changed).
    """
    changes: list[str] = []
    old_rows = sorted(synth.parameters, key=lambda p: p.index)
    old_order = [p.index for p in old_rows]
    old_locks = {p.index: (p.locked, p.locked_value) for p in old_rows}
    old_info = {p.index: (p.name, (p.kind, p.steps, tuple(p.choices or ()))) for p in old_rows}
    wanted = sorted(specs, key=lambda s: s.index)
    source = _match(old_rows, wanted)  # new index -> old index (or None: new parameter)
    by_index = {p.index: p for p in old_rows}
    wanted_indices = {s.index for s in wanted}
    matched_old = {v for v in source.values() if v is not None}
    for row in old_rows:
        if row.index not in matched_old:
            changes.append(f"removed {row.index}:{row.name}")
        if row.index not in wanted_indices:
            synth.parameters.remove(row)
    for spec in wanted:
        src = source[spec.index]
        row = by_index.get(spec.index)
        if row is None:
            row = Parameter(index=spec.index, locked=False)
            synth.parameters.append(row)
        if old_rows:
            if src is None:
                changes.append(f"added {spec.index}:{spec.name}")
            else:
                prev_name, prev_kind = old_info[src]
                if src != spec.index:
                    changes.append(f"moved {prev_name}: index {src} -> {spec.index}")
                elif prev_name != spec.name:
                    changes.append(f"renamed {spec.index}:{prev_name} -> {spec.name}")
                new_kind = (spec.kind.value, spec.steps, tuple(spec.choices or ()))
                if prev_kind != new_kind:
                    changes.append(f"{spec.name}: {_kind_text(*prev_kind)} -> {_kind_text(*new_kind)}")
        locked, locked_value = old_locks.get(src, (False, None)) if src is not None else (False, None)
        row.name = spec.name
        row.kind = spec.kind.value
        row.minimum, row.maximum = spec.minimum, spec.maximum
        row.unit, row.scale = spec.unit, spec.scale
        row.default = spec.default
        row.steps = spec.steps
        row.choices = list(spec.choices) if spec.choices else None
        row.locked = bool(locked and locked_value is not None)
        row.locked_value = spec.quantise(locked_value) if row.locked else None
    synth.parameters.sort(key=lambda p: p.index)
    reordered = old_order != [s.index for s in wanted] or any(source[s.index] != s.index for s in wanted)
    if old_rows and reordered:
        changes += _remap_presets(synth, old_order, wanted, source)
    update_free_positions(synth)
    return changes


def _kind_text(kind: str, steps: int | None, choices: tuple) -> str:
    if choices:
        return f"{kind} ({len(choices)} choices)"
    return f"{kind} ({steps} steps)" if steps else kind


def _match(old_rows: list[Parameter], wanted: list[ParameterSpec]) -> dict[int, int | None]:
    """For each new index, the old index whose lock and preset values it inherits."""
    old_names: dict[str, list[int]] = {}
    for r in old_rows:
        old_names.setdefault(r.name, []).append(r.index)
    new_names: dict[str, int] = {}
    for s in wanted:
        new_names[s.name] = new_names.get(s.name, 0) + 1
    old_indices = {r.index for r in old_rows}
    out: dict[int, int | None] = {}
    taken: set[int] = set()
    for s in wanted:  # unique names follow the name
        hits = old_names.get(s.name, [])
        if len(hits) == 1 and new_names[s.name] == 1:
            out[s.index] = hits[0]
            taken.add(hits[0])
    for s in wanted:  # the rest keep their index
        if s.index not in out:
            free = s.index in old_indices and s.index not in taken
            out[s.index] = s.index if free else None
            if free:
                taken.add(s.index)
    return out


def _remap_presets(synth: Synth, old_order: list[int], wanted: list[ParameterSpec],
                   source: dict[int, int | None]) -> list[str]:
    pos_old = {index: pos for pos, index in enumerate(old_order)}
    seen: dict[str, Preset] = {}
    merged = 0
    for preset in sorted(synth.presets, key=lambda p: p.id or 0):
        old_values = list(preset.values)
        values = []
        for spec in wanted:
            src = source[spec.index]
            ok = src is not None and src in pos_old and pos_old[src] < len(old_values)
            values.append(spec.quantise(old_values[pos_old[src]]) if ok else spec.default)
        digest = preset_hash(values)
        if digest in seen:
            synth.presets.remove(preset)
            merged += 1
            continue
        preset.values, preset.content_hash = values, digest
        seen[digest] = preset
    notes = [f"re-ordered the values of {len(seen)} preset(s) to the new parameter list"] if seen else []
    if merged:
        notes.append(f"merged {merged} preset(s) that became identical")
    return notes


def update_free_positions(synth: Synth) -> None:
    """Store each free parameter's position in the free vector (ascending plugin index)."""
    pos = 0
    for row in sorted(synth.parameters, key=lambda p: p.index):
        if row.locked:
            row.free_position = None
        else:
            row.free_position = pos
            pos += 1


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
    update_free_positions(synth)
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


def with_choices(specs: list[ParameterSpec], choices: dict[str, list[str]]) -> list[ParameterSpec]:
    """Name the values of discrete parameters (a plugin that only reports 0, 1, 2 ...)."""
    from dataclasses import replace

    by_name: dict[str, list[ParameterSpec]] = {}
    for spec in specs:
        by_name.setdefault(spec.name, []).append(spec)
    out = {s.index: s for s in specs}
    for name, names in choices.items():
        hits = by_name.get(name, [])
        if len(hits) != 1:
            raise AsmError(f"choices for {name!r}: {'no such parameter' if not hits else 'ambiguous name'}")
        spec = hits[0]
        if not spec.discrete:
            raise AsmError(f"choices for {name!r}: the plugin reports it as continuous")
        if len(names) != spec.n_values or len(set(names)) != len(names):
            raise AsmError(f"choices for {name!r}: the plugin has {spec.n_values} distinct values, "
                           f"got {len(names)} {'names' if len(set(names)) == len(names) else 'names with repeats'}")
        out[spec.index] = replace(spec, kind=Kind.categorical, choices=tuple(names), steps=None)
    return [out[i] for i in sorted(out)]


def known_choices(info) -> dict[str, list[str]]:
    """Value names asm knows for plugins that report discrete values only as numbers (amsynth)."""
    description = describe(info.plugin_id)
    return description.choices_for(info.params) if description is not None else {}


def register_plugin(session: Session, name: str, info, choices: dict[str, list[str]] | None = None,
                    replace: bool = False) -> tuple[Synth, list[str], bool]:
    """Insert or update the plugin synth ``name`` from ``info`` (a ``PluginInfo``).

    Locks and presets are kept (``sync_parameters``); value names given once (``choices``) are kept in
    ``synth.settings["choices"]`` and applied again on every later registration. An update that
    would lose stored work (``registration_losses``: another plugin, parameters that presets or
    locks use) is refused unless ``replace``. Returns (synth, changes, created).
    """
    if name in BUILTINS:
        raise AsmError(f"{name!r} is a built-in synth; register the plugin under another name")
    if not name or len(name) > 100 or name != name.strip():
        raise AsmError(f"invalid synth name {name!r}")
    synth = session.scalar(select(Synth).where(Synth.name == name))
    created = synth is None
    changes: list[str] = []
    if synth is None:
        synth = Synth(name=name, kind=info.kind, path=info.path, settings={}, version="")
        session.add(synth)
    else:
        if synth.kind == "faust":
            raise AsmError(f"{name!r} is a built-in synth")
        losses = registration_losses(session, name, info, choices)
        if losses and not replace:
            raise AsmError(f"registering {info.path} as {name!r} would {'; '.join(losses)}: refused, nothing "
                           f"changed (register it under another name, or pass --replace, which backs up the "
                           f"registry first)")
        for label, old, new in (("path", synth.path, info.path), ("kind", synth.kind, info.kind),
                                ("plugin id", synth.plugin_id, info.plugin_id)):
            if old != new:
                changes.append(f"{label}: {old} -> {new}")
    settings, specs = _plugin_specs(synth, info, choices)
    synth.settings = settings
    synth.kind, synth.path, synth.plugin_id = info.kind, info.path, info.plugin_id
    changes += sync_parameters(synth, specs)
    session.flush()
    return synth, changes, created


def _plugin_specs(synth: Synth, info, choices: dict[str, list[str]] | None) -> tuple[dict, list[ParameterSpec]]:
    """The settings (value names merged) and parameter specs a registration of ``info`` stores."""
    settings = dict(synth.settings or {})
    merged = {**settings.get("choices", {}), **(choices or {})}
    specs = with_choices(list(info.params), {**known_choices(info), **merged})
    if merged:
        settings["choices"] = merged
    return settings, specs


def registration_losses(session: Session, name: str, info, choices: dict[str, list[str]] | None = None) -> list[str]:
    """What registering ``info`` over the stored synth ``name`` would lose (empty: nothing).

    A different plugin (plugin id or kind) is a loss in itself; so are parameters that disappear
    while presets hold values for them or a lock fixes them (their values would be dropped, and
    presets that only differed there merged). A plugin update that renames or adds parameters is not.
    """
    synth = session.scalar(select(Synth).where(Synth.name == name))
    if synth is None or synth.kind == "faust":
        return []
    losses = []
    if synth.plugin_id and info.plugin_id != synth.plugin_id:
        losses.append(f"turn it into a different plugin (plugin id {synth.plugin_id} -> {info.plugin_id or 'none'})")
    elif synth.kind != info.kind:
        losses.append(f"turn it into a different plugin ({synth.kind} -> {info.kind})")
    old_rows = sorted(synth.parameters, key=lambda p: p.index)
    _, specs = _plugin_specs(synth, info, choices)
    kept = {v for v in _match(old_rows, sorted(specs, key=lambda s: s.index)).values() if v is not None}
    removed = [r for r in old_rows if r.index not in kept]
    n_presets = session.scalar(select(func.count()).select_from(Preset).where(Preset.synth_id == synth.id)) or 0
    locked = [r for r in removed if r.locked]
    if removed and (n_presets or locked):
        names = ", ".join(r.name for r in removed[:5]) + (f" and {len(removed) - 5} more" if len(removed) > 5 else "")
        used = [f"{n_presets} preset(s)"] if n_presets else []
        used += [f"{len(locked)} lock(s)"] if locked else []
        losses.append(f"drop {len(removed)} of {len(old_rows)} parameters ({names}) and their values in "
                      f"{' and '.join(used)}")
    return losses


def factory_presets(session, synth_row, space) -> np.ndarray:
    """Free vectors (quantised, locks applied, duplicates removed) of the synth's factory presets,
    in import order: the seeds of a hybrid search, the rows of the preset index."""
    rows = [v for v in session.scalars(select(Preset.values).where(
        Preset.synth_id == synth_row.id, Preset.origin == "factory").order_by(Preset.id)) if len(v) == space.size]
    if not rows:
        return np.empty((0, space.n_free))
    free = space.free_part(space.apply_locks(space.quantise(np.array(rows, dtype=np.float64))))
    _, first = np.unique(np.round(free, 6), axis=0, return_index=True)
    return free[np.sort(first)]
