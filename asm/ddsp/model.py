"""The DDSP decoder: f0 and loudness frames -> synth controls, through a GRU (stateful when streaming)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from asm.ddsp.config import DdspConfig
from asm.ddsp.synth import (
    Reverb,
    block_controls,
    convolve,
    exp_sigmoid,
    filtered_noise,
    harmonic,
    harmonic_amplitudes,
)

NOISE_BIAS = -5.0  # DDSP's initial offset: noise starts quiet


def hz_to_unit(f0: torch.Tensor) -> torch.Tensor:
    """f0 in Hz -> MIDI pitch / 127 (the decoder's pitch input)."""
    return (69.0 + 12.0 * torch.log2(f0.clamp_min(1.0) / 440.0)) / 127.0


def db_to_unit(loudness: torch.Tensor) -> torch.Tensor:
    """A-weighted dB in [-100, 0] -> [0, 1] (the decoder's loudness input)."""
    return (loudness.clamp(-100.0, 20.0) + 100.0) / 100.0


def _mlp(n_in: int, hidden: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(2):
        layers += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.LeakyReLU()]
    return nn.Sequential(*layers)


class Decoder(nn.Module):
    """DDSP's RNN decoder: an MLP per input, a GRU over their concatenation, an MLP to the controls."""

    def __init__(self, hidden: int, n_harmonics: int, n_noise_bands: int, sample_rate: int):
        super().__init__()
        self.hidden = hidden
        self.n_harmonics = n_harmonics
        self.sample_rate = sample_rate
        self.noise_bias = NOISE_BIAS
        self.f0_mlp = _mlp(1, hidden)
        self.loud_mlp = _mlp(1, hidden)
        self.gru = nn.GRU(2 * hidden, hidden, batch_first=True)
        self.out_mlp = _mlp(3 * hidden, hidden)
        self.out = nn.Linear(hidden, 1 + n_harmonics + n_noise_bands)

    def forward(self, f0: torch.Tensor, loudness: torch.Tensor,
                state: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """f0 (B, F) Hz and loudness (B, F) dB -> (harmonic amplitudes (B, F, K), noise magnitudes (B, F, bands),
        GRU state (1, B, H))."""
        a = self.f0_mlp(hz_to_unit(f0).unsqueeze(-1))
        b = self.loud_mlp(db_to_unit(loudness).unsqueeze(-1))
        if state is None:
            state = torch.zeros(1, f0.shape[0], self.hidden, dtype=f0.dtype, device=f0.device)
        g, state = self.gru(torch.cat([a, b], -1), state)
        y = self.out(self.out_mlp(torch.cat([g, a, b], -1)))
        amplitude = exp_sigmoid(y[..., 0])
        distribution = exp_sigmoid(y[..., 1: 1 + self.n_harmonics])
        noise = exp_sigmoid(y[..., 1 + self.n_harmonics:] + self.noise_bias)
        return harmonic_amplitudes(f0, amplitude, distribution, self.sample_rate), noise, state


class DdspModel(nn.Module):
    """Decoder and reverb of one instrument (the harmonic and noise synths have no weights)."""

    def __init__(self, config: DdspConfig, seed: int = 0):
        super().__init__()
        self.config = config
        torch.manual_seed(seed)
        self.decoder = Decoder(config.hidden, config.n_harmonics, config.n_noise_bands, config.sample_rate)
        self.reverb = Reverb(config.reverb_length, config.sample_rate, seed)

    def render(self, f0: torch.Tensor, loudness: torch.Tensor, noise: torch.Tensor,
               harmonic_mix: float = 1.0, noise_mix: float = 1.0, reverb_mix: float = 1.0) -> torch.Tensor:
        """Audio (B, (F - 1) * hop) from f0 and loudness frames (B, F) and white noise (B, (F - 1) * hop)."""
        cfg = self.config
        amps, mags, _ = self.decoder(f0, loudness)
        phase0 = torch.zeros(f0.shape[0], dtype=torch.float64, device=f0.device)
        tone, _ = harmonic(f0, amps, cfg.hop, cfg.sample_rate, phase0)
        dry = harmonic_mix * tone + noise_mix * filtered_noise(noise, block_controls(mags), cfg.hop)
        return dry + reverb_mix * convolve(dry, self.reverb.response())


def shift_pitch(f0: torch.Tensor, semitones: float) -> torch.Tensor:
    return f0 * math.pow(2.0, semitones / 12.0)
