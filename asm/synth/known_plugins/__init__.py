"""What asm knows about particular plugins beyond what they report: one module per plugin.

A plugin reports its parameters, but some (amsynth) give discrete values only as numbers. A module
here describes such a plugin with a module-level ``DESCRIPTION`` (a ``PluginDescription``); the
registry looks it up by the plugin's id when it registers the plugin. Adding a plugin = one module.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import cache
from typing import Iterable, Mapping

from asm.synth.params import ParameterSpec


@dataclass(frozen=True)
class PluginDescription:
    plugin_id: str  # the VST2 four-character id (``PluginInfo.plugin_id``)
    name: str
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # value names by parameter name

    def choices_for(self, params: Iterable[ParameterSpec]) -> dict[str, list[str]]:
        """The value names that fit what this build of the plugin reports (same number of values)."""
        counts = {p.name: p.n_values for p in params if p.discrete}
        return {name: list(values) for name, values in self.choices.items() if counts.get(name) == len(values)}


@cache
def _descriptions() -> dict[str, PluginDescription]:
    found: dict[str, PluginDescription] = {}
    for module in pkgutil.iter_modules(__path__):
        description = getattr(importlib.import_module(f"{__name__}.{module.name}"), "DESCRIPTION", None)
        if isinstance(description, PluginDescription):
            found[description.plugin_id] = description
    return found


def describe(plugin_id: str | None) -> PluginDescription | None:
    """The description of the plugin with this id; None for a plugin asm knows nothing special of."""
    return _descriptions().get(plugin_id) if plugin_id else None
