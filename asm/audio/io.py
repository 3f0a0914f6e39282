"""Reading and writing audio files (soundfile), written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from asm.errors import AsmError


def check_writable(path: Path) -> None:
    """Fail early, before expensive work, when ``path`` cannot be written."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise AsmError(f"output path {path} is a directory")
    if not parent.is_dir():
        raise AsmError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise AsmError(f"cannot write {path}: directory {parent} is not writable")


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write float audio (32-bit float WAV/FLAC/... by extension) via a temp file and rename."""
    import soundfile as sf

    path = Path(path)
    check_writable(path)
    fmt = path.suffix.lstrip(".").upper() or "WAV"
    if fmt not in sf.available_formats():
        raise AsmError(f"unsupported audio format {path.suffix!r} for {path}")
    subtype = "FLOAT" if fmt in ("WAV", "AIFF") else None
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        sf.write(tmp, np.asarray(audio, dtype=np.float32), int(sample_rate), subtype=subtype, format=fmt)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        raise AsmError(f"cannot write {path}: {exc}") from None
    return path
