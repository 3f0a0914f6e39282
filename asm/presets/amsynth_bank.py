"""amsynth's text banks (``*.bank``) and its plugin state, with the exact raw <-> normalised map.

A bank is ``amSynth`` on the first line, then per preset ``<preset> <name> NAME`` and one
``<parameter> NAME VALUE`` line per parameter. Values are amsynth's *raw* values (seconds, octaves,
-1..1 mixes), not 0..1. Banks written by older amsynth versions lack the newest parameters; amsynth
starts every preset from its defaults, so those take the default. The plugin's state (its VST2
chunk) is the same text for one preset under the header ``amSynth1.0preset``.

The plugin reports a parameter as ``(value - min) / (max - min)`` in single precision after
clamping the raw value to [min, max] and snapping stepped ones to their step (amsynth's
``Parameter::setValue``). ``normalise`` repeats that computation in float32 with amsynth 1.13's
parameter table, so the registry holds exactly the numbers the plugin reports after loading a preset
as a program chunk (an FXP ``FPCh``). Measured on all 3,482 factory presets: identical in every
value. (Loading them as a bank chunk, ``FBCh``, goes through the host's bank/program handling, costs
~60 ms instead of ~0.04 ms per preset and differs in 151 of 142,762 values by one float32 step.)
tests/test_amsynth_presets.py checks the map against the plugin on a sample of the factory presets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asm.presets import fxp
from asm.presets.base import DecodedPreset, PresetFormatError, read_bytes, write_atomic
from asm.presets.formats import PresetFormat
from asm.synth.known_plugins.amsynth import PLUGIN_ID  # noqa: F401  (the bank and the plugin share it)

BANK_HEADER = "amSynth"
STATE_HEADER = "amSynth1.0preset"
FACTORY_BANKS = Path("/usr/share/amsynth/banks")


@dataclass(frozen=True)
class AmsynthParam:
    name: str
    default: float  # raw
    minimum: float
    maximum: float
    step: float = 0.0  # > 0: the raw value snaps to minimum + k * step


# amsynth 1.13 (src/Parameter.cpp), in plugin-index order.
PARAMS: tuple[AmsynthParam, ...] = (
    AmsynthParam("amp_attack", 0.0, 0.0, 2.5),
    AmsynthParam("amp_decay", 0.0, 0.0, 2.5),
    AmsynthParam("amp_sustain", 1.0, 0.0, 1.0),
    AmsynthParam("amp_release", 0.0, 0.0, 2.5),
    AmsynthParam("osc1_waveform", 2.0, 0.0, 4.0, 1.0),
    AmsynthParam("filter_attack", 0.0, 0.0, 2.5),
    AmsynthParam("filter_decay", 0.0, 0.0, 2.5),
    AmsynthParam("filter_sustain", 1.0, 0.0, 1.0),
    AmsynthParam("filter_release", 0.0, 0.0, 2.5),
    AmsynthParam("filter_resonance", 0.0, 0.0, 0.97),
    AmsynthParam("filter_env_amount", 0.0, -16.0, 16.0),
    AmsynthParam("filter_cutoff", 1.5, -0.5, 1.5),
    AmsynthParam("osc2_detune", 0.0, -1.0, 1.0),
    AmsynthParam("osc2_waveform", 2.0, 0.0, 4.0, 1.0),
    AmsynthParam("master_vol", 0.67, 0.0, 1.0),
    AmsynthParam("lfo_freq", 0.0, 0.0, 7.5),
    AmsynthParam("lfo_waveform", 0.0, 0.0, 6.0, 1.0),
    AmsynthParam("osc2_range", 0.0, -3.0, 4.0, 1.0),
    AmsynthParam("osc_mix", 0.0, -1.0, 1.0),
    AmsynthParam("freq_mod_amount", 0.0, 0.0, 1.25992105),
    AmsynthParam("filter_mod_amount", -1.0, -1.0, 1.0),
    AmsynthParam("amp_mod_amount", -1.0, -1.0, 1.0),
    AmsynthParam("osc_mix_mode", 0.0, 0.0, 1.0),
    AmsynthParam("osc1_pulsewidth", 1.0, 0.0, 1.0),
    AmsynthParam("osc2_pulsewidth", 1.0, 0.0, 1.0),
    AmsynthParam("reverb_roomsize", 0.0, 0.0, 1.0),
    AmsynthParam("reverb_damp", 0.0, 0.0, 1.0),
    AmsynthParam("reverb_wet", 0.0, 0.0, 1.0),
    AmsynthParam("reverb_width", 1.0, 0.0, 1.0),
    AmsynthParam("distortion_crunch", 0.0, 0.0, 0.9),
    AmsynthParam("osc2_sync", 0.0, 0.0, 1.0, 1.0),
    AmsynthParam("portamento_time", 0.0, 0.0, 1.0),
    AmsynthParam("keyboard_mode", 0.0, 0.0, 2.0, 1.0),
    AmsynthParam("osc2_pitch", 0.0, -12.0, 12.0, 1.0),
    AmsynthParam("filter_type", 0.0, 0.0, 4.0, 1.0),
    AmsynthParam("filter_slope", 1.0, 0.0, 1.0, 1.0),
    AmsynthParam("freq_mod_osc", 0.0, 0.0, 2.0, 1.0),
    AmsynthParam("filter_kbd_track", 1.0, 0.0, 1.0),
    AmsynthParam("filter_vel_sens", 1.0, 0.0, 1.0),
    AmsynthParam("amp_vel_sens", 1.0, 0.0, 1.0),
    AmsynthParam("portamento_mode", 0.0, 0.0, 1.0),
)
BY_NAME = {p.name: p for p in PARAMS}
NAMES = tuple(p.name for p in PARAMS)

F32 = np.float32


@dataclass
class BankPreset:
    name: str
    raw: dict[str, float]  # float32 raw values by parameter name; missing ones take defaults


# --- the exact map ------------------------------------------------------------------------------
def _roundf(x: np.float32) -> float:
    """C's roundf: halves away from zero (numpy rounds halves to even)."""
    x = float(x)
    return float(np.copysign(np.floor(abs(x) + 0.5), x))


