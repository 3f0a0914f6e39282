"""The DDSP synth, offline (whole signals): harmonic oscillator bank, filtered noise, learned reverb.

Frame controls are ``(B, F, C)`` with frame ``t`` centred on sample ``t * hop``; they render the
``(F - 1) * hop`` samples between the first and the last frame. Every function here is the offline
reference of a streaming module in ``asm.ddsp.stream``, which must reproduce it in buffers.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (TorchScript has no int.bit_length)."""
    size = 1
    while size < n:
        size *= 2
    return size


def exp_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """DDSP's positive output nonlinearity: 2 sigmoid(x)^ln(10) + 1e-7 (gentle in dB, bounded)."""
    return 2.0 * torch.sigmoid(x).pow(math.log(10.0)) + 1e-7


def harmonic_amplitudes(f0: torch.Tensor, amplitude: torch.Tensor, distribution: torch.Tensor,
                        sample_rate: int) -> torch.Tensor:
    """Per-harmonic amplitudes (B, F, K): the distribution zeroed at and above Nyquist, renormalised, scaled."""
    k = torch.arange(1, distribution.shape[-1] + 1, device=f0.device, dtype=f0.dtype)
    audible = (f0.unsqueeze(-1) * k < 0.5 * sample_rate).to(distribution.dtype)
    dist = distribution * audible
    dist = dist / dist.sum(-1, keepdim=True).clamp_min(1e-7)
    return amplitude.unsqueeze(-1) * dist


def upsample(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """Frame controls (B, F, C) -> per-sample controls (B, (F - 1) * hop, C), linear between frames."""
    w = torch.arange(hop, device=frames.device, dtype=frames.dtype).div(hop).view(1, 1, hop, 1)
    a, b = frames[:, :-1].unsqueeze(2), frames[:, 1:].unsqueeze(2)
    out = a + (b - a) * w
    return out.reshape(frames.shape[0], -1, frames.shape[-1])


def harmonic(f0: torch.Tensor, amps: torch.Tensor, hop: int, sample_rate: int,
             phase0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The oscillator bank: f0 (B, F) and amps (B, F, K) frames -> (audio (B, N), end phase (B,) in float64).

    The phase accumulates in float64 from ``phase0`` and is wrapped before the harmonics multiply it, so
    a stream of blocks and one long signal agree to float32 precision.
    """
    f0_up = upsample(f0.unsqueeze(-1), hop).squeeze(-1).double()
    amps_up = upsample(amps, hop)
    omega = f0_up * (2.0 * math.pi / sample_rate)
    phase = phase0.unsqueeze(-1) + torch.cumsum(omega, -1)
    wrapped = torch.remainder(phase, 2.0 * math.pi).to(amps.dtype)
    k = torch.arange(1, amps.shape[-1] + 1, device=amps.device, dtype=amps.dtype)
    audio = (torch.sin(wrapped.unsqueeze(-1) * k) * amps_up).sum(-1)
    return audio, torch.remainder(phase[:, -1], 2.0 * math.pi)


def noise_filters(magnitudes: torch.Tensor) -> torch.Tensor:
    """Per-block FIR filters (B, M, 2 (bands - 1)) from band magnitudes: zero phase, centred, Hann windowed."""
    ir = torch.fft.irfft(magnitudes.to(torch.complex64))
    size = ir.shape[-1]
    ir = torch.roll(ir, size // 2, -1) * torch.hann_window(size, device=ir.device, dtype=ir.dtype)
    return ir


def noise_blocks(noise: torch.Tensor, magnitudes: torch.Tensor, hop: int) -> torch.Tensor:
    """Each ``hop`` block of white noise (B, M * hop) through its own filter: (B, M, hop + taps - 1) tails."""
    filters = noise_filters(magnitudes)
    b, m, taps = filters.shape
    size = hop + taps - 1
    n_fft = next_pow2(size)
    blocks = noise.reshape(b, m, hop)
    out = torch.fft.irfft(torch.fft.rfft(blocks, n_fft) * torch.fft.rfft(filters, n_fft), n_fft)
    return out[..., :size]


def overlap_add(blocks: torch.Tensor, hop: int) -> torch.Tensor:
    """(B, M, L) blocks starting every ``hop`` samples -> (B, (M - 1) * hop + L)."""
    b, m, length = blocks.shape
    total = (m - 1) * hop + length
    return nn.functional.fold(blocks.transpose(1, 2), (1, total), (1, length), stride=(1, hop)).reshape(b, total)


def filtered_noise(noise: torch.Tensor, magnitudes: torch.Tensor, hop: int) -> torch.Tensor:
    """Filtered noise (B, M * hop) from noise (B, M * hop) and per-block magnitudes (B, M, bands); causal
    (the filters' half length is a fixed delay, not a look-ahead)."""
    return overlap_add(noise_blocks(noise, magnitudes, hop), hop)[:, : noise.shape[-1]]


def block_controls(frames: torch.Tensor) -> torch.Tensor:
    """Controls of the block between frames t and t + 1: their mean (B, F, C) -> (B, F - 1, C)."""
    return 0.5 * (frames[:, :-1] + frames[:, 1:])


def convolve(audio: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """``audio`` (B, N) convolved with ``ir`` (L,), the first N samples (FFT convolution)."""
    n = audio.shape[-1] + ir.shape[-1] - 1
    n_fft = next_pow2(n)
    return torch.fft.irfft(torch.fft.rfft(audio, n_fft) * torch.fft.rfft(ir, n_fft), n_fft)[:, : audio.shape[-1]]


class Reverb(nn.Module):
    """A learned impulse response (decaying noise at the start), added to the dry signal."""

    def __init__(self, length: int, sample_rate: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        t = torch.arange(length) / sample_rate
        start = (torch.rand(length, generator=g) * 2 - 1) * torch.exp(-t / 0.05) * 0.05
        self.ir = nn.Parameter(start)

    def response(self) -> torch.Tensor:
        """The impulse response with its first sample zeroed (the dry path carries it)."""
        return torch.cat([torch.zeros(1, dtype=self.ir.dtype, device=self.ir.device), self.ir[1:]])

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return audio + convolve(audio, self.response())
