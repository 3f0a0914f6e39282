"""Fixture items for synths: registration (with render and feature defaults) and locks.

    SynthConfig(name="amsynth", path="/usr/lib/vst/amsynth_vst.so",
                choices={"filter_type": ["low pass", "high pass", "band pass", "notch", "bypass"]},
                render=RenderDefaults(sample_rate=16000, note=60, duration=2.0))
    LockConfig(synth="amsynth", values={"master_vol": "default", "reverb_wet": 0.0}, expect_free=32)

A ``LockConfig`` states the synth's locks: by default every parameter it does not name is unlocked,
so applying a fixture gives the same set-up whatever was locked before.

These live above the registry (they read and write synth rows); the synth layer they configure
(``asm.synth``) knows nothing of the database.
"""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from asm.audio.features import FeatureSettings
from asm.errors import AsmError
from asm.registry.fixtures import FieldError, FixtureContext, FixtureItem
from asm.registry.models import Preset, Synth
from asm.registry.synths import get_synth, register_plugin, set_locks, space_of, with_choices
from asm.synth.builtin import BUILTINS
from asm.synth.defaults import RenderDefaults
from asm.synth.params import ParameterSpace
from asm.synth.plugin import describe_plugin

SPACES = "check:synth-spaces"  # ctx slot: name -> ParameterSpace as the items so far leave it
PROBES = "plugin-probes"  # ctx slot: plugin path -> PluginInfo


def _space_for(ctx: FixtureContext, name: str, field_name: str = "synth") -> ParameterSpace:
    known = ctx.slot(SPACES)
    if name in known:
        return known[name]
    row = ctx.session.scalar(select(Synth).where(Synth.name == name))
    if row is not None and (name not in BUILTINS or row.version == BUILTINS[name].version):
        space = space_of(row)
    elif name in BUILTINS:
        space = ParameterSpace(BUILTINS[name].params)
    else:
        raise FieldError(field_name, f"unknown synth {name!r}: register it first (a SynthConfig before this item)")
    known[name] = space
    return space


def _probe(ctx: FixtureContext, path: str):
    probes = ctx.slot(PROBES)
    if path not in probes:
        probes[path] = describe_plugin(path)
    return probes[path]


class SynthConfig(FixtureItem):
    """Register a plugin synth (or make sure a built-in one exists) and set its defaults."""

    kind = "synth"
    name: str = Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")
    path: str | None = Field(None, description="VST2 .so or VST3 bundle; None for a built-in synth")
    choices: dict[str, list[str]] = Field(default_factory=dict, description="names for discrete values")
    render: RenderDefaults | None = None
    features: FeatureSettings | None = None

    def label(self) -> str:
        return f"synth {self.name}"

    def check(self, ctx: FixtureContext) -> None:
        if self.name in BUILTINS:
            if self.path is not None:
                raise FieldError("path", f"{self.name} is built in; leave path out")
            if self.choices:
                raise FieldError("choices", f"{self.name} is built in; its choices are fixed")
            _space_for(ctx, self.name, "name")
            return
        if self.path is None:
            raise FieldError("path", "a plugin synth needs the path of its VST2 .so or VST3 bundle")
        try:
            info = _probe(ctx, self.path)
        except AsmError as exc:
            raise FieldError("path", str(exc)) from None
        try:
            specs = with_choices(list(info.params), self._merged_choices(ctx))
        except AsmError as exc:
            raise FieldError("choices", str(exc)) from None
        space = ParameterSpace(specs)
        try:  # locks survive re-registration (by name)
            old = _space_for(ctx, self.name, "name")
            locks = {}
            for p in old.params:
                if p.locked and p.name in space.names:
                    try:
                        locks[space.spec(p.name).index] = p.locked_value
                    except AsmError:
                        pass
            space = space.with_locks(locks)
        except FieldError:
            pass
        ctx.slot(SPACES)[self.name] = space

    def _merged_choices(self, ctx: FixtureContext) -> dict[str, list[str]]:
        row = ctx.session.scalar(select(Synth).where(Synth.name == self.name))
        stored = (row.settings or {}).get("choices", {}) if row is not None else {}
        return {**stored, **self.choices}

    def apply(self, session: Session, ctx: FixtureContext) -> str:
        if self.name in BUILTINS:
            row, text = get_synth(session, self.name), f"built-in, {len(BUILTINS[self.name].params)} parameters"
        else:
            row, changes, created = register_plugin(session, self.name, _probe(ctx, self.path), self.choices)
            what = "registered" if created else ("updated: " + "; ".join(changes) if changes else "unchanged")
            text = f"{row.kind} plugin {row.path}, {len(row.parameters)} parameters, {what}"
        settings = dict(row.settings or {})
        if self.render is not None:
            settings["render"] = self.render.model_dump(mode="json")
        if self.features is not None:
            settings["features"] = self.features.model_dump(mode="json")
        row.settings = settings
        session.flush()
        return f"synth {self.name}: {text}"