def snap(p: AmsynthParam, raw: float) -> np.float32:
    """What amsynth stores for ``raw``: clamped to its range, snapped to its step (float32)."""
    lo, hi = F32(p.minimum), F32(p.maximum)
    v = F32(raw)
    if np.isnan(v):
        return v
    v = min(max(v, lo), hi)
    if p.step > 0:
        step = F32(p.step)
        v = F32(lo + F32(_roundf(F32(F32(v - lo) / step))) * step)
    return F32(v)


def normalise_one(p: AmsynthParam, raw: float) -> float:
    lo, hi = F32(p.minimum), F32(p.maximum)
    return float(F32(F32(snap(p, raw) - lo) / F32(hi - lo)))


def normalise(raw: Mapping[str, float]) -> dict[str, float]:
    """Normalised values (as the plugin reports them) of every parameter; missing ones take defaults."""
    return {p.name: normalise_one(p, raw.get(p.name, p.default)) for p in PARAMS}


def raw_value(p: AmsynthParam, normalised: float) -> np.float32:
    """The raw value amsynth maps closest to ``normalised``: exactly back to it (at float32) for every
    value amsynth itself reports; a few normalised floats have no raw value and get the nearest."""
    lo, hi = F32(p.minimum), F32(p.maximum)
    target = F32(min(1.0, max(0.0, float(normalised))))
    guess = F32(target * F32(hi - lo) + lo)
    if p.step > 0:
        return snap(p, guess)
    candidates = [guess]
    up = down = guess
    for _ in range(8):
        up, down = np.nextafter(up, F32(np.inf)), np.nextafter(down, F32(-np.inf))
        candidates += [up, down]
    candidates = [c for c in candidates if lo <= c <= hi] or [snap(p, guess)]
    return F32(min(candidates, key=lambda c: abs(normalise_one(p, c) - float(target))))


