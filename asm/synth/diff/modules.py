"""The building blocks of differentiable twins: small torch functions, one per synth module.

Every function works on batches: signals are ``(N, T)`` tensors, per-voice controls ``(N, 1)`` (they
broadcast over time) or ``(N, T)`` when they move. Choices (waveform, filter mode, LFO shape) take
weights ``(N, n_choices)``: a one-hot row is the hard choice, a soft row mixes the choices' outputs,
so gradients reach an estimator's logits. Each function computes the same math as the Faust code
of asm-sub (asm/synth/faust/asm_sub.dsp) or the Faust library it calls (noted per function), so a
twin built from them follows the real synth to float precision. Recursive filters run through
torchlpc (a C++/CUDA time-varying all-pole filter with an analytic backward pass), never a Python
loop over samples.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

WAVES = ("saw", "square", "triangle", "sine")
FILTER_MODES = ("lowpass", "bandpass", "highpass")
LFO_SHAPES = ("sine", "triangle", "saw", "square")


def frac(x: Tensor) -> Tensor:
    """``ma.frac``: the fractional part (its gradient is 1, as for the phase it wraps)."""
    return x - torch.floor(x).detach()


PHASE_GRID = 2.0 ** 23  # phase increments are whole multiples of 2^-23 cycles


def phase_increment(freq: Tensor, sample_rate: float) -> Tensor:
    """``rint(f / ma.SR * 2^23) / 2^23`` as the Faust build computes it (float32), gradient passed straight through.

    On that grid every float32 phase sum below 2 is exact, so the DSP's phase and the twin's agree.
    """
    raw = freq / sample_rate
    grid = torch.round(freq.float() / torch.tensor(float(sample_rate), dtype=torch.float32) * PHASE_GRID)
    return raw + (grid.to(raw.dtype) / PHASE_GRID - raw).detach()


def phasor(freq: Tensor, sample_rate: float, n_samples: int) -> Tensor:
    """asm-sub's ``phasor(f)``: the phase after each sample's (grid-rounded) increment.

    The running sum is taken in float64, where sums of multiples of 2^-23 are exact.
    """
    inc = phase_increment(freq, sample_rate).expand(freq.shape[0], n_samples)
    return frac(torch.cumsum(inc.double(), dim=-1)).to(freq.dtype)


def polyblep(t: Tensor, dt: Tensor) -> Tensor:
    """The two-sample polynomial band-limited step residual around the phase wrap."""
    d = dt.clamp_min(1e-9)
    u, v = t / d, (t - 1) / d
    zero = torch.zeros((), dtype=t.dtype, device=t.device)
    return torch.where(t < dt, 2 * u - u * u - 1, torch.where(t > 1 - dt, v * v + 2 * v + 1, zero))


def saw(t: Tensor, dt: Tensor) -> Tensor:
    return 2 * t - 1 - polyblep(t, dt)


def pulse(t: Tensor, dt: Tensor, width: Tensor) -> Tensor:
    """A band-limited pulse as the difference of two saws, offset so its mean is zero."""
    return saw(t, dt) - saw(frac(t + 1 - width), dt) + 1 - 2 * width


def triangle(t: Tensor) -> Tensor:
    return 1 - 4 * torch.abs(t - 0.5)


def sine(t: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * t)


def mix_choices(weights: Tensor, outputs: list[Tensor]) -> Tensor:
    """Weighted sum of the choices' outputs; a one-hot row selects one (``ba.selectn``)."""
    total = 0
    for i, out in enumerate(outputs):
        total = total + weights[:, i : i + 1] * out
    return total


def oscillator(freq: Tensor, wave: Tensor, width: Tensor, sample_rate: float, n_samples: int) -> Tensor:
    """One phasor, four waveforms (saw, pulse, triangle, sine) mixed by ``wave`` (N, 4)."""
    t = phasor(freq, sample_rate, n_samples)
    dt = (freq / sample_rate).expand_as(t)
    return mix_choices(wave, [saw(t, dt), pulse(t, dt, width), triangle(t), sine(t)])


def lfo(rate: Tensor, shape: Tensor, sample_rate: float, n_samples: int) -> Tensor:
    """The LFO of asm-sub: sine, triangle, saw or square of one phasor, mixed by ``shape`` (N, 4)."""
    t = phasor(rate, sample_rate, n_samples)
    square = torch.where(t < 0.5, torch.ones_like(t), -torch.ones_like(t))
    return mix_choices(shape, [sine(t), triangle(t), 2 * t - 1, square])


@lru_cache(maxsize=4)
def _lcg(n_samples: int) -> np.ndarray:
    """``no.noise``'s 32-bit linear congruential sequence (seed 12345), as Faust computes it.

    One block by recursion, then whole blocks at once: B steps of ``x -> a x + c`` are the affine map
    ``x -> a^B x + s[B-1]`` (mod 2^32; uint64 products wrap mod 2^64, which keeps the low 32 bits).
    """
    block, mask = 4096, np.uint64(0xFFFFFFFF)
    first = np.empty(block, dtype=np.uint64)
    r = 0
    for i in range(block):
        r = (r * 1103515245 + 12345) & 0xFFFFFFFF
        first[i] = r
    a_block = np.uint64(pow(1103515245, block, 1 << 32))
    blocks = [first]
    while sum(len(b) for b in blocks) < n_samples:
        blocks.append((blocks[-1] * a_block + first[-1]) & mask)
    seq = np.concatenate(blocks)[:n_samples].astype(np.int64)
    return np.where(seq >= 1 << 31, seq - (1 << 32), seq)


