"""asm's own preset format: JSON that people can read and edit.

    {"format": "asm-preset", "version": 1, "synth": "amsynth", "name": "Derren 1",
     "parameters": {"amp_attack": 0.0, "amp_decay": 0.61, ...},
     "locked": ["master_vol"]}

Values are normalised to [0, 1] (a categorical parameter also takes its choice name), keyed by
parameter name in plugin-index order; a name the synth uses twice is written ``name#index``.
``locked`` lists the parameters that were locked when the file was written (information only:
importing never changes locks). Every parameter of the synth must be present, no other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from asm.errors import AsmError
from asm.presets.base import DecodedPreset, PresetFormatError, read_bytes, write_atomic
from asm.presets.formats import PresetFormat
from asm.synth.params import ParameterSpace

FORMAT = "asm-preset"
VERSION = 1


def keys(space: ParameterSpace) -> list[str]:
    """The JSON key of every parameter, in plugin-index order."""
    counts: dict[str, int] = {}
    for p in space.params:
        counts[p.name] = counts.get(p.name, 0) + 1
    return [p.name if counts[p.name] == 1 else f"{p.name}#{p.index}" for p in space.params]


def encode(synth: str, name: str, space: ParameterSpace, values: Sequence[float]) -> bytes:
    if len(values) != space.size:
        raise ValueError(f"expected {space.size} values, got {len(values)}")
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "synth": synth,
        "name": name,
        "parameters": {k: float(v) for k, v in zip(keys(space), values)},
        "locked": [k for k, p in zip(keys(space), space.params) if p.locked],
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write(path: str | Path, synth: str, name: str, space: ParameterSpace, values: Sequence[float]) -> Path:
    write_atomic(Path(path), encode(synth, name, space, values))
    return Path(path)


def read(path: str | Path, data: bytes | None = None) -> dict:
    """The parsed document, with its structure checked (not yet against a synth)."""
    data = read_bytes(Path(path)) if data is None else data
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PresetFormatError(path, f"bad JSON: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise PresetFormatError(path, f"bad JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PresetFormatError(path, f"not an asm preset (expected \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION:
        raise PresetFormatError(path, f"unsupported asm preset version {doc.get('version')!r} (this asm reads {VERSION})")
    for key, kind in (("synth", str), ("parameters", dict)):
        if not isinstance(doc.get(key), kind):
            raise PresetFormatError(path, f"field {key!r} is missing or not a {kind.__name__}")
    if not isinstance(doc.get("name", ""), str) or not isinstance(doc.get("locked", []), list):
        raise PresetFormatError(path, "field 'name' must be a string and 'locked' a list")
    return doc


def decode(path: str | Path, synth: str, space: ParameterSpace, data: bytes | None = None) -> list[DecodedPreset]:
    doc = read(path, data)
    if doc["synth"] != synth:
        raise PresetFormatError(path, f"preset is for synth {doc['synth']!r}, not {synth!r}")
    params: dict = doc["parameters"]
    wanted = keys(space)
    unknown = [k for k in params if k not in wanted]
    missing = [k for k in wanted if k not in params]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
        if unknown:
            parts.append(f"unknown {', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}")
        raise PresetFormatError(path, f"parameter-count mismatch: file has {len(params)} parameters, "
                                      f"the synth has {space.size} ({'; '.join(parts)})")
    values = []
    for key, spec in zip(wanted, space.params):
        raw = params[key]
        try:
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                raise AsmError(f"value for {spec.name} must be a number in [0, 1], not {raw!r}")
            value = spec.parse(raw) if isinstance(raw, str) else float(raw)
        except AsmError as exc:
            raise PresetFormatError(path, str(exc)) from None
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise PresetFormatError(path, f"value for {key} must be in [0, 1] (normalised), got {raw!r}")
        values.append(value)
    name = doc.get("name") or Path(path).stem
    return [DecodedPreset(name, values=values, locked=[str(x) for x in doc.get("locked", [])], source_format="json")]


# --- as a registry format (asm.presets.formats) -------------------------------------------------
def _read_preset(path: Path, synth, space: ParameterSpace, data: bytes) -> list[DecodedPreset]:
    return decode(path, synth.name, space, data)


def _write_preset(path: Path, synth, space: ParameterSpace, name: str, values: Sequence[float]) -> None:
    write(path, synth.name, name, space, values)


def _formats():
    return (PresetFormat("json", (".json",), native_for=("faust",), universal=True, read=_read_preset,
                         write=_write_preset, order=40),)


PRESET_FORMATS = _formats()