def denormalise(values: Mapping[str, float]) -> dict[str, float]:
    return {p.name: float(raw_value(p, values[p.name])) for p in PARAMS if p.name in values}


# --- text ---------------------------------------------------------------------------------------
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# Every amsynth version since the oldest factory banks writes at least these (older banks lack
# only the newest parameters at the end of the list).
OLDEST_COUNT = 36


def _number(text: str) -> float | None:
    """A decimal number as amsynth writes it (no ``inf``, ``nan``, ``1_0``, hex) in float32."""
    if not NUMBER.fullmatch(text):
        return None
    return float(F32(float(text)))


def _check_complete(text: str, presets: list[BankPreset], path: str | Path) -> None:
    """Reject a cut bank or state: amsynth ends every line with a newline (a file that stops
    mid-line may stop mid-number, ``-0.279528`` -> ``-0``), writes the first ``OLDEST_COUNT``
    parameters of every preset, and as many in the last preset of a bank as in the others."""
    body = text.rstrip("\0")
    last = body.rstrip().rsplit("\n", 1)[-1].strip()
    if body.strip() and not body.endswith("\n") and not last.startswith("EOF"):
        raise PresetFormatError(path, f"truncated: the file ends mid-line ({last[-40:]!r})")
    most = max(len(p.raw) for p in presets)
    for preset in presets:
        missing = [n for n in NAMES[:OLDEST_COUNT] if n not in preset.raw]
        if missing:
            raise PresetFormatError(path, f"truncated: preset {preset.name!r} lacks {len(missing)} parameter(s) "
                                          f"({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})")
        if preset is presets[-1] and len(preset.raw) < most:  # a cut file loses its last preset's end
            lacking = [n for n in NAMES if n not in preset.raw and any(n in q.raw for q in presets)]
            raise PresetFormatError(path, f"truncated: preset {preset.name!r} lacks {', '.join(lacking[:3])}, "
                                          "which the other presets of the bank have")


def parse_text(text: str, path: str | Path = "<text>") -> list[BankPreset]:
    """Presets of a bank (``amSynth`` header) or of one plugin state (``amSynth1.0preset``)."""
    lines = text.replace("\0", "").splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    if first not in (BANK_HEADER, STATE_HEADER):
        raise PresetFormatError(path, f"wrong magic {first[:20]!r}: not an amsynth bank (expected '{BANK_HEADER}')")
    presets: list[BankPreset] = []
    seen_header = False
    for number, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        if not seen_header:
            seen_header = True
            continue
        if tokens[0].startswith("EOF"):  # amsynth ends its bank files with an EOF line
            break
        if tokens[0] == "<preset>":
            if len(tokens) < 2 or tokens[1] != "<name>":
                raise PresetFormatError(path, f"line {number}: malformed preset line {line.strip()!r}")
            presets.append(BankPreset(" ".join(tokens[2:]), {}))
        elif tokens[0] == "<parameter>":
            if not presets:
                raise PresetFormatError(path, f"line {number}: parameter before the first <preset>")
            if len(tokens) != 3:
                raise PresetFormatError(path, f"line {number}: truncated parameter line {line.strip()!r}")
            name, value = tokens[1], _number(tokens[2])
            if name == "unused":  # amsynth skips these
                continue
            if name not in BY_NAME:
                raise PresetFormatError(path, f"line {number}: unknown amsynth parameter {name!r} "
                                              f"in preset {presets[-1].name!r}")
            if value is None or not np.isfinite(value):
                raise PresetFormatError(path, f"line {number}: value {tokens[2]!r} of {name} is not a number")
            presets[-1].raw[name] = value
        elif tokens[0] == "<property>":  # plugin state: voices, tuning; not part of a sound
            continue
        else:
            raise PresetFormatError(path, f"line {number}: unexpected {tokens[0]!r}")
    if not presets:
        raise PresetFormatError(path, "no presets in the bank")
    for preset in presets:
        if not preset.raw:
            raise PresetFormatError(path, f"truncated: preset {preset.name!r} has no parameters")
    _check_complete(text, presets, path)
    return presets


