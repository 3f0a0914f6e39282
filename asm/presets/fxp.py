"""VST2 preset files: ``.fxp`` (one program) and ``.fxb`` (a bank), big-endian.

Every file starts ``CcnK``, a byte size, then one of four magics:

- ``FxCk`` program of float parameters: version, plugin id, plugin version, parameter count,
  28-byte name, the floats.
- ``FPCh`` program as an opaque chunk: same header, 28-byte name, chunk size, chunk.
- ``FxBk`` bank of programs: version, plugin id, plugin version, program count, 128 reserved bytes
  (version 2: current program + 124), then that many complete ``FxCk`` program blocks.
- ``FBCh`` bank as an opaque chunk: the bank header, chunk size, chunk.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

from asm.errors import AsmError
from asm.presets.base import DecodedPreset, PresetFormatError, read_bytes, write_atomic
from asm.presets.formats import PresetFormat

MAGICS = (b"FxCk", b"FPCh", b"FxBk", b"FBCh")
NAME_BYTES = 28


@dataclass
class FxProgram:
    plugin_id: str  # four characters, e.g. "amsy"
    name: str = ""
    params: list[float] | None = None  # FxCk
    chunk: bytes | None = None  # FPCh
    plugin_version: int = 1
    format_version: int = 1

    @property
    def magic(self) -> bytes:
        return b"FxCk" if self.chunk is None else b"FPCh"


@dataclass
class FxBank:
    plugin_id: str
    programs: list[FxProgram] = field(default_factory=list)  # FxBk
    chunk: bytes | None = None  # FBCh
    num_programs: int = 0  # FBCh: what the plugin declared; FxBk: len(programs)
    current_program: int = 0
    plugin_version: int = 1
    format_version: int = 1

    @property
    def magic(self) -> bytes:
        return b"FxBk" if self.chunk is None else b"FBCh"


def plugin_id_bytes(plugin_id: str) -> bytes:
    raw = plugin_id.encode("latin-1") if isinstance(plugin_id, str) else bytes(plugin_id)
    if len(raw) != 4:
        raise ValueError(f"a VST2 plugin id has 4 characters, got {plugin_id!r}")
    return raw


def plugin_id_text(raw: bytes) -> str:
    return raw.decode("latin-1")


# --- reading ------------------------------------------------------------------------------------
class _Reader:
    def __init__(self, data: bytes, path: str):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise PresetFormatError(self.path, f"truncated: file ends inside the {what} "
                                               f"(needs {self.pos + n} bytes, has {len(self.data)})")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def i32(self, what: str) -> int:
        return struct.unpack(">i", self.take(4, what))[0]


def read(path: str | Path, data: bytes | None = None) -> FxProgram | FxBank:
    """Parse an .fxp/.fxb file (or its bytes); malformed files raise ``PresetFormatError``."""
    data = read_bytes(Path(path)) if data is None else data
    r = _Reader(data, str(path))
    result = _read_block(r, top=True)
    return result


def _read_block(r: _Reader, top: bool = False) -> FxProgram | FxBank:
    start = r.pos
    if r.take(4, "header") != b"CcnK":
        got = r.data[start : start + 4]
        raise PresetFormatError(r.path, f"wrong magic {got!r}: not a VST2 preset (expected 'CcnK')")
    size = r.i32("header")
    magic = r.take(4, "header")
    if magic not in MAGICS:
        raise PresetFormatError(r.path, f"unknown VST2 preset type {magic!r} (expected FxCk, FPCh, FxBk or FBCh)")
    if size > 0 and start + 8 + size > len(r.data):
        raise PresetFormatError(r.path, f"truncated: header declares {size + 8} bytes, file has {len(r.data) - start}")
    version = r.i32("header")
    plugin_id = plugin_id_text(r.take(4, "header"))
    plugin_version = r.i32("header")
    count = r.i32("header")
    if count < 0:
        raise PresetFormatError(r.path, f"negative parameter/program count {count}")
    if magic in (b"FxCk", b"FPCh"):
        name = r.take(NAME_BYTES, "program name").split(b"\0", 1)[0].decode("latin-1").strip()
        if magic == b"FxCk":
            raw = r.take(4 * count, "parameter values")
            params = [float(v) for v in struct.unpack(f">{count}f", raw)]
            for i, v in enumerate(params):
                if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                    raise PresetFormatError(r.path, f"parameter {i} has value {v:g}, outside [0, 1]")
            prog = FxProgram(plugin_id, name, params=params, plugin_version=plugin_version, format_version=version)
        else:
            chunk = r.take(r.i32("chunk size"), "chunk")
            prog = FxProgram(plugin_id, name, chunk=chunk, plugin_version=plugin_version, format_version=version)
        return prog
    if not top:
        raise PresetFormatError(r.path, "a bank may only contain FxCk programs")
    reserved = r.take(128, "bank header")
    current = struct.unpack(">i", reserved[:4])[0] if version >= 2 else 0
    if magic == b"FxBk":
        programs = []
        for k in range(count):
            prog = _read_block(r)
            if prog.plugin_id != plugin_id:
                raise PresetFormatError(r.path, f"program {k} has plugin id {prog.plugin_id!r}, bank has {plugin_id!r}")
            programs.append(prog)
        return FxBank(plugin_id, programs=programs, num_programs=count, current_program=current,
                      plugin_version=plugin_version, format_version=version)
    chunk = r.take(r.i32("chunk size"), "chunk")
    return FxBank(plugin_id, chunk=chunk, num_programs=count, current_program=current,
                  plugin_version=plugin_version, format_version=version)


# --- writing ------------------------------------------------------------------------------------
def _name_bytes(name: str) -> bytes:
    return name.encode("latin-1", "replace")[: NAME_BYTES - 1].ljust(NAME_BYTES, b"\0")


def _wrap(magic: bytes, body: bytes) -> bytes:
    inner = magic + body
    return b"CcnK" + struct.pack(">i", len(inner)) + inner


def encode_program(prog: FxProgram) -> bytes:
    head = struct.pack(">i", prog.format_version) + plugin_id_bytes(prog.plugin_id) + struct.pack(">i", prog.plugin_version)
    if prog.chunk is None:
        params = list(prog.params or [])
        body = head + struct.pack(">i", len(params)) + _name_bytes(prog.name) + struct.pack(f">{len(params)}f", *params)
        return _wrap(b"FxCk", body)
    n = len(prog.params or [])
    body = head + struct.pack(">i", n) + _name_bytes(prog.name) + struct.pack(">i", len(prog.chunk)) + prog.chunk
    return _wrap(b"FPCh", body)


def encode_bank(bank: FxBank) -> bytes:
    version = max(bank.format_version, 2 if bank.current_program else 1)
    reserved = (struct.pack(">i", bank.current_program) if version >= 2 else b"").ljust(128, b"\0")
    head = struct.pack(">i", version) + plugin_id_bytes(bank.plugin_id) + struct.pack(">i", bank.plugin_version)
    if bank.chunk is None:
        body = head + struct.pack(">i", len(bank.programs)) + reserved
        body += b"".join(encode_program(p) for p in bank.programs)
        return _wrap(b"FxBk", body)
    body = head + struct.pack(">i", bank.num_programs) + reserved + struct.pack(">i", len(bank.chunk)) + bank.chunk
    return _wrap(b"FBCh", body)


def write(path: str | Path, item: FxProgram | FxBank) -> Path:
    data = encode_program(item) if isinstance(item, FxProgram) else encode_bank(item)
    write_atomic(Path(path), data)
    return Path(path)


# --- to presets ---------------------------------------------------------------------------------
def decode(path: str | Path, plugin_id: str | None, n_params: int, data: bytes | None = None) -> list[DecodedPreset]:
    """The presets in an .fxp/.fxb for a plugin with ``plugin_id`` and ``n_params`` parameters.

    Float programs give values directly; chunks stay opaque (``loader="fxp"``) for the plugin to load.
    """
    data = read_bytes(Path(path)) if data is None else data
    item = read(path, data)
    fmt = Path(path).suffix.lstrip(".").lower() or "fxp"
    if plugin_id and item.plugin_id != plugin_id:
        raise PresetFormatError(path, f"plugin id {item.plugin_id!r} does not match the synth's {plugin_id!r}")
    stem = Path(path).stem
    if isinstance(item, FxProgram):
        programs = [item]
    elif item.chunk is not None:
        return [DecodedPreset(stem, chunk=data, loader="fxp", source_format=fmt)]
    else:
        programs = item.programs
    out = []
    for k, prog in enumerate(programs):
        name = prog.name or (stem if len(programs) == 1 else f"{stem} {k + 1}")
        if prog.chunk is not None:
            out.append(DecodedPreset(name, chunk=data, loader="fxp", source_format=fmt))
            continue
        assert prog.params is not None
        if len(prog.params) != n_params:
            where = "" if len(programs) == 1 else f"program {k}: "
            raise PresetFormatError(path, f"{where}parameter-count mismatch: file has {len(prog.params)} "
                                          f"parameters, the synth has {n_params}")
        out.append(DecodedPreset(name, values=list(prog.params), source_format=fmt))
    return out


# --- as registry formats (asm.presets.formats) --------------------------------------------------
def read_preset(path: Path, synth, space, data: bytes) -> list[DecodedPreset]:
    """The presets of an .fxp/.fxb for a registered VST2 synth (amsynth's chunks are read without it)."""
    from asm.presets import amsynth_bank

    if synth.kind != "vst2":
        raise PresetFormatError(path, f"FXP/FXB files are VST2 presets; {synth.name} is a {synth.kind} synth")
    presets = decode(path, synth.plugin_id, space.size, data)
    if amsynth_bank.is_amsynth(synth, space) and any(p.chunk is not None for p in presets):
        return amsynth_bank.decode_chunk(path, data, space)
    return presets


def _writer(bank: bool):
    def write_preset(path: Path, synth, space, name: str, values) -> None:
        import numpy as np

        if not synth.plugin_id:
            raise AsmError(f"{synth.name} has no VST2 plugin id; register it again (asm register-synth)")
        program = FxProgram(synth.plugin_id, name, params=[float(np.float32(v)) for v in values])
        write(path, FxBank(synth.plugin_id, programs=[program]) if bank else program)

    return write_preset


def _formats():
    return (PresetFormat("fxp", (".fxp",), native_for=("vst2",), read=read_preset, write=_writer(False), order=10),
            PresetFormat("fxb", (".fxb",), native_for=("vst2",), read=read_preset, write=_writer(True), order=20))


PRESET_FORMATS = _formats()
