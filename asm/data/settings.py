"""Everything that determines a dataset's contents, validated once, stored on its registry row.

Two runs with equal settings (and the same seed, locks, factory presets and MIDI chunks) produce the
same examples bit for bit, whatever the number of workers or the executor; so a second run with
equal settings *resumes* a dataset, and one with different settings is refused.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from asm.audio.features import FeatureSettings
from asm.errors import AsmError
from asm.midi.mode import Mode
from asm.midi.notes import parse_pitch

SHARD_BYTES = 16 << 20  # target size of one shard file (auto shard size)
STORE_DEFAULT = "audio+features"  # what datasets made before ``store`` existed hold
NOTES_GENERATOR = "asm-poly/1"  # bump when the built-in generator's output changes


class DatasetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    synth: str
    synth_version: str = ""
    mode: Mode = Mode.mono
    size: int = Field(gt=0)
    presets: Literal["random", "factory", "mix"] = "random"
    factory_fraction: float = Field(0.0, ge=0.0, le=1.0)
    sample_rate: int = Field(16000, ge=8000, le=192000)
    duration: float = Field(2.0, gt=0, le=60)
    note_off: float = Field(1.5, gt=0, le=60)
    note: int = Field(60, ge=0, le=127)  # mono: the note when no range is given
    note_range: tuple[int, int] | None = None  # inclusive pitch range (mono: uniform; poly: generator range)
    velocity: int = Field(100, ge=1, le=127)
    velocity_range: tuple[int, int] | None = None  # inclusive; overrides velocity when given
    midi_dir: str | None = None  # poly: chunks of these MIDI files instead of the built-in generator
    max_polyphony: int = Field(6, ge=1, le=64)
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    shard_size: int = Field(256, ge=1, le=65536)
    audio_dtype: Literal["int16", "float16"] = "int16"
    # "features": no audio in the shards (a tenth of the disk at 1 s, 16 kHz); evaluation re-renders
    # the target from the stored preset and notes instead of reading it
    store: Literal["audio+features", "features"] = STORE_DEFAULT
    features: FeatureSettings = FeatureSettings()
    generator: str = NOTES_GENERATOR

    @model_validator(mode="after")
    def _check(self) -> "DatasetSettings":
        if self.note_off > self.duration:
            raise ValueError(f"note-off ({self.note_off:g} s) must not be after the end ({self.duration:g} s)")
        for name in ("note_range", "velocity_range"):
            r = getattr(self, name)
            if r is not None and not (r[0] <= r[1]):
                raise ValueError(f"{name.replace('_', '-')} must be LOW:HIGH with LOW <= HIGH, got {r[0]}:{r[1]}")
        if self.note_range is not None and not (0 <= self.note_range[0] and self.note_range[1] <= 127):
            raise ValueError("note-range must lie within MIDI notes 0..127")
        if self.velocity_range is not None and not (1 <= self.velocity_range[0] and self.velocity_range[1] <= 127):
            raise ValueError("velocity-range must lie within 1..127")
        if self.midi_dir is not None and self.mode != "poly":
            raise ValueError("--midi-dir is for --mode poly")
        check_split(self.split)
        return self

    @property
    def n_samples(self) -> int:
        return int(round(self.duration * self.sample_rate))

    @property
    def n_frames(self) -> int:
        return self.features.frames(self.n_samples)

    @property
    def has_audio(self) -> bool:
        return self.store == "audio+features"

    def example_bytes(self, n_free: int) -> int:
        """Bytes one example takes in a shard (notes excluded)."""
        audio = 2 * self.n_samples + 4 if self.has_audio else 0
        return audio + 2 * self.features.n_mels * self.n_frames + 4 * n_free + 8 + 4 + 1 + 2 + 8

    def split_counts(self) -> tuple[int, int, int]:
        return split_counts(self.size, self.split)

    def identity(self) -> dict:
        """The settings as stored on the dataset row (JSON). ``store`` is left out at its default, so
        the rows of datasets made before it existed still match (and resume)."""
        out = self.model_dump(mode="json")
        if out["store"] == STORE_DEFAULT:
            del out["store"]
        return out


def auto_shard_size(duration: float, sample_rate: int, features: FeatureSettings, store: str = STORE_DEFAULT) -> int:
    """A power of two giving shards of about SHARD_BYTES (16 to 1024 examples; 4096 for features only)."""
    n = int(round(duration * sample_rate))
    audio = 2 * n if store == STORE_DEFAULT else 0
    per_example = audio + 2 * features.n_mels * features.frames(n) + 200
    most = 1024 if store == STORE_DEFAULT else 4096
    return int(min(most, max(16, 2 ** math.floor(math.log2(max(1, SHARD_BYTES // per_example))))))


def check_split(split: tuple[float, ...]) -> None:
    if len(split) != 3 or any(not math.isfinite(x) or x < 0 for x in split):
        raise ValueError("split must be three non-negative fractions TRAIN,VAL,TEST such as 0.8,0.1,0.1")
    if abs(sum(split) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {sum(split):g}")
    if split[0] <= 0:
        raise ValueError("the train fraction of the split must be positive")


def split_counts(size: int, split: tuple[float, float, float]) -> tuple[int, int, int]:
    """Example counts per split by largest remainder (they sum to ``size``)."""
    raw = [size * f for f in split]
    counts = [int(math.floor(x)) for x in raw]
    order = sorted(range(3), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: size - sum(counts)]:
        counts[i] += 1
    return counts[0], counts[1], counts[2]


# ---- parsing of command-line strings -------------------------------------------------------
def parse_split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise AsmError(f"bad --split {text!r}: give three fractions such as 0.8,0.1,0.1") from None
    try:
        check_split(parts)
    except ValueError as exc:
        raise AsmError(f"bad --split {text!r}: {exc}") from None
    return parts  # type: ignore[return-value]


def parse_presets(text: str) -> tuple[str, float]:
    """``random`` | ``factory`` | ``mix:F`` (a fraction F of factory presets) -> (kind, fraction)."""
    t = text.strip().lower()
    if t == "random":
        return "random", 0.0
    if t == "factory":
        return "factory", 1.0
    m = re.fullmatch(r"mix:([0-9.]+)", t)
    if m:
        try:
            f = float(m.group(1))
        except ValueError:
            f = -1.0
        if 0.0 <= f <= 1.0:
            return "mix", f
        raise AsmError(f"bad --presets {text!r}: the factory fraction F of mix:F must be in [0, 1]")
    raise AsmError(f"bad --presets {text!r}: use random, factory or mix:F (e.g. mix:0.5)")


def parse_range(text: str, what: str, lo: int, hi: int) -> tuple[int, int]:
    """``48:72`` (inclusive). Pitches may be names (``C3:C5``)."""
    if ":" not in text:
        raise AsmError(f"bad {what} {text!r}: give LOW:HIGH such as 48:72")
    a, b = text.split(":", 1)
    try:
        if what == "--note-range":
            r = parse_pitch(a), parse_pitch(b)
        else:
            r = int(a), int(b)
    except (AsmError, ValueError) as exc:
        raise AsmError(f"bad {what} {text!r}: {exc}") from None
    if not (lo <= r[0] <= r[1] <= hi):
        raise AsmError(f"bad {what} {text!r}: need {lo} <= LOW <= HIGH <= {hi}")
    return r