def read(path: str | Path, data: bytes | None = None) -> list[BankPreset]:
    data = read_bytes(Path(path)) if data is None else data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return parse_text(text, path)


def _fmt(value: float) -> str:
    return str(F32(value))  # shortest text that reads back as the same float32


def _preset_lines(preset: BankPreset) -> list[str]:
    lines = [f"<preset> <name> {preset.name}"]
    for p in PARAMS:
        lines.append(f"<parameter> {p.name} {_fmt(preset.raw.get(p.name, p.default))}")
    return lines


def encode_bank(presets: Iterable[BankPreset]) -> bytes:
    lines = [BANK_HEADER]
    for preset in presets:
        lines += _preset_lines(preset)
    return ("\n".join(lines) + "\n").encode("utf-8")


def encode_state(preset: BankPreset) -> bytes:
    """The plugin state (VST2 chunk) for one preset. The NUL ends it: amsynth reads a C string."""
    return ("\n".join([STATE_HEADER, *_preset_lines(preset)]) + "\n").encode("utf-8") + b"\0"


def write(path: str | Path, presets: Iterable[BankPreset]) -> Path:
    write_atomic(Path(path), encode_bank(presets))
    return Path(path)


def from_values(name: str, values: Mapping[str, float]) -> BankPreset:
    """A bank preset from normalised values by name."""
    return BankPreset(name, denormalise(values))


# --- to presets ---------------------------------------------------------------------------------
def decode(path: str | Path, names: list[str], data: bytes | None = None, fmt: str = "bank") -> list[DecodedPreset]:
    """Normalised vectors in the order of ``names`` (the registered synth's parameters)."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise PresetFormatError(path, f"the synth's parameters {', '.join(unknown[:5])} are not amsynth's: "
                                      "is this synth amsynth?")
    out = []
    for preset in read(path, data):
        values = normalise(preset.raw)
        out.append(DecodedPreset(preset.name or Path(path).stem, values=[values[n] for n in names], source_format=fmt))
    return out


# --- as a registry format (asm.presets.formats) -------------------------------------------------
def is_amsynth(synth, space=None) -> bool:
    """Whether a registered synth is amsynth (its plugin id, and its parameters when ``space`` is given)."""
    return synth.kind == "vst2" and synth.plugin_id == PLUGIN_ID and (
        space is None or all(n in BY_NAME for n in space.names))


def decode_chunk(path: Path, data: bytes, space) -> list[DecodedPreset]:
    """An .fxp/.fxb holding amsynth's chunk: the chunk is its preset text, read exactly, without the plugin."""
    item = fxp.read(path, data)
    presets = decode(path, space.names, item.chunk or b"", fmt=path.suffix.lstrip(".").lower())
    if isinstance(item, fxp.FxProgram) and item.name and len(presets) == 1:
        presets[0].name = item.name
    return presets


def _read_preset(path: Path, synth, space, data: bytes) -> list[DecodedPreset]:
    if not is_amsynth(synth, space):
        raise PresetFormatError(path, f"amsynth banks can only be imported into amsynth, not {synth.name}")
    return decode(path, space.names, data)


def _write_preset(path: Path, synth, space, name: str, values) -> None:
    write(path, [from_values(name, dict(zip(space.names, values)))])


def _formats():
    return (PresetFormat("bank", (".bank",), native_for=("vst2",), read=_read_preset, write=_write_preset,
                         available=is_amsynth, order=30),)


PRESET_FORMATS = _formats()
