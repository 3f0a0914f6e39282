"""What the page draws of a sound, computed on the server so the browser needs no DSP code: a
min/max waveform envelope, a log-frequency spectrogram as 8-bit levels, and a loudness in dB for
level-matched A/B listening."""

from __future__ import annotations

import base64

import numpy as np

from asm.audio.plots import spectrogram_db

WAVE_POINTS = 480
SPEC_BINS = 96
SPEC_FRAMES = 240
SPEC_RANGE_DB = 80.0
FMIN_HZ = 30.0


def waveform(audio: np.ndarray, points: int = WAVE_POINTS) -> dict:
    """Per-column minimum and maximum of the samples (what a waveform view draws)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.size == 0:
        x = np.zeros(1, np.float32)
    edges = np.linspace(0, len(x), min(points, len(x)) + 1).astype(int)
    lo = [float(x[a:max(b, a + 1)].min()) for a, b in zip(edges[:-1], edges[1:])]
    hi = [float(x[a:max(b, a + 1)].max()) for a, b in zip(edges[:-1], edges[1:])]
    return {"min": [round(v, 4) for v in lo], "max": [round(v, 4) for v in hi]}


def spectrogram(audio: np.ndarray, sample_rate: int, top_db: float | None = None) -> dict:
    """A log-frequency spectrogram (``SPEC_BINS`` x up to ``SPEC_FRAMES``), levels 0..255 over
    ``SPEC_RANGE_DB`` below ``top_db`` (the sound's own peak by default, so a match drawn with the
    target's top compares on one scale), row-major from the lowest band, base64."""
    times, freqs, level = spectrogram_db(audio, sample_rate)
    top = float(level.max()) if top_db is None else float(top_db)
    edges = np.geomspace(FMIN_HZ, sample_rate / 2, SPEC_BINS + 1)
    band = np.clip(np.searchsorted(freqs, edges), 1, len(freqs) - 1)
    rows = np.stack([level[a:max(b, a + 1)].max(axis=0) for a, b in zip(band[:-1], band[1:])])
    if rows.shape[1] > SPEC_FRAMES:
        cols = np.linspace(0, rows.shape[1], SPEC_FRAMES + 1).astype(int)
        rows = np.stack([rows[:, a:max(b, a + 1)].max(axis=1) for a, b in zip(cols[:-1], cols[1:])], axis=1)
    scaled = np.clip((rows - (top - SPEC_RANGE_DB)) / SPEC_RANGE_DB, 0, 1) * 255
    data = np.ascontiguousarray(scaled.astype(np.uint8))
    return {"bins": int(data.shape[0]), "frames": int(data.shape[1]), "top_db": round(top, 2),
            "seconds": round(len(audio) / sample_rate, 4), "fmin": FMIN_HZ, "fmax": sample_rate / 2,
            "data": base64.b64encode(data.tobytes()).decode("ascii")}


def loudness_db(audio: np.ndarray) -> float:
    """RMS level in dBFS over the part of the sound within 40 dB of its loudest 50 ms (silence
    does not count), so two sounds of different lengths play equally loud after matching."""
    x = np.asarray(audio, dtype=np.float64)
    n = max(1, len(x) // 400)
    frames = x[: len(x) // n * n].reshape(-1, n) if len(x) >= n else x[None]
    power = (frames ** 2).mean(axis=1)
    if not np.any(power > 0):
        return -120.0
    loud = power[power >= power.max() * 1e-4]
    return round(float(10 * np.log10(loud.mean())), 2)


def picture(audio: np.ndarray, sample_rate: int, top_db: float | None = None) -> dict:
    """Everything the page shows of one sound."""
    return {"waveform": waveform(audio), "spectrogram": spectrogram(audio, sample_rate, top_db),
            "loudness_db": loudness_db(audio), "seconds": round(len(audio) / sample_rate, 4),
            "sample_rate": int(sample_rate)}
