"""The closed sets and ranges of command-line values, declared once so Typer checks them.

Typer turns each ``StrEnum`` into a choice (shown in ``--help``, refused with exit 2 before the
command runs); the callbacks check what Typer's ``min``/``max`` cannot say (an open lower bound,
a set of sample rates). Members are ``str``, so they compare equal to and format as their value.
"""

from __future__ import annotations

import math
from enum import StrEnum

import typer

from asm.midi.mode import Mode  # noqa: F401 - the library's enum, re-exported for option declarations

SAMPLE_RATES = (16000, 22050, 44100, 48000)  # what features, datasets and checkpoints are made for
MAX_SECONDS = 600.0  # longest render a command accepts
MIN_SECONDS = 0.01


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Executor(StrEnum):
    local = "local"
    ray = "ray"


class F0Method(StrEnum):
    """Offline pitch trackers of DDSP training and resynthesis (asm.ddsp.config.F0_METHODS)."""

    crepe = "crepe"
    crepe_full = "crepe-full"
    pyin = "pyin"


class AudioDtype(StrEnum):
    int16 = "int16"
    float16 = "float16"


class Store(StrEnum):
    audio_features = "audio+features"
    features = "features"


class Split(StrEnum):
    train = "train"
    val = "val"
    test = "test"


class RunKind(StrEnum):
    benchmark = "benchmark"
    match = "match"
    test_model = "test-model"


class Origin(StrEnum):
    factory = "factory"
    user = "user"


class Scale(StrEnum):
    small = "small"
    medium = "medium"
    paper = "paper"


class FreeParams(StrEnum):
    """Free parameters of a benchmark set-up (a choice of numbers, so ``int(choice)`` gives it)."""

    p32 = "32"
    p16 = "16"


class MatchMethod(StrEnum):
    model = "model"
    nn = "nn"
    nsga2 = "nsga2"
    hybrid = "hybrid"
    gradient = "gradient"
    cmaes = "cmaes"
    proxy = "proxy"


def sample_rate(value: int | None) -> int | None:
    """Typer callback: one of the supported sample rates (None: the command's default)."""
    if value is not None and value not in SAMPLE_RATES:
        raise typer.BadParameter(f"{value} is not a supported sample rate: {', '.join(map(str, SAMPLE_RATES))}")
    return value


def positive(value: float | None) -> float | None:
    """Typer callback: a finite number greater than 0 (None: the command's default)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value:g} is not a finite number greater than 0")
    return value


def seconds(value: float | None) -> float | None:
    """Typer callback: a length of audio in seconds, in [MIN_SECONDS, MAX_SECONDS] (None: the default)."""
    if value is not None and not (math.isfinite(value) and MIN_SECONDS <= value <= MAX_SECONDS):
        raise typer.BadParameter(f"{value:g} is not in [{MIN_SECONDS:g}, {MAX_SECONDS:g}] seconds")
    return value
