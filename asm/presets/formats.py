"""The one list of preset file formats: each format module declares its formats, this finds them.

A format module (``fxp``, ``vstpreset``, ``jsonpreset``, ``amsynth_bank``, or a new one in this
package) lists ``PresetFormat`` entries in a module-level ``PRESET_FORMATS``: the suffixes, the synth
kinds it is native for, whether it reads and writes (a ``read``/``write`` function or None), and for
plugin-specific formats which synths have it. The importer, the exporter and ``asm match``'s output
ask this module, so adding a format is one new module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import asm.presets as package

if TYPE_CHECKING:
    from asm.presets.base import DecodedPreset
    from asm.registry.models import Synth
    from asm.synth.params import ParameterSpace

    Reader = Callable[[Path, Synth, ParameterSpace, bytes], list[DecodedPreset]]
    Writer = Callable[[Path, Synth, ParameterSpace, str, Sequence[float]], None]


def _any_synth(synth, space) -> bool:
    return True


@dataclass(frozen=True)
class PresetFormat:
    name: str  # recorded as a preset's source_format
    suffixes: tuple[str, ...]  # lower case, with the dot
    native_for: tuple[str, ...] = ()  # synth kinds (faust, vst2, vst3) whose own format it is
    universal: bool = False  # every synth reads and writes it (asm's JSON)
    read: Reader | None = None  # (path, synth, space, file bytes) -> presets; raises PresetFormatError
    write: Writer | None = None  # (path, synth, space, preset name, full values); raises AsmError
    available: Callable[[Synth, ParameterSpace], bool] = _any_synth  # plugin-specific formats say for whom
    order: int = 50  # place in lists: the first native writer of a kind is what asm match writes

    @property
    def suffix(self) -> str:
        return self.suffixes[0]

    def serves(self, synth: Synth, space: ParameterSpace | None = None) -> bool:
        return (self.universal or synth.kind in self.native_for) and self.available(synth, space)


@lru_cache(maxsize=1)
def all_formats() -> tuple[PresetFormat, ...]:
    """Every declared format, in list order (modules of this package that define PRESET_FORMATS)."""
    found: list[PresetFormat] = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found += list(getattr(module, "PRESET_FORMATS", ()))
    return tuple(sorted(found, key=lambda f: (f.order, f.name)))


def by_suffix(suffix: str) -> PresetFormat | None:
    suffix = suffix.lower()
    return next((f for f in all_formats() if suffix in f.suffixes), None)


def readable_suffixes() -> list[str]:
    return [s for f in all_formats() if f.read for s in f.suffixes]


def writable_for(synth: Synth, space: ParameterSpace | None = None) -> list[PresetFormat]:
    """The formats ``export-preset`` can write for ``synth``: its native ones first, then universal ones."""
    fmts = [f for f in all_formats() if f.write and f.serves(synth, space)]
    return sorted(fmts, key=lambda f: (f.universal, f.order, f.name))


def native_for(synth: Synth, space: ParameterSpace | None = None) -> PresetFormat:
    """The format a match is saved in: the synth's own (first native writer), else a universal one."""
    return writable_for(synth, space)[0]


def spoken(items: Sequence[str]) -> str:
    """``.a, .b or .c``"""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
