"""Cutting MIDI files into fixed-length chunks that a synth can play as one example.

A file's tracks are merged (``load_midi``: tempo changes applied, drums left out) and cut every
``length`` seconds. A note crossing the end of a chunk is closed at the edge; a note still held at
the start of a chunk is struck again at 0 if enough of it remains. Notes outside the pitch range are
dropped; chunks whose polyphony exceeds the maximum, and chunks left empty, are dropped.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asm.atomic import write_bytes
from asm.errors import AsmError
from asm.midi.generate import MIN_NOTE, f32, polyphony
from asm.midi.notes import Note, load_midi
from asm.paths import ensure_dir

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")


@dataclass(frozen=True)
class ChunkFilter:
    low: int = 0  # inclusive pitch range
    high: int = 127
    max_polyphony: int | None = None


@dataclass
class PartitionReport:
    files: int = 0
    chunks: int = 0
    dropped_empty: int = 0
    dropped_polyphony: int = 0
    notes_outside_range: int = 0
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def as_dict(self) -> dict:
        return {
            "files": self.files,
            "chunks": self.chunks,
            "dropped_empty": self.dropped_empty,
            "dropped_polyphony": self.dropped_polyphony,
            "notes_outside_range": self.notes_outside_range,
            "corrupt": [{"file": f, "reason": r} for f, r in self.corrupt],
        }


def midi_files(directory: Path) -> list[Path]:
    """MIDI files under ``directory`` (recursive, sorted); a clear error when there are none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise AsmError(f"MIDI directory not found: {directory}")
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)
    if not files:
        raise AsmError(f"no MIDI files (.mid, .midi) in {directory}")
    return files


def cut(notes: list[Note], length: float, report: PartitionReport | None = None,
        filt: ChunkFilter = ChunkFilter()) -> list[list[Note]]:
    """Chunks of ``length`` seconds, in order (empty and too-polyphonic ones dropped)."""
    if not length > 0:
        raise AsmError(f"chunk length must be positive, got {length}")
    report = report if report is not None else PartitionReport()
    inside = [n for n in notes if filt.low <= n.pitch <= filt.high]
    report.notes_outside_range += len(notes) - len(inside)
    end = max((n.end for n in notes), default=0.0)
    count = max(1, math.ceil(end / length - 1e-9))
    chunks: list[list[Note]] = []
    for k in range(count):
        t0, t1 = k * length, (k + 1) * length
        chunk = []
        for n in inside:
            a, b = max(n.start, t0), min(n.end, t1)
            if b - a >= MIN_NOTE:
                chunk.append(Note(n.pitch, n.velocity, f32(a - t0), f32(b - a)))
        chunk.sort(key=lambda n: (n.start, n.pitch))
        if not chunk:
            report.dropped_empty += 1
            continue
        if filt.max_polyphony is not None and polyphony(chunk) > filt.max_polyphony:
            report.dropped_polyphony += 1
            continue
        chunks.append(chunk)
    return chunks


def chunks_of_dir(directory: Path, length: float, filt: ChunkFilter = ChunkFilter()
                  ) -> tuple[list[tuple[Path, int, list[Note]]], PartitionReport]:
    """Every chunk of every readable MIDI file: (file, chunk number, notes); corrupt files are listed."""
    report = PartitionReport()
    out: list[tuple[Path, int, list[Note]]] = []
    for path in midi_files(directory):
        try:
            notes = load_midi(path)
        except AsmError as exc:
            report.corrupt.append((str(path), str(exc)))
            continue
        report.files += 1
        for k, chunk in enumerate(cut(notes, length, report, filt)):
            out.append((path, k, chunk))
    report.chunks = len(out)
    return out, report


def write_midi(path: Path, notes: list[Note], ticks_per_beat: int = 960, bpm: float = 120.0) -> None:
    """A one-track MIDI file of ``notes`` (written to a temporary file, then renamed)."""
    import mido

    tick = 60.0 / bpm / ticks_per_beat
    events = []
    for n in notes:
        on = int(round(n.start / tick))
        off = max(on + 1, int(round(n.end / tick)))
        events.append((on, 1, n.pitch, n.velocity))
        events.append((off, 0, n.pitch, 0))
    events.sort(key=lambda e: (e[0], e[1]))  # note-offs before note-ons at the same tick
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    now = 0
    for t, on, pitch, vel in events:
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=vel, time=t - now))
        now = t
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    midi.tracks.append(track)

    buf = io.BytesIO()
    midi.save(file=buf)
    write_bytes(path, buf.getvalue())


def partition_dir(src: Path, length: float, out: Path, filt: ChunkFilter = ChunkFilter()) -> PartitionReport:
    """``asm partition-midi``: write every chunk of ``src``'s MIDI files to ``out`` as its own file."""
    chunks, report = chunks_of_dir(src, length, filt)
    if report.files == 0:
        raise AsmError(f"none of the MIDI files in {src} could be read ({len(report.corrupt)} corrupt)")
    ensure_dir(Path(out))
    root = Path(src)
    for path, k, notes in chunks:
        rel = path.relative_to(root).with_suffix("")
        stem = "__".join(rel.parts)
        write_midi(Path(out) / f"{stem}_{k:04d}.mid", notes)
    return report


def notes_array(notes: list[Note]) -> np.ndarray:
    return np.array([(n.pitch, n.velocity, n.start, n.duration) for n in notes], dtype=NOTE_DTYPE)


NOTE_DTYPE = np.dtype([("pitch", "u1"), ("velocity", "u1"), ("start", "<f4"), ("duration", "<f4")])
