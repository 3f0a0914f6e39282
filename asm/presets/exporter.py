"""Write a registry preset to a file in one of the formats of ``asm.presets.formats``.

VST2 synths: ``.fxp`` (an ``FxCk`` program of float parameters, which every VST2 host loads) or
``.fxb`` (a bank holding that program); amsynth also ``.bank``. VST3 synths: ``.vstpreset`` built
from the state the plugin saves with the values set. Every synth: ``.json``.
"""

from __future__ import annotations

from pathlib import Path

from asm.errors import AsmError
from asm.presets import formats
from asm.registry.models import Preset, Synth
from asm.synth.params import ParameterSpace


def formats_for(synth: Synth) -> list[str]:
    """The suffixes ``export-preset`` writes for ``synth``: its native formats first, then asm's JSON."""
    return [s for f in formats.writable_for(synth) for s in f.suffixes]


def export_preset(synth: Synth, space: ParameterSpace, preset: Preset, out: Path) -> str:
    """Write ``preset`` to ``out`` (format from the extension); returns the format written."""
    ext = out.suffix.lower()
    allowed = formats_for(synth)
    if ext not in allowed:
        raise AsmError(f"cannot write {ext or 'a file without extension'} for {synth.name} ({synth.kind}); "
                       f"use {', '.join(allowed)}")
    values = [float(v) for v in preset.values]
    if len(values) != space.size:
        raise AsmError(f"preset {preset.name!r} has {len(values)} values but {synth.name} has {space.size} parameters")
    fmt = formats.by_suffix(ext)
    fmt.write(out, synth, space, preset.name, values)
    return fmt.name
