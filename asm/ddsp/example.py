"""The worked example's audio: one General MIDI instrument (FluidR3, as the out-of-domain targets) playing
seeded melodies, so a DDSP model can be trained and judged with nothing downloaded.

``example_audio`` writes ``train.wav`` (minutes of melody) and a held-out phrase (``heldout.wav`` and its
notes as ``heldout.mid``, from another seed, so no phrase of it was heard in training). The MIDI file lets
``asm match --midi`` play the same notes with a synth preset, for the DDSP-against-preset comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asm.errors import AsmError
from asm.midi.notes import Note

INSTRUMENTS = {  # name -> (GM program, lowest and highest pitch of its melodies)
    "violin": (40, 55, 88),
    "flute": (73, 60, 93),
    "cello": (42, 36, 69),
    "trumpet": (56, 55, 82),
    "clarinet": (71, 50, 84),
}
PEAK = 0.5  # -6 dBFS, as the out-of-domain targets
HELDOUT_SEED_OFFSET = 10_000  # the held-out phrase's melody seed: never one a training run draws


def melody(rng: np.random.Generator, seconds: float, low: int, high: int) -> list[Note]:
    """A monophonic, mostly legato line: steps and small leaps in a major scale, held 0.2-1.5 s, some rests."""
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    root = int(rng.integers(0, 12))
    pitches = [p for p in range(low, high + 1) if (p - root) % 12 in scale]
    i = int(rng.integers(len(pitches) // 4, 3 * len(pitches) // 4))
    notes, t = [], 0.0
    while t < seconds - 0.3:
        length = float(rng.choice([0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.5]))
        length = min(length, seconds - 0.1 - t)
        velocity = int(rng.integers(60, 120))
        notes.append(Note(pitches[i], velocity, round(t, 4), round(length * 0.95, 4)))
        t += length + (float(rng.uniform(0.3, 0.8)) if rng.random() < 0.1 else 0.0)
        i = int(np.clip(i + rng.choice([-3, -2, -1, -1, 1, 1, 2, 3]), 0, len(pitches) - 1))
    return notes


def example_audio(out: Path, instrument: str = "violin", minutes: float = 3.0, heldout_seconds: float = 12.0,
                  sample_rate: int = 16000, seed: int = 0) -> dict:
    """Render the training audio and the held-out phrase into ``out``; returns what was written."""
    from asm.audio.io import check_writable, write_audio
    from asm.audio.soundfont import SOUNDFONT, SoundFontRenderer
    from asm.midi.partition import write_midi

    if instrument not in INSTRUMENTS:
        raise AsmError(f"unknown instrument {instrument!r}; known: {', '.join(INSTRUMENTS)}")
    if not Path(SOUNDFONT).is_file():
        raise AsmError(f"the GM SoundFont {SOUNDFONT} is missing: install Debian's fluid-soundfont-gm "
                       "(make system-deps)")
    if minutes <= 0 or heldout_seconds < 2:
        raise AsmError("give --minutes > 0 and --heldout of 2 s or more")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("train.wav", "heldout.wav", "heldout.mid"):
        check_writable(out / name)
    program, low, high = INSTRUMENTS[instrument]
    renderer = SoundFontRenderer(Path(SOUNDFONT), sample_rate)
    written = {}
    for name, melody_seed, seconds in (("train", seed, 60.0 * minutes),
                                       ("heldout", seed + HELDOUT_SEED_OFFSET, heldout_seconds)):
        notes = melody(np.random.default_rng(melody_seed), seconds, low, high)
        audio = renderer.render_notes(program, notes, seconds)
        peak = float(np.abs(audio).max())
        if peak <= 0:
            raise AsmError(f"FluidSynth rendered silence for {instrument}")
        write_audio(out / f"{name}.wav", audio * (PEAK / peak), sample_rate, "PCM_16")
        if name == "heldout":
            write_midi(out / "heldout.mid", notes)
        written[name] = {"file": str(out / f"{name}.wav"), "seconds": seconds, "notes": len(notes)}
    return {"instrument": instrument, "program": program, "sample_rate": sample_rate, "seed": seed, **written,
            "midi": str(out / "heldout.mid")}


def score_files(target: Path, files: list[Path], metrics: tuple[str, ...] = ("perceptual", "mr-stft")) -> list[dict]:
    """Each file's distance to ``target`` by asm's metric code, at the target's rate (each file resampled,
    mono, cut or zero-padded to the target's length), so a DDSP resynthesis and a matched preset's render
    are judged alike."""
    from asm.audio.io import read_audio, resample
    from asm.audio.metrics import distances

    def mono(path: Path) -> tuple[np.ndarray, int]:
        audio, rate = read_audio(path)
        return (audio.mean(axis=1) if audio.ndim == 2 else audio).astype(np.float32), rate

    reference, rate = mono(Path(target))
    rows = []
    for path in files:
        audio, r = mono(Path(path))
        audio = resample(audio, r, rate)[: len(reference)]
        audio = np.pad(audio, (0, len(reference) - len(audio)))
        d = distances(audio[None], reference, rate, list(metrics))
        rows.append({"file": str(path), **{m: float(d[m][0]) for m in metrics}})
    return rows