LockValue = float | str


class LockConfig(FixtureItem):
    """The locks of a synth: fixed values sent to the synth before every render.

    ``values`` maps a parameter name (or plugin index) to a normalised value, a choice name or
    ``"default"``; ``from_preset`` with ``names`` locks those parameters to a stored preset's values.
    ``unlock_others`` (default) unlocks every parameter not named here. ``expect_free`` guards the
    number of free parameters a set-up promises (e.g. 32).
    """

    kind = "locks"
    synth: str = Field(min_length=1)
    values: dict[str | int, LockValue] = Field(default_factory=dict)
    from_preset: str | None = None
    names: list[str | int] = Field(default_factory=list)
    unlock_others: bool = True
    expect_free: int | None = Field(None, ge=0)

    def label(self) -> str:
        return f"locks {self.synth}"

    def _locks(self, space: ParameterSpace, preset_values: list[float] | None) -> dict[int, float | None]:
        try:
            locks: dict[int, float | None] = dict(space.parse_assignments(self.values))
        except AsmError as exc:
            raise FieldError("values", str(exc)) from None
        if self.names and self.from_preset is None:
            raise FieldError("names", "names lock to a preset's values: give from_preset too")
        for key in self.names:
            try:
                spec = space.spec(key)
            except AsmError as exc:
                raise FieldError("names", str(exc)) from None
            if spec.index in locks:
                raise FieldError("names", f"{spec.name} is also in values")
            assert preset_values is not None
            locks[spec.index] = spec.quantise(preset_values[space.position(spec.index)])
        if self.unlock_others:
            for p in space.params:
                locks.setdefault(p.index, None)
        return locks

    def _preset_values(self, ctx: FixtureContext, space: ParameterSpace) -> list[float] | None:
        if self.from_preset is None:
            return None
        row = ctx.session.scalar(select(Synth).where(Synth.name == self.synth))
        hits = [] if row is None else list(ctx.session.scalars(
            select(Preset).where(Preset.synth_id == row.id, Preset.name == self.from_preset)))
        if not hits:
            raise FieldError("from_preset", f"no preset named {self.from_preset!r} for synth {self.synth}")
        if len(hits) > 1:
            raise FieldError("from_preset", f"preset name {self.from_preset!r} is ambiguous "
                                            f"({', '.join(f'#{p.id}' for p in hits[:5])})")
        if len(hits[0].values) != space.size:
            raise FieldError("from_preset", f"preset {self.from_preset!r} does not match the synth's parameters")
        return list(hits[0].values)

    def check(self, ctx: FixtureContext) -> None:
        space = _space_for(ctx, self.synth)
        new = space.with_locks(self._locks(space, self._preset_values(ctx, space)))
        if self.expect_free is not None and new.n_free != self.expect_free:
            raise FieldError("expect_free", f"these locks leave {new.n_free} of {new.size} parameters free, "
                                            f"not {self.expect_free}")
        ctx.slot(SPACES)[self.synth] = new

    def apply(self, session: Session, ctx: FixtureContext) -> str:
        row = get_synth(session, self.synth)
        space = space_of(row)
        set_locks(session, row, self._locks(space, self._preset_values(ctx, space)))
        after = space_of(row)
        return f"locks {self.synth}: {after.size - after.n_free} locked, {after.n_free} free"
