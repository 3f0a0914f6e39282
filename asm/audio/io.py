"""Reading and writing audio files (soundfile): targets read from any format, outputs written atomically.

A match target is at most ``MAX_TARGET_SECONDS`` long (after ``--crop``): the length is read from
the file's header (``soundfile.info``) before anything is decoded, so a long recording costs one
AsmError line, not the memory of decoding it; ``crop=(start, end)`` decodes only that span.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from asm.atomic import atomic_path
from asm.audio.signal import SILENCE_PEAK, peak_dbfs
from asm.errors import AsmError

MIN_TARGET_SECONDS = 0.1
MAX_TARGET_SECONDS = 30.0  # longest target (or --crop span) asm matches: memory and time stay bounded
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


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AsmError(f"audio file not found: {path}")
    if path.is_dir():
        raise AsmError(f"{path} is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AsmError(f"audio file {path} is empty (0 bytes)")


def _unreadable(path: Path, exc: Exception) -> AsmError:
    reason = getattr(exc, "error_string", None) or str(exc).replace(str(path), "").strip(" :'") or type(exc).__name__
    return AsmError(f"cannot read {path} as audio ({reason}); wav, flac, ogg, aiff and the other libsndfile formats work")


_READ_ERRORS = (RuntimeError, ValueError, TypeError, OSError, EOFError)  # libsndfile: corrupt or not audio


def audio_info(path: str | Path) -> tuple[int, int]:
    """(frames, sample rate) from the file's header, without decoding it; or one clear AsmError."""
    import soundfile as sf

    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None
    return int(info.frames), int(info.samplerate)


def read_audio(path: str | Path, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, int]:
    """(float32 samples (frames, channels), sample rate) of any file libsndfile reads, or one clear AsmError.

    ``start``/``stop``: decode only those frames."""
    import soundfile as sf

    path = Path(path)
    _check_file(path)
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True, start=start, stop=stop)
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None
    if audio.shape[0] == 0:
        raise AsmError(f"audio file {path} holds no samples")
    return audio, int(rate)


def parse_crop(text: str | None) -> tuple[float, float | None] | None:
    """``START:END`` in seconds (either side may be empty: ``:10``, ``5:``) -> (start, end or None)."""
    if text is None or not text.strip():
        return None
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start = float(parts[0]) if parts[0].strip() else 0.0
        end = float(parts[1]) if parts[1].strip() else None
    except ValueError:
        raise AsmError(f"--crop must be START:END in seconds (e.g. 12.5:20), got {text!r}") from None
    if start < 0 or (end is not None and not end > start):
        raise AsmError(f"--crop {text}: START must be at least 0 and END after START")
    return start, end


def target_frames(path: Path, crop: tuple[float, float | None] | None = None,
                  max_seconds: float = MAX_TARGET_SECONDS) -> tuple[int, int]:
    """The (start, stop) frames of a target to decode: the crop, checked against the file's length and
    ``max_seconds`` from its header alone."""
    frames, rate = audio_info(path)
    if frames == 0:
        raise AsmError(f"audio file {path} holds no samples")
    start, stop = 0, frames
    if crop is not None:
        start = round(crop[0] * rate)
        stop = frames if crop[1] is None else min(frames, round(crop[1] * rate))
        if start >= frames:
            raise AsmError(f"--crop starts at {crop[0]:g} s, after the end of {path} ({frames / rate:.2f} s)")
    seconds = (stop - start) / rate
    if seconds > max_seconds + 1e-9:
        what = "the cropped span" if crop is not None else "it"
        raise AsmError(f"target {path} is too long: {what} lasts {seconds:.1f} s and asm matches at most "
                       f"{max_seconds:g} s; choose a part with --crop START:END (seconds)")
    return start, stop


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


def load_target(path: str | Path, sample_rate: int, trim_db: float = TRIM_DB,
                crop: tuple[float, float | None] | None = None) -> np.ndarray:
    """A match target as mono float32 at ``sample_rate``: channels averaged, resampled, leading silence trimmed.

    ``crop``: (start, end or None) seconds of the file to match. Raises AsmError (one line) for a
    missing, empty, corrupt or non-audio file, one (or a crop) longer than ``MAX_TARGET_SECONDS``
    (checked before decoding), a silent or non-finite target, and one shorter than
    ``MIN_TARGET_SECONDS`` once its leading silence is gone.
    """
    path = Path(path)
    start, stop = target_frames(path, crop)
    audio, rate = read_audio(path, start, stop)
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
