"""Write a registry preset to a file in the synth's native format, or asm's JSON for any synth.

VST2 synths: ``.fxp`` (an ``FxCk`` program of float parameters, which every VST2 host loads) or
``.fxb`` (a bank holding that program); amsynth also ``.bank``. VST3 synths: ``.vstpreset`` built
from the state the plugin saves with the values set. Every synth: ``.json``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from asm.errors import AsmError
from asm.presets import amsynth_bank, fxp, jsonpreset, vstpreset
from asm.registry.models import Preset, Synth
from asm.synth.params import ParameterSpace

JUCE_B64 = ".ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"


def formats_for(synth: Synth) -> list[str]:
    native = {"vst2": [".fxp", ".fxb"], "vst3": [".vstpreset"], "faust": []}.get(synth.kind, [])
    if synth.kind == "vst2" and synth.plugin_id == amsynth_bank.PLUGIN_ID:
        native = native + [".bank"]
    return native + [".json"]


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
    if ext == ".json":
        jsonpreset.write(out, synth.name, preset.name, space, values)
        return "json"
    if ext in (".fxp", ".fxb"):
        if not synth.plugin_id:
            raise AsmError(f"{synth.name} has no VST2 plugin id; register it again (asm register-synth)")
        program = fxp.FxProgram(synth.plugin_id, preset.name, params=[float(np.float32(v)) for v in values])
        fxp.write(out, program if ext == ".fxp" else fxp.FxBank(synth.plugin_id, programs=[program]))
        return ext.lstrip(".")
    if ext == ".bank":
        named = dict(zip(space.names, values))
        amsynth_bank.write(out, [amsynth_bank.from_values(preset.name, named)])
        return "bank"
    return _write_vstpreset(synth, space, preset, values, out)


def _write_vstpreset(synth: Synth, space: ParameterSpace, preset: Preset, values: list[float], out: Path) -> str:
    from asm.synth.host import SynthSpec
    from asm.synth.plugin import IsolatedPlugin

    if not synth.plugin_id or not vstpreset.CLASS_ID.fullmatch(synth.plugin_id):
        raise AsmError(f"{synth.name} has no VST3 class id (the bundle has no moduleinfo.json); cannot write .vstpreset")
    plugin = IsolatedPlugin(SynthSpec(synth.name, synth.kind, synth.path, space))
    try:
        state = plugin.state(values)
    finally:
        plugin.close()
    comp, cont = juce_vst3_state(state)
    info = {"MediaType": "VstPreset", "PlugInName": synth.name, "Name": preset.name, "asm:preset": preset.name}
    vstpreset.write(out, vstpreset.VstPreset(synth.plugin_id, comp=comp, cont=cont, info=info))
    return "vstpreset"


def juce_base64_decode(text: str) -> bytes:
    """JUCE's ``MemoryBlock::fromBase64Encoding``: ``<size>.`` then 6 bits per character, LSB first."""
    size_text, _, body = text.strip().partition(".")
    if not size_text.isdigit():
        raise AsmError("unrecognised JUCE base64 block")
    size = int(size_text)
    bits = 0
    for i, ch in enumerate(body):
        k = JUCE_B64.find(ch)
        if k < 0:
            raise AsmError("unrecognised JUCE base64 block")
        bits |= k << (6 * i)
    return bits.to_bytes(max(size, (6 * len(body) + 7) // 8), "little")[:size]


def juce_base64_encode(data: bytes) -> str:
    bits = int.from_bytes(data, "little")
    n = (len(data) * 8 + 5) // 6
    return f"{len(data)}." + "".join(JUCE_B64[(bits >> (6 * i)) & 63] for i in range(n))


def juce_vst3_state(state: bytes) -> tuple[bytes, bytes | None]:
    """Component and controller state from what JUCE saves for a hosted VST3 plugin.

    JUCE writes ``copyXmlToBinary`` of ``<VST3PluginState><IComponent>…</IComponent>
    <IEditController>…</IEditController></VST3PluginState>`` (magic ``VC2!``, size, UTF-8 XML).
    """
    if state[:4] == b"VC2!" and len(state) >= 8:
        size = int.from_bytes(state[4:8], "little")
        xml = state[8 : 8 + size].rstrip(b"\0")
    elif state.lstrip().startswith(b"<"):
        xml = state
    else:
        raise AsmError("the plugin saved its state in a form asm does not know; cannot write .vstpreset")
    try:
        root = ET.fromstring(xml.decode("utf-8"))
    except (ET.ParseError, UnicodeDecodeError) as exc:
        raise AsmError(f"the plugin's saved state is not readable XML ({exc})") from None
    comp = root.findtext("IComponent")
    if comp is None:
        raise AsmError("the plugin's saved state has no component state")
    cont = root.findtext("IEditController")
    return juce_base64_decode(comp), (juce_base64_decode(cont) if cont else None)


