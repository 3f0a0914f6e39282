"""The audio embedding proxies regress and the preset index searches: per-band mean and standard
deviation over time of the log-mel (``asm.audio.features``), the feature datasets already store.

No pretrained audio model can be downloaded here, so the embedding is built from asm's own
features; mean and spread over time keep timbre and a coarse sense of movement, and a distance
between two embeddings is cheap (a vector of ``2 * n_mels``).
"""

from __future__ import annotations

import numpy as np
import torch

from asm.audio.features import FeatureSettings, logmel

SILENT_LOGMEL = -12.0  # a log-mel frame whose bands all lie below this (natural log power) is silence


def embed_logmel(mel: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(B, n_mels, frames) log-mel -> (B, 2 * n_mels): mean then std over the frames that sound.

    Silent frames (a render's tail) are left out, so the same sound held for a different time
    embeds alike; an all-silent example falls back to every frame.
    """
    x = torch.as_tensor(np.asarray(mel, dtype=np.float32) if isinstance(mel, np.ndarray) else mel).float()
    if x.dim() == 2:
        x = x.unsqueeze(0)
    sounding = (x.max(dim=1).values > SILENT_LOGMEL).float()  # (B, frames)
    sounding = torch.where(sounding.sum(dim=1, keepdim=True) > 0, sounding, torch.ones_like(sounding))
    w = sounding.unsqueeze(1) / sounding.sum(dim=1).view(-1, 1, 1)
    mean = (x * w).sum(dim=2)
    std = (((x - mean.unsqueeze(2)) ** 2) * w).sum(dim=2).clamp_min(1e-8).sqrt()
    return torch.cat([mean, std], dim=1)


def embed_audio(audio: np.ndarray | torch.Tensor, sample_rate: int,
                settings: FeatureSettings | None = None) -> np.ndarray:
    """(T,) or (B, T) audio -> (B, 2 * n_mels) float32 embeddings."""
    with torch.no_grad():
        return embed_logmel(logmel(audio, sample_rate, settings or FeatureSettings())).numpy()


# --- pitch-aligned spectral profile (the preset index) ------------------------------------------
PROFILE_FFT, PROFILE_HOP = 4096, 512
PROFILE_LOW = 24  # MIDI number of the lowest band (32.7 Hz); one band per semitone up to Nyquist


def _semitone_basis(sample_rate: int, n_fft: int) -> torch.Tensor:
    """Triangular filters one semitone apart (bands, bins), each spanning its neighbours' centres."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    top = int(np.floor(69 + 12 * np.log2(0.95 * sample_rate / 2 / 440.0)))
    centres = 440.0 * 2.0 ** ((np.arange(PROFILE_LOW - 1, top + 2) - 69) / 12.0)
    basis = np.zeros((len(centres) - 2, len(freqs)), np.float32)
    for b in range(1, len(centres) - 1):
        lo, mid, hi = centres[b - 1], centres[b], centres[b + 1]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        basis[b - 1] = np.clip(np.minimum(up, down), 0, None)
        if basis[b - 1].sum() == 0:  # narrower than a bin: take the nearest bin
            basis[b - 1, int(np.argmin(np.abs(freqs - mid)))] = 1.0
    return torch.from_numpy(basis)


def spectral_profile(audio: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
    """(T,) or (B, T) audio -> (B, 2, bands): mean and std over sounding frames of the log power in
    semitone bands from MIDI ``PROFILE_LOW``. A pitch shift of s semitones moves it by s bands,
    so a target and a preset rendered at different pitches compare once aligned (``profile_distance``)."""
    from asm.audio.features import power_spectrogram

    with torch.no_grad():
        power = power_spectrogram(audio, PROFILE_FFT, PROFILE_HOP)
        bands = torch.log(torch.matmul(_semitone_basis(sample_rate, PROFILE_FFT), power) + 1e-6)
        emb = embed_logmel(bands)
    return emb.view(emb.shape[0], 2, -1).numpy()


def profile_distance(target: np.ndarray, profiles: np.ndarray, shift: int) -> np.ndarray:
    """Mean absolute difference between a target profile (2, bands) and each of ``profiles``
    (N, 2, bands) rendered ``shift`` semitones above the target (compared over their common bands)."""
    n = target.shape[-1]
    s = int(shift)
    if abs(s) >= n:
        return np.full(len(profiles), np.inf)
    if s >= 0:
        t, p = target[:, : n - s], profiles[:, :, s:]
    else:
        t, p = target[:, -s:], profiles[:, :, : n + s]
    return np.abs(p - t[None]).mean(axis=(1, 2))