def noise(n_voices: int, n_samples: int, dtype: torch.dtype, device) -> Tensor:
    """``no.noise``: every voice starts the same LCG at its note-on, so this is exact, not statistical."""
    seq = torch.from_numpy(_lcg(n_samples) / 2147483647.0).to(dtype=dtype, device=device)
    return seq.expand(n_voices, n_samples)


def adsr(attack: Tensor, decay: Tensor, sustain: Tensor, release: Tensor, gate_samples: Tensor,
         sample_rate: float, n_samples: int) -> Tensor:
    """Faust's ``en.adsr`` in closed form, for a gate that is on for ``gate_samples`` (N, 1) samples.

    Linear attack to 1, linear decay to the sustain level, and on note-off the held value scaled by a
    linear ramp from 1 to 0 over the release time (``ADS * (1 - R) : max(0)`` in envelopes.lib).
    """
    n = torch.arange(n_samples, device=attack.device, dtype=attack.dtype).unsqueeze(0)
    gate_len = gate_samples.to(attack.dtype)
    atime = torch.minimum(n + 1, gate_len)  # counts while the gate is on, then holds
    rtime = (n + 1 - gate_len).clamp_min(0)  # counts from the first sample with the gate off
    an = (attack * sample_rate).clamp_min(1)
    dn = (decay * sample_rate).clamp_min(1)
    rn = (release * sample_rate).clamp_min(1)
    a = atime / an
    d = 1 - (atime - an) * (1 - sustain) / dn
    ads = torch.minimum(a, torch.maximum(d, sustain))
    return (ads * (1 - rtime / rn)).clamp_min(0)


def fir2(x: Tensor, b0: Tensor, b1: Tensor, b2: Tensor) -> Tensor:
    """``b0 x + b1 x' + b2 x''`` with per-sample coefficients."""
    x1 = torch.nn.functional.pad(x, (1, 0))[:, :-1]
    x2 = torch.nn.functional.pad(x, (2, 0))[:, :-2]
    return b0 * x + b1 * x1 + b2 * x2


def all_pole(x: Tensor, a: Tensor) -> Tensor:
    """``y[n] = x[n] - sum_k a[n, k] y[n-1-k]`` (time-varying, zero initial state) through torchlpc."""
    from torchlpc import sample_wise_lpc

    return sample_wise_lpc(x, a)


def biquad(x: Tensor, cutoff: Tensor, q: Tensor, mode: Tensor, sample_rate: float) -> Tensor:
    """asm-sub's filter: direct-form-I biquad with RBJ-cookbook coefficients computed every sample.

    ``mode`` (N, 3) weighs lowpass, bandpass (peak gain Q) and highpass. The three share their poles,
    so a soft mode is the filter whose numerator is the weighted numerator, and a one-hot mode is
    exactly the Faust filter.
    """
    w0 = 2 * math.pi * cutoff / sample_rate
    cs, sn = torch.cos(w0), torch.sin(w0)
    alpha = sn / (2 * q)
    a0 = 1 + alpha
    lp, bp, hp = mode[:, 0:1], mode[:, 1:2], mode[:, 2:3]
    b0 = (lp * (1 - cs) / 2 + bp * sn / 2 + hp * (1 + cs) / 2) / a0
    b1 = (lp * (1 - cs) - hp * (1 + cs)) / a0
    b2 = (lp * (1 - cs) / 2 - bp * sn / 2 + hp * (1 + cs) / 2) / a0
    poles = torch.stack([-2 * cs / a0, (1 - alpha) / a0], dim=-1)
    return all_pole(fir2(x, b0, b1, b2), poles.expand(x.shape[0], x.shape[1], 2).contiguous())


def dc_blocker(x: Tensor) -> Tensor:
    """``fi.dcblocker = zero(1) : pole(0.995)``."""
    diff = x - torch.nn.functional.pad(x, (1, 0))[:, :-1]
    pole = torch.full((x.shape[0], x.shape[1], 1), -0.995, dtype=x.dtype, device=x.device)
    return all_pole(diff, pole)


def drive(x: Tensor, gain: Tensor, output_gain: Tensor) -> Tensor:
    """Gain into ``tanh`` saturation, then the output level."""
    return torch.tanh(x * gain) * output_gain


def mixer(signals: list[Tensor], levels: list[Tensor], scale: float = 1.0) -> Tensor:
    """Sum of signals times their levels, times a fixed headroom scale."""
    total = 0
    for s, level in zip(signals, levels):
        total = total + s * level
    return total * scale


def db_to_linear(db: Tensor) -> Tensor:
    return torch.pow(10.0, db / 20)


def log_map(lo: float, hi: float, v: Tensor) -> Tensor:
    """``logmap(lo, hi, v) = lo * pow(hi / lo, v)`` of the .dsp."""
    return lo * torch.pow(hi / lo, v)


def one_hot_choice(v: Tensor, n: int) -> Tensor:
    """A hard normalised choice as Faust reads it, ``int(v * (n - 1) + 0.5)``, as one-hot weights."""
    index = torch.floor(v.detach() * (n - 1) + 0.5).long().clamp(0, n - 1)
    return torch.nn.functional.one_hot(index, n).to(v.dtype)


def steps(v: Tensor, n: int) -> Tensor:
    """A stepped control as Faust reads it (``choice(n)``): an integer 0..n-1 (no gradient)."""
    return torch.floor(v.detach() * (n - 1) + 0.5).clamp(0, n - 1)
