"""asm's ``perceptual`` distance as a differentiable torch loss, for gradients through a synth's twin.

Same definition as ``asm.audio.metrics`` (mel-band amplitudes at 128, 64, 32 ms, smoothed over 3 frames, a floor 60 dB under
the target's loudest band, linear plus log terms, plus the noise term on the 64 ms power's gated
spectral flatness), written without in-place operations so autograd
can run through it, and with the target analysed once. ``PerceptualLoss(target, sr)(audio)`` equals
``distances(audio, target, sr, ["perceptual"])`` for usable audio (tested), so what a refinement
descends is the metric the search chooses by; only the real render's score counts, though.

The target is one sound (T,) for every candidate row, or one per row (B, T) (spectral training of
estimators, ``asm.models.spectral``). ``MultiResolutionSTFTLoss`` is the ``mr-stft`` metric the same way.
"""

from __future__ import annotations

import numpy as np
import torch

from asm.audio.analysis import flatness_from_power
from asm.audio.metrics import (
    HOP_DIVISOR,
    MAG_FLOOR,
    MR_RESOLUTIONS_MS,
    NOISINESS_RESOLUTION_MS,
    PERCEPTUAL_FLOOR_DB,
    PERCEPTUAL_MELS,
    PERCEPTUAL_RESOLUTIONS_MS,
    _band_basis,
    _norm,
    frame_length,
    noise_excess,
    smooth_frames,
)

_NOISE = PERCEPTUAL_RESOLUTIONS_MS.index(NOISINESS_RESOLUTION_MS)  # the resolution whose power the noise term reads


class PerceptualLoss:
    """Per-row ``perceptual`` distance (B,) of candidate audio (B, T) to one target (T,) or to one target
    per row (B, T), differentiable."""

    def __init__(self, target: np.ndarray | torch.Tensor, sample_rate: int, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.sr, self.device, self.dtype = int(sample_rate), torch.device(device), dtype
        y = _as_rows(target, self.device, dtype)
        self.n_samples = y.shape[-1]
        self._res, powers_y = [], []
        for ms in PERCEPTUAL_RESOLUTIONS_MS:
            n = frame_length(self.sr, ms)
            window = torch.hann_window(n, dtype=dtype, device=self.device)
            basis = _band_basis(self.sr, n, PERCEPTUAL_MELS[ms]).clone().to(self.device, dtype)  # a cached tensor,
            # perhaps made in inference mode: a copy can join autograd
            power_y, ay = self._bands(y, n, window, basis)
            powers_y.append(power_y)
            floor = (ay.amax(dim=(1, 2), keepdim=True) * 10 ** (PERCEPTUAL_FLOOR_DB / 20)).clamp_min(1e-12)
            self._res.append((n, window, basis, ay, floor, torch.maximum(ay, floor).log(),
                              ay.sum(dim=(1, 2)).clamp_min(1e-12)))
        self.flat_y = flatness_from_power(powers_y[_NOISE], self.sr)

    def _bands(self, x: torch.Tensor, n: int, window: torch.Tensor, basis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(power spectrogram, mel-band amplitudes) of ``x`` at frame length ``n``."""
        spec = torch.stft(x, n, n // HOP_DIVISOR, window=window, center=True, pad_mode="constant",
                          return_complex=True)
        power = spec.real.square() + spec.imag.square()
        return power, smooth_frames(torch.matmul(basis, power)).clamp_min(1e-18).sqrt() * _norm(n)

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio`` (B, T) with T at most the target's length (a shorter one is zero-padded, as in the metric)."""
        x = audio.to(self.dtype)
        if x.shape[-1] > self.n_samples:
            raise ValueError(f"candidates of {x.shape[-1]} samples are longer than the target ({self.n_samples})")
        x = torch.nn.functional.pad(x, (0, self.n_samples - x.shape[-1]))
        total, powers = 0.0, []
        for n, window, basis, ay, floor, log_y, sum_y in self._res:
            power, ax = self._bands(x, n, window, basis)
            lin = (ax - ay).abs().sum(dim=(1, 2)) / sum_y
            log = (torch.maximum(ax, floor).log() - log_y).abs().mean(dim=(1, 2))
            total = total + lin + log
            powers.append(power)
        noise = noise_excess(flatness_from_power(powers[_NOISE], self.sr), self.flat_y).to(self.dtype)
        return total / len(self._res) + noise


def _as_rows(target, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A target (T,) as one row (1, T); targets (B, T) as they are."""
    y = torch.as_tensor(target if isinstance(target, torch.Tensor) else np.asarray(target, dtype=np.float32))
    y = y.detach().to(device, dtype)
    return y.reshape(1, -1) if y.ndim == 1 else y


class MultiResolutionSTFTLoss:
    """Per-row ``mr-stft`` distance (B,) (``asm.audio.metrics``: spectral convergence plus mean |log
    magnitude difference| at 128, 64, 32 and 16 ms, averaged) to one target (T,) or one per row (B, T),
    differentiable; the target is analysed once."""

    def __init__(self, target: np.ndarray | torch.Tensor, sample_rate: int, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.sr, self.device, self.dtype = int(sample_rate), torch.device(device), dtype
        y = _as_rows(target, self.device, dtype)
        self.n_samples = y.shape[-1]
        self._res = []
        for ms in MR_RESOLUTIONS_MS:
            n = frame_length(self.sr, ms)
            window = torch.hann_window(n, dtype=dtype, device=self.device)
            power_y = self._power(y, n, window)
            mag_y = power_y.clamp_min(1e-24).sqrt()
            log_floor = (MAG_FLOOR / _norm(n)) ** 2
            self._res.append((n, window, log_floor, mag_y, torch.linalg.vector_norm(mag_y, dim=(1, 2)).clamp_min(1e-12),
                              power_y.clamp_min(log_floor).log()))

    @staticmethod
    def _power(x: torch.Tensor, n: int, window: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x, n, n // HOP_DIVISOR, window=window, center=True, pad_mode="constant",
                          return_complex=True)
        return spec.real.square() + spec.imag.square()

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio.to(self.dtype)
        if x.shape[-1] > self.n_samples:
            raise ValueError(f"candidates of {x.shape[-1]} samples are longer than the target ({self.n_samples})")
        x = torch.nn.functional.pad(x, (0, self.n_samples - x.shape[-1]))
        total = 0.0
        for n, window, log_floor, mag_y, norm_y, log_y in self._res:
            power = self._power(x, n, window)
            mag = power.clamp_min(1e-24).sqrt()  # clamped: sqrt's gradient at 0 is infinite
            sc = torch.linalg.vector_norm(mag_y - mag, dim=(1, 2)) / norm_y
            lm = (power.clamp_min(log_floor).log() - log_y).abs().mean(dim=(1, 2)) * 0.5
            total = total + sc + lm
        return total / len(self._res)
