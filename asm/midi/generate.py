"""Built-in polyphonic note patterns: chords, arpeggios and short overlapping sequences.

Every pattern comes from one ``numpy.random.Generator`` (so a dataset example's notes follow from
the seed and the example index), stays inside a pitch range, never exceeds a maximum polyphony and
releases every note by ``length`` seconds, so the synth's release is heard before the render ends.
Times are rounded to float32, the precision datasets store them in, so what is stored is exactly
what was played.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asm.midi.notes import Note

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "natural_minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
}
KINDS = ("chord", "arpeggio", "sequence")
MIN_NOTE = 0.03  # seconds: shorter notes are not rendered reliably by every plugin
EPS = 1e-6  # seconds: float32 rounding of note times


@dataclass(frozen=True)
class PatternSettings:
    length: float  # every note ends by this time (the note-off of the example)
    low: int = 36  # inclusive pitch range
    high: int = 84
    velocity: tuple[int, int] = (60, 120)
    max_polyphony: int = 6
    min_voices: int = 2
    max_voices: int = 6


def f32(x: float) -> float:
    return float(np.float32(x))


def scale_pitches(root: int, scale: tuple[int, ...], low: int, high: int) -> np.ndarray:
    """All pitches of the scale on ``root`` (any octave) inside [low, high]."""
    pcs = {(root + s) % 12 for s in scale}
    return np.array([p for p in range(low, high + 1) if p % 12 in pcs], dtype=np.int64)


def polyphony(notes: list[Note]) -> int:
    """Most notes sounding at once (a note ending exactly when another starts does not overlap)."""
    events = sorted([(round(n.start, 6), 1) for n in notes] + [(round(n.end, 6), -1) for n in notes])
    now = best = 0
    for _, d in events:
        now += d
        best = max(best, now)
    return best


def _velocities(rng: np.random.Generator, s: PatternSettings, n: int) -> np.ndarray:
    base = rng.integers(s.velocity[0], s.velocity[1] + 1)
    jitter = rng.integers(-8, 9, size=n)
    return np.clip(base + jitter, s.velocity[0], s.velocity[1])


def _chord_tones(rng: np.random.Generator, s: PatternSettings, voices: int) -> list[int]:
    """``voices`` pitches stacked in diatonic thirds (with an octave spread) from a random scale."""
    for _ in range(50):
        scale = SCALES[list(SCALES)[rng.integers(len(SCALES))]]
        root = int(rng.integers(12))
        pitches = scale_pitches(root, scale, s.low, s.high)
        if len(pitches) < voices:
            continue
        top = len(pitches) - 2 * (voices - 1) - 1
        start = int(rng.integers(0, max(1, top + 1)))
        idx = [start + 2 * k for k in range(voices)]  # thirds in the scale
        if rng.random() < 0.3 and voices >= 3:  # open voicing: lift one inner voice an octave
            k = int(rng.integers(1, voices))
            idx[k] += len(scale)
        idx = [i for i in idx if i < len(pitches)]
        chord = sorted({int(pitches[i]) for i in idx})
        if len(chord) == voices:
            return chord
    # a tiny pitch range: take what fits
    return list(range(s.low, min(s.high, s.low + voices - 1) + 1))


def chord(rng: np.random.Generator, s: PatternSettings) -> list[Note]:
    voices = int(rng.integers(s.min_voices, min(s.max_voices, s.max_polyphony) + 1))
    tones = _chord_tones(rng, s, voices)
    strum = rng.random() < 0.3
    step = rng.uniform(0.01, 0.04) if strum else 0.0
    off = s.length * rng.uniform(0.6, 1.0)
    vel = _velocities(rng, s, len(tones))
    notes = []
    for k, (p, v) in enumerate(zip(tones, vel)):
        start = f32(k * step)
        notes.append(Note(p, int(v), start, f32(max(MIN_NOTE, off - start))))
    return notes


def arpeggio(rng: np.random.Generator, s: PatternSettings) -> list[Note]:
    voices = int(rng.integers(3, 5))
    tones = _chord_tones(rng, s, voices)
    if rng.random() < 0.5:  # second octave when it fits
        tones = tones + [p + 12 for p in tones if p + 12 <= s.high]
    shape = ("up", "down", "updown", "random")[rng.integers(4)]
    if shape == "down":
        order = tones[::-1]
    elif shape == "updown":
        order = tones + tones[-2:0:-1]
    elif shape == "random":
        order = list(rng.permutation(tones))
    else:
        order = list(tones)
    step = rng.uniform(0.08, 0.25)
    legato = rng.uniform(0.8, 2.5)  # > 1: notes overlap
    count = max(2, int(s.length // step))
    vel = _velocities(rng, s, count)
    notes = []
    for k in range(count):
        start = k * step
        if start + MIN_NOTE > s.length:
            break
        dur = min(step * legato, s.length - start)
        notes.append(Note(int(order[k % len(order)]), int(vel[k]), f32(start), f32(dur)))
    return _cap_polyphony(notes, s.max_polyphony)


def sequence(rng: np.random.Generator, s: PatternSettings) -> list[Note]:
    scale = SCALES[list(SCALES)[rng.integers(len(SCALES))]]
    pitches = scale_pitches(int(rng.integers(12)), scale, s.low, s.high)
    if len(pitches) == 0:
        pitches = np.arange(s.low, s.high + 1)
    count = int(rng.integers(3, 9))
    pos = int(rng.integers(len(pitches)))
    vel = _velocities(rng, s, count)
    notes, t = [], 0.0
    for k in range(count):
        if t + MIN_NOTE > s.length:
            break
        ioi = rng.uniform(0.1, 0.4)
        dur = min(ioi * rng.uniform(1.05, 2.0), s.length - t)  # overlaps the next note
        notes.append(Note(int(pitches[pos]), int(vel[k]), f32(t), f32(dur)))
        if rng.random() < 0.25 and pos + 2 < len(pitches):  # a dyad: a third above, struck together
            notes.append(Note(int(pitches[pos + 2]), int(vel[k]), f32(t), f32(dur)))
        pos = int(np.clip(pos + rng.integers(-3, 4), 0, len(pitches) - 1))
        t += ioi
    return _cap_polyphony(notes, s.max_polyphony)


def _cap_polyphony(notes: list[Note], limit: int) -> list[Note]:
    """End held notes early so no more than ``limit`` sound at once (the oldest ends first); a note
    that could only fit by cutting notes struck with it is left out."""
    out: list[Note] = []
    for n in sorted(notes, key=lambda n: (n.start, n.pitch)):
        sounding = [i for i, m in enumerate(out) if m.end > n.start + EPS]
        need = len(sounding) - limit + 1
        if need > 0:
            earlier = sorted((i for i in sounding if out[i].start < n.start - EPS), key=lambda i: out[i].start)
            if len(earlier) < need:
                continue
            for i in earlier[:need]:
                out[i] = out[i]._replace(duration=f32(n.start - out[i].start))
        out.append(n)
    return out


GENERATORS = {"chord": chord, "arpeggio": arpeggio, "sequence": sequence}


def pattern(rng: np.random.Generator, s: PatternSettings) -> list[Note]:
    """One random pattern: a chord (40%), an arpeggio (30%) or a short sequence (30%)."""
    kind = KINDS[int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
    notes = GENERATORS[kind](rng, s)
    notes = [n for n in notes if n.duration > 0]
    return sorted(notes, key=lambda n: (n.start, n.pitch))
