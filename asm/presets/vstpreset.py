"""VST3 preset files (``.vstpreset``), little-endian.

Layout: a 48-byte header (``VST3``, format version, the plugin's 32-character class id, offset of the
chunk list), the chunk data, then the chunk list: ``List``, entry count, and per entry a 4-byte id,
offset and size (64-bit each). ``Comp`` holds the component (processor) state, ``Cont`` the
controller state, ``Info`` an XML ``MetaInfo`` document of string attributes. Component state is
plugin-private, so only the plugin itself can turn it into parameter values.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

from asm.errors import AsmError
from asm.presets.base import DecodedPreset, PresetFormatError, read_bytes, write_atomic
from asm.presets.formats import PresetFormat
from asm.synth.host import SynthSpec
from asm.synth.plugin import IsolatedPlugin

HEADER = struct.Struct("<4si32sq")  # magic, version, class id, chunk-list offset
ENTRY = struct.Struct("<4sqq")  # id, offset, size
CLASS_ID = re.compile(r"[0-9A-Fa-f]{32}")


@dataclass
class VstPreset:
    class_id: str  # 32 hex characters
    comp: bytes = b""
    cont: bytes | None = None
    info: dict[str, str] = field(default_factory=dict)
    version: int = 1
    extra: list[tuple[str, bytes]] = field(default_factory=list)  # other chunks, kept in order


def read(path: str | Path, data: bytes | None = None) -> VstPreset:
    data = read_bytes(Path(path)) if data is None else data
    path = str(path)
    if len(data) < 4 or data[:4] != b"VST3":
        raise PresetFormatError(path, f"wrong magic {data[:4]!r}: not a VST3 preset (expected 'VST3')")
    if len(data) < HEADER.size:
        raise PresetFormatError(path, f"truncated: {len(data)} bytes, the header alone has {HEADER.size}")
    _, version, class_id, list_offset = HEADER.unpack_from(data)
    try:
        cid = class_id.decode("ascii")
    except UnicodeDecodeError:
        cid = ""
    if not CLASS_ID.fullmatch(cid):
        raise PresetFormatError(path, f"malformed class id {class_id!r} (expected 32 hex characters)")
    if not HEADER.size <= list_offset <= len(data) - 8:
        raise PresetFormatError(path, f"truncated: chunk list at offset {list_offset}, file has {len(data)} bytes")
    if data[list_offset : list_offset + 4] != b"List":
        raise PresetFormatError(path, f"no chunk list at offset {list_offset} (found {data[list_offset:list_offset + 4]!r})")
    (count,) = struct.unpack_from("<i", data, list_offset + 4)
    entries_end = list_offset + 8 + count * ENTRY.size
    if count < 0 or entries_end > len(data):
        raise PresetFormatError(path, f"truncated: the chunk list declares {count} entries")
    preset = VstPreset(cid.upper(), version=version)
    seen = set()
    for k in range(count):
        raw_id, offset, size = ENTRY.unpack_from(data, list_offset + 8 + k * ENTRY.size)
        cid_ = raw_id.decode("latin-1")
        if offset < HEADER.size or size < 0 or offset + size > len(data):
            raise PresetFormatError(path, f"truncated: chunk {cid_!r} at {offset}+{size} lies outside the file")
        body = data[offset : offset + size]
        seen.add(cid_)
        if cid_ == "Comp":
            preset.comp = body
        elif cid_ == "Cont":
            preset.cont = body
        elif cid_ == "Info":
            preset.info = _parse_info(path, body)
        else:
            preset.extra.append((cid_, body))
    if "Comp" not in seen:
        raise PresetFormatError(path, "no component state ('Comp' chunk)")
    return preset


def _parse_info(path: str, body: bytes) -> dict[str, str]:
    try:
        root = ET.fromstring(body.decode("utf-8"))
    except (ET.ParseError, UnicodeDecodeError) as exc:
        raise PresetFormatError(path, f"malformed Info chunk (XML): {exc}") from None
    return {a.get("id", ""): a.get("value", "") for a in root.iter("Attr")}


def _info_xml(info: dict[str, str]) -> bytes:
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<MetaInfo>"]
    for key, value in info.items():
        lines.append(f"\t<Attr id={quoteattr(key)} value={quoteattr(str(value))} type=\"string\" flags=\"writeProtected\"/>")
    lines.append("</MetaInfo>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def encode(preset: VstPreset) -> bytes:
    if not CLASS_ID.fullmatch(preset.class_id):
        raise ValueError(f"a VST3 class id has 32 hex characters, got {preset.class_id!r}")
    chunks: list[tuple[str, bytes]] = [("Comp", preset.comp)]
    if preset.cont is not None:
        chunks.append(("Cont", preset.cont))
    chunks.extend(preset.extra)
    if preset.info:
        chunks.append(("Info", _info_xml(preset.info)))
    body, entries, offset = b"", [], HEADER.size
    for cid, data in chunks:
        entries.append(ENTRY.pack(cid.encode("latin-1"), offset, len(data)))
        body += data
        offset += len(data)
    header = HEADER.pack(b"VST3", preset.version, preset.class_id.upper().encode("ascii"), offset)
    return header + body + b"List" + struct.pack("<i", len(entries)) + b"".join(entries)


def write(path: str | Path, preset: VstPreset) -> Path:
    write_atomic(Path(path), encode(preset))
    return Path(path)


def decode(path: str | Path, class_id: str | None, data: bytes | None = None) -> list[DecodedPreset]:
    """A .vstpreset for the plugin with ``class_id``: its state stays opaque for the plugin to load."""
    data = read_bytes(Path(path)) if data is None else data
    preset = read(path, data)
    if class_id and preset.class_id.upper() != class_id.upper():
        raise PresetFormatError(path, f"plugin class id {preset.class_id} does not match the synth's {class_id.upper()}")
    name = preset.info.get("Name") or preset.info.get("asm:preset") or Path(path).stem
    return [DecodedPreset(name, chunk=data, loader="vstpreset", source_format="vstpreset")]


# --- as a registry format (asm.presets.formats) -------------------------------------------------
def _read_preset(path: Path, synth, space, data: bytes) -> list[DecodedPreset]:
    if synth.kind != "vst3":
        raise PresetFormatError(path, f".vstpreset files are VST3 presets; {synth.name} is a {synth.kind} synth")
    return decode(path, synth.plugin_id, data)


def _write_preset(out: Path, synth, space, name: str, values) -> None:
    if not synth.plugin_id or not CLASS_ID.fullmatch(synth.plugin_id):
        raise AsmError(f"{synth.name} has no VST3 class id (the bundle has no moduleinfo.json); cannot write .vstpreset")
    plugin = IsolatedPlugin(SynthSpec(synth.name, synth.kind, synth.path, space))
    try:
        state = plugin.state(values)
    finally:
        plugin.close()
    comp, cont = juce_vst3_state(state)
    info = {"MediaType": "VstPreset", "PlugInName": synth.name, "Name": name, "asm:preset": name}
    write(out, VstPreset(synth.plugin_id, comp=comp, cont=cont, info=info))


JUCE_B64 = ".ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"


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




def _formats():
    return (PresetFormat("vstpreset", (".vstpreset",), native_for=("vst3",), read=_read_preset, write=_write_preset,
                         order=25),)


PRESET_FORMATS = _formats()
