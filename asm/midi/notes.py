"""The note events every render plays: pitch, velocity, start and duration in seconds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple, Sequence

from asm.errors import AsmError

_NAMES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


class Note(NamedTuple):
    pitch: int
    velocity: int
    start: float
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration


def parse_pitch(text: str) -> int:
    """A MIDI note number from ``60`` or a name such as ``C4``, ``F#3``, ``Bb2`` (C4 = 60)."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        pitch = int(text)
    else:
        m = re.fullmatch(r"([A-Ga-g])([#b]?)(-?\d+)", text)
        if not m:
            raise AsmError(f"not a note: {text!r} (use a MIDI number such as 60 or a name such as C4)")
        pitch = _NAMES[m.group(1).lower()] + {"#": 1, "b": -1, "": 0}[m.group(2)] + 12 * (int(m.group(3)) + 1)
    if not 0 <= pitch <= 127:
        raise AsmError(f"note {text!r} is outside the MIDI range 0..127")
    return pitch


def parse_chord(text: str) -> list[int]:
    """Pitches from ``60,64,67`` or ``C4,E4,G4``."""
    parts = [p for p in text.split(",")]
    if len(parts) < 1 or any(not p.strip() for p in parts):
        raise AsmError(f"malformed chord {text!r}: give comma-separated notes such as 60,64,67")
    try:
        return [parse_pitch(p) for p in parts]
    except AsmError as exc:
        raise AsmError(f"malformed chord {text!r}: {exc}") from None


def held(pitches: Sequence[int], velocity: int, note_off: float, start: float = 0.0) -> list[Note]:
    """All pitches struck together at ``start`` and released at ``note_off`` seconds."""
    return [Note(int(p), int(velocity), start, max(1e-3, note_off - start)) for p in pitches]


def load_midi(path: str | Path) -> list[Note]:
    """Notes of a standard MIDI file, all tracks merged, tempo changes applied, drums (channel 10) left out."""
    import mido

    path = Path(path)
    if not path.is_file():
        raise AsmError(f"MIDI file not found: {path}")
    try:
        midi = mido.MidiFile(path)
        messages = list(midi)
    except Exception as exc:  # mido raises many types for corrupt files
        raise AsmError(f"cannot read MIDI file {path}: {exc}") from None
    now = 0.0
    open_notes: dict[tuple[int, int], list[tuple[float, int]]] = {}
    notes: list[Note] = []
    for msg in messages:
        now += msg.time
        if msg.type not in ("note_on", "note_off") or msg.channel == 9:
            continue
        key = (msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity > 0:
            open_notes.setdefault(key, []).append((now, msg.velocity))
        elif open_notes.get(key):
            start, velocity = open_notes[key].pop(0)
            notes.append(Note(msg.note, velocity, start, max(1e-3, now - start)))
    for (_, pitch), pending in open_notes.items():  # notes never released end with the file
        for start, velocity in pending:
            notes.append(Note(pitch, velocity, start, max(1e-3, now - start)))
    notes.sort(key=lambda n: (n.start, n.pitch))
    if not notes:
        raise AsmError(f"MIDI file {path} has no notes")
    return notes
