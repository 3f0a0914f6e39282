"""Reading and writing audio files (soundfile): targets read from any format, outputs written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from asm.atomic import atomic_path
from asm.audio.signal import SILENCE_PEAK, peak_dbfs
from asm.errors import AsmError

MIN_TARGET_SECONDS = 0.1
TRIM_DB = 60.0  # leading samples more than 60 dB below the peak count as silence


def check_writable(path: Path) -> None:
    """Fail early, before expensive work, when ``path`` cannot be written."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise AsmError(f"output path {path} is a directory")
    if not parent.is_dir():
        raise AsmError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise AsmError(f"cannot write {path}: directory {parent} is not writable")


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    """Write audio (32-bit float WAV/AIFF, the format's default elsewhere; ``subtype`` such as
    ``"PCM_16"`` overrides) atomically."""
    import soundfile as sf

    path = Path(path)
    check_writable(path)
    fmt = path.suffix.lstrip(".").upper() or "WAV"
    if fmt not in sf.available_formats():
        raise AsmError(f"unsupported audio format {path.suffix!r} for {path}")
    if subtype is None:
        subtype = "FLOAT" if fmt in ("WAV", "AIFF") else None
    try:
        with atomic_path(path) as tmp:
            sf.write(tmp, np.asarray(audio, dtype=np.float32), int(sample_rate), subtype=subtype, format=fmt)
    except RuntimeError as exc:  # soundfile's own errors (format and subtype do not fit, ...)
        raise AsmError(f"cannot write {path}: {exc}") from None
    return path


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(float32 samples (frames, channels), sample rate) of any file libsndfile reads, or one clear AsmError."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AsmError(f"audio file not found: {path}")
    if path.is_dir():
        raise AsmError(f"{path} is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AsmError(f"audio file {path} is empty (0 bytes)")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, TypeError, OSError, EOFError) as exc:  # libsndfile: corrupt or not audio
        reason = getattr(exc, "error_string", None) or str(exc).replace(str(path), "").strip(" :'") or type(exc).__name__
        raise AsmError(
            f"cannot read {path} as audio ({reason}); wav, flac, ogg, aiff and the other libsndfile formats work"
        ) from None
    if audio.shape[0] == 0:
        raise AsmError(f"audio file {path} holds no samples")
    return audio, int(rate)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Mono float32 audio resampled with soxr (high quality, linear phase)."""
    if from_rate == to_rate:
        return np.asarray(audio, dtype=np.float32)
    import soxr

    return soxr.resample(np.asarray(audio, dtype=np.float32), from_rate, to_rate, quality="HQ").astype(np.float32)


def trim_leading_silence(audio: np.ndarray, trim_db: float = TRIM_DB) -> np.ndarray:
    """``audio`` from its first sample within ``trim_db`` of the peak (a view, nothing copied)."""
    magnitude = np.abs(audio)
    peak = float(magnitude.max()) if audio.size else 0.0
    if peak == 0.0:
        return audio
    return audio[int(np.argmax(magnitude >= peak * 10 ** (-trim_db / 20))) :]


def load_target(path: str | Path, sample_rate: int, trim_db: float = TRIM_DB) -> np.ndarray:
    """A match target as mono float32 at ``sample_rate``: channels averaged, resampled, leading silence trimmed.

    Raises AsmError (one line) for a missing, empty, corrupt or non-audio file, a silent or
    non-finite target, and one shorter than ``MIN_TARGET_SECONDS`` once its leading silence is gone.
    """
    path = Path(path)
    audio, rate = read_audio(path)
    if not np.isfinite(audio).all():
        raise AsmError(f"target {path} contains NaN or infinite samples")
    mono = audio.mean(axis=1, dtype=np.float64).astype(np.float32)
    peak = float(np.abs(mono).max())
    if peak < SILENCE_PEAK:
        level = "every sample is zero" if peak == 0 else f"peak {peak_dbfs(mono):.0f} dBFS"
        raise AsmError(f"target {path} is silent ({level}; asm needs a peak of -80 dBFS or louder)")
    mono = trim_leading_silence(resample(mono, rate, int(sample_rate)), trim_db)
    seconds = len(mono) / sample_rate
    if seconds < MIN_TARGET_SECONDS:
        raise AsmError(
            f"target {path} is too short: {seconds:.3f} s of sound after its leading silence "
            f"(at least {MIN_TARGET_SECONDS:g} s needed)"
        )
    return np.ascontiguousarray(mono)
