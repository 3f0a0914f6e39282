"""Out-of-domain benchmark targets: real instrument notes from a General MIDI SoundFont.

A synth-matching method trained and tested only on its own synth's renders can look better than it
is; these targets are sounds no synth preset made (sampled piano, strings, brass, reeds, ...). They
are rendered with FluidSynth (``pyfluidsynth``, the ``ood`` extra, over Debian's ``libfluidsynth3``)
from ``FluidR3_GM.sf2`` (Debian ``fluid-soundfont-gm``), dry (reverb and chorus off), with the
notes known exactly, so a benchmark renders its candidates with the very same notes.

The set is fixed and deterministic: ``MONO`` (32 single notes, one per instrument, each in its
instrument's comfortable register, MIDI 43..72) and ``POLY`` (16 chords of 2 to 4 notes). Every
note starts at 0 s at velocity ``VELOCITY`` and is released at ``note_off``; the file lasts
``duration`` seconds, so the release is heard. Each target is rendered by a fresh FluidSynth
instance (samples loaded on demand: ~30 ms each), so its audio does not depend on what was
rendered before it; FluidSynth's float output is used (its 16-bit output is dithered). Stereo is
averaged to mono and the peak is normalised to ``PEAK`` (the gain is recorded), then written as
16-bit WAV.

Layout under the output directory (default ``<data dir>/targets/ood``)::

    manifest.json            {"format", "soundfont", "soundfont_bytes", "sample_rate", "duration",
                              "note_off", "velocity", "peak", "targets": [...]}
    mono/NN-<instrument>-<note>.wav
    poly/NN-<instrument>-<chord>.wav

and each entry of ``targets`` is ``{"name", "set" (mono|poly), "file" (relative), "program" (GM,
0-based), "instrument", "family", "notes" [[pitch, velocity, start, duration], ...], "gain"}``.
The manifest is written last (atomically): a directory without one holds no usable set.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asm.atomic import write_json
from asm.audio.io import check_writable, read_audio, resample, write_audio
from asm.audio.soundfont import SOUNDFONT, SoundFontRenderer
from asm.errors import AsmError
from asm.midi.notes import Note
from asm.paths import data_dir, ensure_dir

FORMAT = "asm-ood-targets/1"
VELOCITY = 100
PEAK = 0.5  # -6 dBFS
DEFAULT_SAMPLE_RATE = 44100
DEFAULT_DURATION = 2.0
DEFAULT_NOTE_OFF = 1.5
MANIFEST = "manifest.json"

_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def note_name(pitch: int) -> str:
    """``60`` -> ``C4``."""
    return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"


@dataclass(frozen=True)
class Instrument:
    program: int  # General MIDI program, 0-based
    name: str
    family: str


def _i(program: int, name: str, family: str) -> Instrument:
    return Instrument(program, name, family)


# (instrument, pitch): one note each, in the instrument's usual register.
MONO: tuple[tuple[Instrument, int], ...] = (
    (_i(0, "Acoustic Grand Piano", "piano"), 60),
    (_i(4, "Electric Piano 1", "piano"), 57),
    (_i(6, "Harpsichord", "piano"), 64),
    (_i(11, "Vibraphone", "chromatic percussion"), 69),
    (_i(20, "Reed Organ", "organ"), 55),
    (_i(19, "Church Organ", "organ"), 60),
    (_i(21, "Accordion", "organ"), 65),
    (_i(24, "Acoustic Guitar (nylon)", "guitar"), 52),
    (_i(25, "Acoustic Guitar (steel)", "guitar"), 59),
    (_i(27, "Electric Guitar (clean)", "guitar"), 57),
    (_i(32, "Acoustic Bass", "bass"), 43),
    (_i(33, "Electric Bass (finger)", "bass"), 45),
    (_i(38, "Synth Bass 1", "bass"), 48),
    (_i(40, "Violin", "strings"), 69),
    (_i(42, "Cello", "strings"), 50),
    (_i(45, "Pizzicato Strings", "strings"), 60),
    (_i(46, "Orchestral Harp", "strings"), 64),
    (_i(48, "String Ensemble 1", "ensemble"), 60),
    (_i(56, "Trumpet", "brass"), 65),
    (_i(57, "Trombone", "brass"), 53),
    (_i(60, "French Horn", "brass"), 58),
    (_i(61, "Brass Section", "brass"), 62),
    (_i(65, "Alto Sax", "reed"), 61),
    (_i(68, "Oboe", "reed"), 71),
    (_i(70, "Bassoon", "reed"), 50),
    (_i(71, "Clarinet", "reed"), 58),
    (_i(73, "Flute", "pipe"), 72),
    (_i(75, "Pan Flute", "pipe"), 67),
    (_i(80, "Lead 1 (square)", "synth lead"), 60),
    (_i(81, "Lead 2 (sawtooth)", "synth lead"), 57),
    (_i(88, "Pad 1 (new age)", "synth pad"), 60),
    (_i(89, "Pad 2 (warm)", "synth pad"), 55),
)

# (instrument, chord name, pitches): chords of 2 to 4 notes within MIDI 48..72.
POLY: tuple[tuple[Instrument, str, tuple[int, ...]], ...] = (
    (_i(0, "Acoustic Grand Piano", "piano"), "C", (60, 64, 67)),
    (_i(0, "Acoustic Grand Piano", "piano"), "Am7", (57, 60, 64, 67)),
    (_i(4, "Electric Piano 1", "piano"), "Dm7", (50, 57, 60, 65)),
    (_i(11, "Vibraphone", "chromatic percussion"), "G7", (55, 59, 62, 65)),
    (_i(16, "Drawbar Organ", "organ"), "F", (53, 57, 60)),
    (_i(19, "Church Organ", "organ"), "G", (55, 62, 67, 71)),
    (_i(21, "Accordion", "organ"), "C/G", (55, 60, 64)),
    (_i(24, "Acoustic Guitar (nylon)", "guitar"), "Em", (52, 55, 59, 64)),
    (_i(46, "Orchestral Harp", "strings"), "E", (52, 56, 59, 64)),
    (_i(48, "String Ensemble 1", "ensemble"), "C5add3", (48, 55, 64)),
    (_i(48, "String Ensemble 1", "ensemble"), "Dm", (50, 57, 62, 65)),
    (_i(52, "Choir Aahs", "ensemble"), "Am", (57, 60, 64)),
    (_i(61, "Brass Section", "brass"), "Bb", (58, 62, 65)),
    (_i(81, "Lead 2 (sawtooth)", "synth lead"), "C5", (48, 55)),
    (_i(88, "Pad 1 (new age)", "synth pad"), "Cadd9", (48, 55, 62, 64)),
    (_i(89, "Pad 2 (warm)", "synth pad"), "Fmaj7", (53, 57, 60, 64)),
)


@dataclass(frozen=True)
class TargetSpec:
    """One target to render: which instrument plays which notes."""

    name: str
    set: str  # mono | poly
    instrument: Instrument
    pitches: tuple[int, ...]

    @property
    def file(self) -> str:
        return f"{self.set}/{self.name}.wav"


def _slug(text: str) -> str:
    keep = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(part for part in keep.split("-") if part)


def target_specs(sets: tuple[str, ...] = ("mono", "poly")) -> list[TargetSpec]:
    """The fixed target list, mono first, in a stable order."""
    specs: list[TargetSpec] = []
    if "mono" in sets:
        for n, (inst, pitch) in enumerate(MONO):
            specs.append(TargetSpec(f"{n:02d}-{_slug(inst.name)}-{note_name(pitch).replace('#', 's')}", "mono",
                                    inst, (pitch,)))
    if "poly" in sets:
        for n, (inst, chord, pitches) in enumerate(POLY):
            specs.append(TargetSpec(f"{n:02d}-{_slug(inst.name)}-{_slug(chord.replace('/', '-over-'))}", "poly",
                                    inst, tuple(pitches)))
    return specs


@dataclass(frozen=True)
class OodTarget:
    """A stored out-of-domain target, as a benchmark reads it."""

    name: str
    set: str
    path: Path
    program: int
    instrument: str
    family: str
    notes: tuple[Note, ...]
    sample_rate: int
    duration: float

    def audio(self, sample_rate: int) -> np.ndarray:
        """Mono float32 at ``sample_rate`` (resampled), nothing trimmed: the notes start at 0 s."""
        audio, rate = read_audio(self.path)
        return resample(audio.mean(axis=1, dtype=np.float64).astype(np.float32), rate, sample_rate)


def default_dir() -> Path:
    return data_dir() / "targets" / "ood"


def _settings(soundfont: Path, sample_rate: int, duration: float, note_off: float) -> dict:
    return {"format": FORMAT, "soundfont": str(soundfont), "soundfont_bytes": soundfont.stat().st_size,
            "sample_rate": int(sample_rate), "duration": float(duration), "note_off": float(note_off),
            "velocity": VELOCITY, "peak": PEAK}


def read_manifest(directory: Path | None = None) -> dict | None:
    """The manifest of a target directory, or None when there is none (no set generated)."""
    path = Path(directory or default_dir()) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AsmError(f"cannot read {path}: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise AsmError(f"{path} is not an asm out-of-domain target manifest ({FORMAT})")
    return manifest


def make_ood_targets(out: Path | None = None, *, soundfont: str | Path = SOUNDFONT,
                     sample_rate: int = DEFAULT_SAMPLE_RATE, duration: float = DEFAULT_DURATION,
                     note_off: float = DEFAULT_NOTE_OFF, force: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> dict:
    """Render the out-of-domain target set into ``out``; returns the manifest (with ``"outcome"``).

    A directory whose manifest already has these settings and whose files are all present is left
    as it is (``outcome: "up to date"``) unless ``force``.
    """
    out = Path(out or default_dir())
    soundfont = Path(soundfont)
    if not soundfont.is_file():
        raise AsmError(f"SoundFont not found: {soundfont} (Debian: apt-get install fluid-soundfont-gm, "
                       "or make system-deps)")
    if not 8000 <= sample_rate <= 192000:
        raise AsmError(f"--sr must be within 8000..192000 Hz, got {sample_rate}")
    if not 0 < note_off <= duration <= 60:
        raise AsmError(f"need 0 < note-off <= duration <= 60 s, got note-off {note_off:g}, duration {duration:g}")
    settings = _settings(soundfont, sample_rate, duration, note_off)
    old = read_manifest(out) if (out / MANIFEST).is_file() else None
    if old is not None and not force:
        same = {k: old.get(k) for k in settings} == settings
        if same and all((out / t["file"]).is_file() for t in old["targets"]):
            return {**old, "outcome": "up to date"}
    specs = target_specs()
    for sub in sorted({s.set for s in specs}):
        ensure_dir(out / sub)
    check_writable(out / MANIFEST)
    renderer = SoundFontRenderer(soundfont, sample_rate)
    targets = []
    for n, spec in enumerate(specs):
        audio = renderer.render(spec.instrument.program, spec.pitches, VELOCITY, duration, note_off)
        peak = float(np.abs(audio).max())
        if not np.isfinite(peak) or peak < 1e-4:
            raise AsmError(f"FluidSynth rendered {spec.name} silent or non-finite; is {soundfont} a GM SoundFont?")
        gain = PEAK / peak
        _write_pcm16(out / spec.file, audio * gain, sample_rate)
        targets.append({
            "name": spec.name, "set": spec.set, "file": spec.file, "program": spec.instrument.program,
            "instrument": spec.instrument.name, "family": spec.instrument.family,
            "notes": [[p, VELOCITY, 0.0, float(note_off)] for p in spec.pitches], "gain": gain,
        })
        if progress:
            progress(n + 1, len(specs))
    manifest = {**settings, "targets": targets}
    write_json(out / MANIFEST, manifest, indent=1)
    return {**manifest, "outcome": "generated"}


def _write_pcm16(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    write_audio(path, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")


def load_ood_targets(mode: str = "mono", directory: Path | None = None) -> list[OodTarget]:
    """The stored targets of one set (``mono`` or ``poly``); empty when no set was generated.

    Missing files (a set deleted by hand) are an error, not a silently smaller benchmark.
    """
    directory = Path(directory or default_dir())
    manifest = read_manifest(directory)
    if manifest is None:
        return []
    out = []
    for t in manifest["targets"]:
        if t["set"] != mode:
            continue
        path = directory / t["file"]
        if not path.is_file():
            raise AsmError(f"out-of-domain target {path} is missing: run make ood-targets again")
        out.append(OodTarget(
            name=t["name"], set=t["set"], path=path, program=int(t["program"]), instrument=t["instrument"],
            family=t["family"], notes=tuple(Note(int(p), int(v), float(s), float(d)) for p, v, s, d in t["notes"]),
            sample_rate=int(manifest["sample_rate"]), duration=float(manifest["duration"]),
        ))
    return out
