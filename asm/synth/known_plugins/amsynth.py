"""amsynth (VST2 id ``amsy``): the names of its discrete values, which the plugin reports only as numbers.

Its preset text format and raw value table live in ``asm.presets.amsynth_bank``.
"""

from __future__ import annotations

from asm.synth.known_plugins import PluginDescription

PLUGIN_ID = "amsy"

# amsynth's own labels, in value order.
CHOICES: dict[str, tuple[str, ...]] = {
    "osc1_waveform": ("sine", "square/pulse", "triangle/saw", "white noise", "noise+sample&hold"),
    "osc2_waveform": ("sine", "square/pulse", "triangle/saw", "white noise", "noise+sample&hold"),
    "lfo_waveform": ("sine", "square", "triangle", "noise", "noise+sample&hold", "saw up", "saw down"),
    "keyboard_mode": ("poly", "mono", "legato"),
    "filter_type": ("low pass", "high pass", "band pass", "notch", "bypass"),
    "filter_slope": ("12 dB/oct", "24 dB/oct"),
    "freq_mod_osc": ("osc 1+2", "osc 1", "osc 2"),
}

DESCRIPTION = PluginDescription(PLUGIN_ID, "amsynth", CHOICES)
