"""Checks every stored or scored render goes through."""

from __future__ import annotations

import numpy as np

SILENCE_PEAK = 1e-4  # -80 dBFS: below this a render counts as silent


def is_finite(audio: np.ndarray) -> bool:
    return bool(np.isfinite(audio).all())


def is_silent(audio: np.ndarray, threshold: float = SILENCE_PEAK) -> bool:
    return audio.size == 0 or float(np.max(np.abs(audio))) < threshold


def is_usable(audio: np.ndarray) -> bool:
    """Finite and audible: the only renders asm stores as data or scores as matches."""
    return is_finite(audio) and not is_silent(audio)


def peak_dbfs(audio: np.ndarray) -> float:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20 * np.log10(max(peak, 1e-12))
