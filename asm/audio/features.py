"""Features computed in batches with torch (no librosa JIT on the hot path).

The same code serves dataset generation, training, search objectives and evaluation. Settings are
stored with every dataset and model so a model always sees features computed the way it was trained.
MFCCs are a fixed linear map (DCT) of the log-mel, so datasets store only the log-mel.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

LOG_FLOOR = 1e-6


class FeatureSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["logmel"] = "logmel"
    n_fft: int = Field(1024, ge=64, le=16384)
    hop: int = Field(256, ge=16, le=8192)
    n_mels: int = Field(64, ge=8, le=512)
    n_mfcc: int = Field(20, ge=4, le=128)
    fmin: float = Field(20.0, ge=0)
    fmax: float | None = Field(None, description="defaults to the Nyquist frequency")

    def frames(self, n_samples: int) -> int:
        """Number of frames for ``n_samples`` of audio (centred STFT)."""
        return n_samples // self.hop + 1


@lru_cache(maxsize=32)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> torch.Tensor:
    from asm.audio.filters import mel_filters

    return torch.from_numpy(mel_filters(sample_rate, n_fft, n_mels, fmin=fmin, fmax=fmax))


@lru_cache(maxsize=8)
def _dct_basis(n_mels: int, n_mfcc: int) -> torch.Tensor:
    from scipy.fft import dct

    return torch.from_numpy(dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc]).float()


@lru_cache(maxsize=8)
def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft)


def as_batch(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(T,) or (B, T) audio of any float/int16 dtype as a float32 (B, T) tensor."""
    x = audio if isinstance(audio, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(audio))
    if x.dtype == torch.int16:
        x = x.float() / 32768.0
    x = x.float()
    return x.unsqueeze(0) if x.dim() == 1 else x


def power_spectrogram(audio: np.ndarray | torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """|STFT|^2 (B, n_fft // 2 + 1, frames): periodic Hann window of n_fft, centred, zero-padded."""
    x = as_batch(audio)
    spec = torch.stft(x, n_fft, hop, window=_window(n_fft).to(x.device), center=True, pad_mode="constant",
                      return_complex=True)
    return (spec * spec.conj()).real  # 5x faster than .abs().pow(2) on the CPU


def logmel_from_power(power: torch.Tensor, sample_rate: int, settings: FeatureSettings) -> torch.Tensor:
    """Natural-log mel spectrogram from a ``power_spectrogram`` computed with ``settings``' n_fft and hop."""
    basis = _mel_basis(sample_rate, settings.n_fft, settings.n_mels, settings.fmin, settings.fmax).to(power.device)
    return torch.log(torch.matmul(basis, power) + LOG_FLOOR)


def logmel(audio: np.ndarray | torch.Tensor, sample_rate: int, settings: FeatureSettings) -> torch.Tensor:
    """Natural-log mel spectrogram, shape (B, n_mels, frames).

    The centred, zero-padded STFT is computed as framed real FFTs (identical to ``torch.stft``) laid
    out (B, frames, bins), so the power is re^2 + im^2 and the mel projection is one matrix product:
    about 25% less CPU time than ``logmel_from_power(power_spectrogram(...))``, which it equals to
    ~1e-6 (dataset generation computes a log-mel for every render).
    """
    x = as_batch(audio)
    n_fft, hop = settings.n_fft, settings.hop
    frames = torch.nn.functional.pad(x, (n_fft // 2, n_fft // 2)).unfold(-1, n_fft, hop)
    spec = torch.fft.rfft(frames * _window(n_fft).to(x.device), dim=-1)  # (B, frames, bins)
    power = spec.real.square() + spec.imag.square()
    basis = _mel_basis(sample_rate, n_fft, settings.n_mels, settings.fmin, settings.fmax).to(x.device)
    return torch.log(torch.matmul(power, basis.T) + LOG_FLOOR).transpose(-1, -2).contiguous()


def mfcc_from_logmel(mel: torch.Tensor, n_mfcc: int) -> torch.Tensor:
    """MFCCs (B, n_mfcc, frames) from a log-mel (B, n_mels, frames)."""
    return torch.matmul(_dct_basis(mel.shape[-2], n_mfcc).to(mel.device, mel.dtype), mel)


def features(audio: np.ndarray | torch.Tensor, sample_rate: int, settings: FeatureSettings) -> torch.Tensor:
    """The dataset feature for ``settings.kind`` (currently the log-mel)."""
    return logmel(audio, sample_rate, settings)


def example_logmel(audio: np.ndarray, sample_rate: int, example_rate: int, n_samples: int,
                   settings: FeatureSettings) -> torch.Tensor:
    """A target's log-mel as a dataset stored its examples': resampled to ``example_rate``, cut or
    zero-padded to ``n_samples``, ``settings``' mel; shape (1, n_mels, frames). Neighbour search and
    proxy screens compare a target with examples through it."""
    from asm.audio.io import resample

    x = resample(np.asarray(audio, dtype=np.float32), int(sample_rate), int(example_rate))
    fixed = np.zeros(int(n_samples), dtype=np.float32)
    fixed[: min(len(x), int(n_samples))] = x[: int(n_samples)]
    return logmel(fixed[None], int(example_rate), settings)
