"""A match target: the audio to match and the notes candidates play.

The audio comes from ``asm.audio.io.load_target`` (any libsndfile format and rate, mixed to mono,
resampled, leading silence trimmed; missing, empty, corrupt, silent, too-short and too-long files
refused; ``--crop START:END`` picks a part of a long file).
The notes: ``--midi FILE`` (shifted so the first note starts at 0, since the target's leading
silence is trimmed), else detected (``asm.audio.analysis.detect_notes``: pitch, note-on/off,
velocity), with ``--note N`` replacing the detected pitch by one held note N over the detected
span (or over the sound's span when no pitch is found). Every note must lie in the synth's range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asm.audio.analysis import ACTIVE_DB, NoPitchFound, _note_off, _velocity, detect_notes, pitch_track
from asm.audio.io import load_target
from asm.errors import AsmError
from asm.midi.notes import Note, load_midi, parse_pitch

# Playable ranges of built-in synths: asm-sub's Faust freq slider spans 20..20000 Hz, so notes
# below MIDI 16 (20.6 Hz) would sound at a clamped, wrong pitch.
BUILTIN_NOTE_RANGES = {"asm-sub": (16, 127)}


def note_range(synth_row) -> tuple[int, int]:
    """The synth's playable MIDI range: ``settings["note_range"]`` if set, else its known range, else 0..127."""
    stored = (synth_row.settings or {}).get("note_range")
    if stored:
        return int(stored[0]), int(stored[1])
    return BUILTIN_NOTE_RANGES.get(synth_row.name, (0, 127))


@dataclass
class Target:
    path: Path
    audio: np.ndarray  # mono float32 at sample_rate
    sample_rate: int
    notes: list[Note]
    notes_from: str  # detected | note | midi

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def _sound_span(audio: np.ndarray, sample_rate: int) -> tuple[float, float, int]:
    """(start, note-off, velocity) of an unpitched sound: from its start to where its final fall begins."""
    track = pitch_track(audio, sample_rate)
    active = np.flatnonzero(track.level_db > track.level_db.max() - ACTIVE_DB)
    lo, hi = int(active[0]), int(active[-1]) + 1
    off = _note_off(track.level_db, lo, hi, track.hop)
    start = float(track.times[lo])
    end = max(start + track.hop, float(track.times[min(off, len(track.times) - 1)]))
    return max(0.0, start - 0.01), end, _velocity(float(track.level_db.max()))


def parse_note_option(text: str | None) -> int | None:
    """``auto``/None -> None (detect); otherwise a MIDI number or note name."""
    if text is None or text.strip().lower() == "auto":
        return None
    return parse_pitch(text)


def find_notes(audio: np.ndarray, sample_rate: int, note: int | None = None,
               midi: Path | None = None) -> tuple[list[Note], str]:
    if midi is not None:
        notes = load_midi(midi)
        shift = min(n.start for n in notes)
        notes = [n._replace(start=round(n.start - shift, 6)) for n in notes]
        late = [n for n in notes if n.start >= len(audio) / sample_rate]
        if late:
            raise AsmError(f"MIDI file {midi} has notes starting at {late[0].start:.2f} s, after the end of the "
                           f"target ({len(audio) / sample_rate:.2f} s once its leading silence is trimmed)")
        return notes, "midi"
    if note is None:
        return detect_notes(audio, sample_rate), "detected"
    try:
        found = detect_notes(audio, sample_rate)
        start, end = found[0].start, max(n.end for n in found)
        velocity = max(n.velocity for n in found)
    except NoPitchFound:
        start, end, velocity = _sound_span(audio, sample_rate)
    return [Note(int(note), int(velocity), round(start, 4), round(max(1e-3, end - start), 4))], "note"


def check_range(notes: list[Note], synth_name: str, lo: int, hi: int) -> None:
    bad = [n.pitch for n in notes if not lo <= n.pitch <= hi]
    if bad:
        raise AsmError(f"MIDI note {bad[0]} is outside the range of {synth_name} ({lo}..{hi})"
                       + (f" ({len(bad)} notes)" if len(bad) > 1 else ""))


def prepare_target(path: str | Path, sample_rate: int, synth_row, note: str | None = "auto",
                   midi: str | Path | None = None, crop: tuple[float, float | None] | None = None) -> Target:
    """Read ``path`` (only ``crop``'s span when given) and find its notes; any problem is one AsmError
    line (nothing else happens)."""
    path = Path(path)
    pitch = parse_note_option(note)
    if midi is not None and pitch is not None:
        raise AsmError("give --note or --midi, not both")
    midi_path = Path(midi) if midi is not None else None
    if midi_path is not None and not midi_path.is_file():
        raise AsmError(f"MIDI file not found: {midi_path}")
    audio = load_target(path, sample_rate, crop=crop)
    notes, source = find_notes(audio, sample_rate, pitch, midi_path)
    lo, hi = note_range(synth_row)
    check_range(notes, synth_row.name, lo, hi)
    return Target(path, audio, int(sample_rate), notes, source)
