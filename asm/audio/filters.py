"""Mel filter banks and A-weighting, the same numbers as librosa's, without librosa's import.

``import librosa.filters`` pulls in scipy.signal and numba: about 0.9 s per process on 2 cores,
paid by the main process of every ``asm match`` and by the forkserver that starts its render
workers, for two closed-form tables. These are librosa's formulas (``librosa.filters.mel`` with
the Slaney mel scale, ``librosa.A_weighting``: IEC 61672), and ``tests/test_filters.py`` holds them
equal to librosa's output.
"""

from __future__ import annotations

import numpy as np

_F_SP = 200.0 / 3  # Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel) ...
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0  # ... logarithmic above


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    high = hz >= _MIN_LOG_HZ
    return np.where(high, _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP, mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), _F_SP * mel)


def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                norm: str | None = "slaney") -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32 triangular filters, equally spaced in mels from ``fmin`` to
    ``fmax`` (default Nyquist); ``norm="slaney"`` divides each by its width in Hz (equal area),
    ``None`` leaves them peak 1."""
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    fmax = float(sample_rate) / 2 if fmax is None else float(fmax)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def a_weighting_db(freqs: np.ndarray, min_db: float | None = -80.0) -> np.ndarray:
    """A-weighting (IEC 61672) in dB at ``freqs`` Hz, clipped below at ``min_db`` (0 Hz reads ``min_db``)."""
    f_sq = np.asarray(freqs, dtype=np.float64) ** 2
    c = np.array([12194.217, 20.598997, 107.65265, 737.86223]) ** 2
    with np.errstate(divide="ignore"):
        db = 2.0 + 20.0 * (np.log10(c[0]) + 2 * np.log10(f_sq) - np.log10(f_sq + c[0]) - np.log10(f_sq + c[1])
                           - 0.5 * np.log10(f_sq + c[2]) - 0.5 * np.log10(f_sq + c[3]))
    return db if min_db is None else np.maximum(min_db, db)


def a_weighting_power(sample_rate: int, n_fft: int, min_db: float = -100.0) -> np.ndarray:
    """A-weighting as power gain per rfft bin of an ``n_fft`` frame (0 Hz reads ``min_db``)."""
    return 10.0 ** (a_weighting_db(np.fft.rfftfreq(n_fft, 1.0 / sample_rate), min_db=min_db) / 10.0)
