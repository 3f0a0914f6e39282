"""Audio distances between renders and a target: the one metric module of asm.

Every score in asm (``test-model``, search objectives, benchmark tables) comes from here, so the
definitions below are what the tables cite. All distances are >= 0, 0 for identical audio, and
lower is better. They are computed in batches with torch on the CPU: B candidates against one
target (the search), or B candidates against B targets pairwise (evaluation).

Conventions shared by every metric
----------------------------------
* Input: mono audio at one sample rate ``sr``, shape (T,) or (B, T), float (or int16 scaled by
  1/32768). The target is the *reference* ``y``; the candidate is ``x``.
* Lengths: the shorter signal is zero-padded at its end to the longer one (nothing is ever trimmed,
  so sound a candidate has beyond the target's end counts against it).
* Frames: a resolution of ``ms`` milliseconds uses a periodic Hann window of
  ``N = frame_length(sr, ms)`` samples (``sr * ms / 1000`` rounded to a multiple of 16; at 16 kHz
  exactly 2048, 1024, 512, 256 for 128, 64, 32, 16 ms), FFT size N, hop N/2 (Hann windows at
  50 % overlap weight every sample equally; 75 % would double the cost for no new information in
  a distance), frames centred with zero padding (``torch.stft(center=True, pad_mode="constant")``),
  so a signal of T samples has ``T // (N/2) + 1`` frames.
* Magnitudes are normalised so a sinusoid of amplitude A (at a bin centre) reads A in its bin:
  ``M = 2 |STFT| / sum(window)``. Log magnitudes are ``ln(max(M, MAG_FLOOR))`` with
  ``MAG_FLOOR = 1e-5`` (-100 dB re a full-scale sinusoid), so differences below -100 dB, inaudible,
  do not count.
* Unusable audio: a pair in which either signal is non-finite (NaN/inf) or silent (peak below
  ``asm.audio.signal.SILENCE_PEAK`` = 1e-4, -80 dBFS) scores the metric's documented ``worst``
  value (``METRICS[name].worst``), never NaN. Usable pairs are clipped to at most ``worst``, so an
  unusable render never ranks above a usable one.

Metrics (name: definition; unit)
--------------------------------
* ``mr-stft`` (multi-resolution STFT distance, as auraloss' MultiResolutionSTFTLoss and DDSP's
  multi-scale spectral loss): over the resolutions R = 128, 64, 32, 16 ms,
  ``mean_r [ SC_r + mean_{f,t} |ln max(M_x,floor) - ln max(M_y,floor)| ]``; unitless; worst 100.
* ``spectral-convergence``: ``mean_r SC_r`` with ``SC_r = ||M_y - M_x||_F / ||M_y||_F`` (Frobenius
  norms over frequency and time at resolution r); unitless, normalised by the target, so not
  symmetric; worst 100.
* ``log-spectral`` (log-spectral distance, LSD): at the 64 ms resolution,
  ``mean_t sqrt( mean_f (20 log10 max(M_x,floor) - 20 log10 max(M_y,floor))^2 )``; dB; worst 200.
* ``mfcc``: MFCCs from ``asm.audio.features`` (log-mel with natural log and power floor 1e-6,
  64 mel bands 20 Hz..Nyquist, orthonormal DCT-II, 20 coefficients including c0) with n_fft = the
  64 ms frame length and hop n_fft/2 (at 16 kHz: n_fft 1024, hop 512; the same STFT as the 64 ms
  resolution above, so it is computed once);
  ``mean_t ||c_x(t) - c_y(t)||_2``; unit: log-mel (nepers) after the orthonormal DCT; worst 1000.
* ``loudness-envelope``: at the 32 ms resolution (hop 16 ms), the A-weighted mean-square power of
  each frame ``P(t) = sum_f a(f) M(f,t)^2 / (2 ENBW)`` (``a`` = IEC 61672 A-weighting as power gain
  as ``librosa.A_weighting``, ``asm.audio.filters``; ENBW = N sum(w^2) / sum(w)^2 bins), so a full-scale sine at 1 kHz
  reads -3 dB; ``L(t) = 10 log10 max(P(t), 1e-10)`` (floor -100 dB); distance
  ``mean_t |L_x(t) - L_y(t)|``; dB; worst 200.

The AutoSoundMatch objectives (its NSGA-II trio), each a Euclidean distance as in its
``_evaluate``, divided by a constant that depends only on the length (so values do not grow with
duration; for a given target the ordering and Pareto ranking are those of the original):
* ``fft-magnitude``: ``|| |rfft(x)| - |rfft(y)| ||_2 / T`` over the whole signal (T samples).
* ``stft-magnitude``: ``|| |S_x| - |S_y| ||_F / (1024 sqrt(n_frames))`` with S the STFT with
  n_fft 1024, hop 512, rectangular window (torch.stft's default) in samples whatever the rate;
  centred frames with zero padding (AutoSoundMatch padded by reflection: only edge frames differ).
* ``amplitude-envelope``: the magnitude of the analytic signal (FFT Hilbert transform, as
  ``scipy.signal.hilbert``) low-passed by an RBJ biquad at 10 Hz, Q = 1/sqrt(2) (torchaudio's
  ``lowpass_biquad``, here without its [-1, 1] output clamp), then ``||e_x - e_y||_2 / sqrt(T)``.
All three are in amplitude units (1 = full scale); worst 100.

asm's perceptual distance, the headline metric (``HEADLINE_METRIC``):
* ``perceptual``: over the resolutions R = 128, 64, 32 ms (the STFTs above), mel-band amplitudes
  ``A = k sqrt(smooth(mel @ |STFT|^2))`` (triangular mel filters of peak 1, ``PERCEPTUAL_MELS[r]`` = 32,
  24, 16 bands, about the ear's critical bands, 20 Hz..Nyquist, so a sinusoid reads its amplitude and noise its band's RMS;
  ``smooth`` averages each band's power over ``PERCEPTUAL_SMOOTH_FRAMES`` = 3 consecutive frames), a floor relative to
  the *target's* own level: ``f_r = max(A_y) * 10^(PERCEPTUAL_FLOOR_DB / 20)`` (-60 dB re the
  target's loudest band and frame, per resolution and per target), then
  ``mean_r [ sum|A_x - A_y| / sum A_y + mean_{b,t} |ln max(A_x,f_r) - ln max(A_y,f_r)| ]``
  plus a noise term ``w max(0, log10 F_x - log10 F_y - log10 s)`` on the gated spectral flatness F of
  the 64 ms power (the ``noisiness`` below; ``w = PERCEPTUAL_NOISE_WEIGHT`` = 0.5 per decade,
  ``s = PERCEPTUAL_NOISE_SLACK`` = 2: a candidate up to 2x noisier than the target pays nothing);
  unitless, not symmetric (the floor, the linear term and the noise term are the target's); worst 100.
  Why: the log term of ``mr-stft`` weighs every bin equally down to -100 dB, so in a target with a
  soft noise floor broadband noise lowers it though it sounds wrong, and at 16 ms it reads the
  beating of unresolved partials, so two renders of one random-phase preset differ by ~1. Bands
  sum power over bins (insensitive to the partials' phases), the relative floor ignores what lies
  60 dB under the target, and the linear term (as DDSP's) weighs the loud parts that are heard.
  The 3-frame average (48 ms at the 32 ms resolution) steadies the power of a noise band, whose
  one-frame estimate from a few bins scatters by tens of percent, so two renders of a noise
  preset no longer differ by more than a 0.79x attack does; it lifted ``metric-sanity``'s phase
  ratio from 1.10 to below 1 and its attack and decay orderings.
  The noise term is one-sided: band amplitudes average over the bins of a band, so noise that fills
  the gaps between a target's partials at a level under them costs little in the band terms,
  while a listener hears a hiss or a breathy wash. Without it 31 % of hybrid's matches of the
  out-of-domain instrument notes were at least 3x noisier than their target (issue 14); with it,
  none were, and their ``mr-stft`` improved too (``asm benchmark``'s ood table). A candidate less
  noisy than its target pays nothing here: the band terms already see missing noise.
  Judged by ``asm perf metric-sanity`` (controlled degradations, asm.audio.degrade).
* ``noisiness``: the gated spectral flatness of ``asm.audio.analysis.flatness_from_power`` on the
  64 ms power spectrogram (mean flatness of frames within 30 dB of the loudest; 0 = pure partials,
  1 = white noise; floored at ``NOISINESS_MIN`` = 1e-6) as ``|log10 flatness_x - log10 flatness_y|``; decades;
  worst 6. It sees noise that fills the gaps between partials; a report metric, not an objective
  (it is blind to envelopes and level by design).

Objective sets (``OBJECTIVE_SETS``): ``asm`` = perceptual, loudness-envelope, mfcc (asm's search
default since the metric-sanity suite; the same as ``perceptual``; with noisiness in place of mfcc
the set ordered the attack families worse, Spearman 0.48 against 0.80); ``asm-v1`` =
mr-stft, mfcc, loudness-envelope (the earlier default); ``autosoundmatch`` = fft-magnitude,
stft-magnitude, amplitude-envelope. ``REPORT_METRICS`` are what every evaluation table shows:
the headline ``perceptual`` first, ``mr-stft`` beside it (for comparison with the literature).

Use: ``distances(candidates, target, sr, metrics)`` -> {name: (B,) float64};
``objectives("asm", candidates, target, sr)`` -> (B, k) for pymoo; a search holds
``Scorer(target, sr, "asm")`` (target analysed once, picklable) and calls ``.objectives(batch)``;
``describe()`` gives name/unit/worst/definition rows for reports. Speed: ``asm perf metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from asm.audio.analysis import flatness_from_power
from asm.audio.features import (
    FeatureSettings,
    as_batch,
    logmel_from_power,
    mfcc_from_logmel,
    power_spectrogram,
)
from asm.audio.signal import SILENCE_PEAK
from asm.errors import AsmError

MAG_FLOOR = 1e-5  # -100 dB re a full-scale sinusoid
POWER_FLOOR_DB = -100.0
MR_RESOLUTIONS_MS = (128.0, 64.0, 32.0, 16.0)
PERCEPTUAL_RESOLUTIONS_MS = (128.0, 64.0, 32.0)
PERCEPTUAL_MELS = {128.0: 32, 64.0: 24, 32.0: 16}  # bands per resolution: about the ear's ~24 critical bands
PERCEPTUAL_FLOOR_DB = -60.0  # re the target's loudest mel band and frame, per resolution
PERCEPTUAL_SMOOTH_FRAMES = 3  # band power averaged over this many consecutive frames (see ``perceptual``)
PERCEPTUAL_NOISE_WEIGHT = 0.5  # per decade of noisiness above the slack (see ``perceptual``)
PERCEPTUAL_NOISE_SLACK = 2.0  # a candidate up to this many times noisier than the target pays nothing


def smooth_frames(power: torch.Tensor, frames: int = PERCEPTUAL_SMOOTH_FRAMES) -> torch.Tensor:
    """Moving average of (B, bands, frames) power over ``frames`` consecutive frames, centred; at the
    edges over the frames there are. Not in place, so autograd runs through it (``spectral_loss``)."""
    if frames <= 1:
        return power
    return torch.nn.functional.avg_pool1d(power, frames, 1, frames // 2, count_include_pad=False)
NOISINESS_RESOLUTION_MS = 64.0
NOISINESS_MIN = 1e-6  # flatness below this (-60 dB) reads as this: purer partials are not heard as purer
HEADLINE_METRIC = "perceptual"  # what searches choose their best by and tables lead with
LSD_RESOLUTION_MS = 64.0
MFCC_RESOLUTION_MS = 64.0
LOUDNESS_RESOLUTION_MS = 32.0
N_MFCC = 20
N_MELS = 64
ASM_STFT_N_FFT, ASM_STFT_HOP = 1024, 512  # AutoSoundMatch's STFT objective, in samples
ASM_ENVELOPE_CUTOFF_HZ = 10.0
HOP_DIVISOR = 2  # hop = window / 2: Hann windows at 50 % overlap weight every sample equally
DEFAULT_CHUNK = 64  # candidates analysed at once: bounds memory (~50 MB for 2 s at 16 kHz)

_DB = 20.0 / math.log(10.0)  # natural-log amplitude ratio -> dB


def frame_length(sample_rate: int, ms: float) -> int:
    """Window (and FFT) length in samples for ``ms`` milliseconds: a multiple of 16, at least 64."""
    return max(64, 16 * round(sample_rate * ms / 16000.0))


@lru_cache(maxsize=32)
def _hann(n: int) -> torch.Tensor:
    return torch.hann_window(n)


@lru_cache(maxsize=4)
def _ones(n: int) -> torch.Tensor:
    return torch.ones(n)


def _norm(n: int) -> float:
    """k = 2 / sum(window): scales |STFT| so a sinusoid of amplitude A reads A."""
    return 2.0 / float(_hann(n).sum())


@lru_cache(maxsize=16)
def _a_weighting(sample_rate: int, n_fft: int) -> torch.Tensor:
    from asm.audio.filters import a_weighting_power

    return torch.from_numpy(a_weighting_power(sample_rate, n_fft)).float()


@lru_cache(maxsize=16)
def _band_basis(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """Triangular mel filters of peak 1 (no area normalisation), (n_mels, n_fft // 2 + 1)."""
    from asm.audio.filters import mel_filters

    return torch.from_numpy(mel_filters(sample_rate, n_fft, n_mels, fmin=20.0, norm=None))


def _mfcc_settings(sample_rate: int) -> FeatureSettings:
    n = frame_length(sample_rate, MFCC_RESOLUTION_MS)
    return FeatureSettings(n_fft=n, hop=n // HOP_DIVISOR, n_mels=N_MELS, n_mfcc=N_MFCC)


def _biquad_lowpass(sample_rate: int, cutoff: float, q: float = 1 / math.sqrt(2)) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook low-pass coefficients (b, a), a[0] = 1 (as torchaudio.functional.lowpass_biquad)."""
    w0 = 2 * math.pi * cutoff / sample_rate
    alpha = math.sin(w0) / 2 / q
    cos = math.cos(w0)
    b = np.array([(1 - cos) / 2, 1 - cos, (1 - cos) / 2])
    a = np.array([1 + alpha, -2 * cos, 1 - alpha])
    return b / a[0], a / a[0]


class _Analysis:
    """Lazily computed, cached representations of one batch of audio (B, T).

    Spectra are kept unnormalised (|STFT|^2 as ``asm.audio.features.power_spectrogram`` returns
    it): the normalisation ``k = 2 / sum(window)`` cancels in every difference of logs and in the
    spectral convergence ratio, so it is applied only to the floors and to the loudness weights.
    """

    def __init__(self, audio: torch.Tensor, sample_rate: int):
        self.x = audio
        self.sr = sample_rate
        self._cache: dict = {}

    def _get(self, key, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def power(self, ms: float) -> torch.Tensor:
        """|STFT|^2 (B, F, frames) at resolution ``ms`` (Hann window, hop N/2, centred)."""

        def make():
            n = frame_length(self.sr, ms)
            return power_spectrogram(self.x, n, n // HOP_DIVISOR)

        return self._get(("power", ms), make)

    def mag(self, ms: float) -> torch.Tensor:
        return self._get(("mag", ms), lambda: self.power(ms).sqrt())

    def logpow(self, ms: float) -> torch.Tensor:
        """ln max(|STFT|^2, (MAG_FLOOR / k)^2) = 2 (ln max(M, MAG_FLOOR) - ln k): twice the normalised
        log magnitude plus a constant (differences are halved where they are reduced)."""

        def make():
            k = _norm(frame_length(self.sr, ms))
            return self.power(ms).clamp_min((MAG_FLOOR / k) ** 2).log_()

        return self._get(("logpow", ms), make)

    def bands(self, ms: float) -> torch.Tensor:
        """Mel-band amplitudes k sqrt(smooth(mel @ |STFT|^2)) (B, bands, frames) at resolution ``ms``."""

        def make():
            n = frame_length(self.sr, ms)
            basis = _band_basis(self.sr, n, PERCEPTUAL_MELS[ms])
            return smooth_frames(torch.matmul(basis, self.power(ms))).clamp_min_(0.0).sqrt_().mul_(_norm(n))

        return self._get(("bands", ms), make)

    def flatness(self) -> torch.Tensor:
        """Gated spectral flatness (B,) of the 64 ms power (``asm.audio.analysis.flatness_from_power``)."""
        return self._get("flatness", lambda: flatness_from_power(self.power(NOISINESS_RESOLUTION_MS), self.sr))

    def mfcc(self) -> torch.Tensor:
        def make():
            settings = _mfcc_settings(self.sr)
            assert (settings.n_fft, settings.hop) == (frame_length(self.sr, MFCC_RESOLUTION_MS),
                                                      frame_length(self.sr, MFCC_RESOLUTION_MS) // HOP_DIVISOR)
            mel = logmel_from_power(self.power(MFCC_RESOLUTION_MS), self.sr, settings)
            return mfcc_from_logmel(mel, settings.n_mfcc)

        return self._get("mfcc", make)

    def loudness(self) -> torch.Tensor:
        """A-weighted frame loudness in dB (B, frames)."""

        def make():
            n = frame_length(self.sr, LOUDNESS_RESOLUTION_MS)
            w = _hann(n)
            enbw = n * float((w * w).sum()) / float(w.sum()) ** 2
            weights = _a_weighting(self.sr, n) * (_norm(n) ** 2 / (2.0 * enbw))
            power = torch.einsum("f,bft->bt", weights, self.power(LOUDNESS_RESOLUTION_MS))
            return power.clamp_min(10 ** (POWER_FLOOR_DB / 10)).log10_().mul_(10.0)

        return self._get("loudness", make)

    def rfft_mag(self) -> torch.Tensor:
        def make():
            spec = torch.fft.rfft(self.x)
            return (spec * spec.conj()).real.sqrt_()

        return self._get("rfft", make)

    def asm_stft_mag(self) -> torch.Tensor:
        def make():
            spec = torch.stft(self.x, ASM_STFT_N_FFT, ASM_STFT_HOP, window=_ones(ASM_STFT_N_FFT), center=True,
                              pad_mode="constant", return_complex=True)
            return (spec * spec.conj()).real.sqrt_()

        return self._get("asm_stft", make)

    def envelope(self) -> torch.Tensor:
        """|analytic signal| low-passed at 10 Hz (AutoSoundMatch's amplitude envelope), (B, T)."""

        def make():
            from scipy.signal import lfilter

            t = self.x.shape[-1]
            half = torch.fft.rfft(self.x)
            h = torch.full((half.shape[-1],), 2.0)
            h[0] = 1.0
            if t % 2 == 0:
                h[-1] = 1.0
            analytic = torch.fft.ifft(half * h, n=t)  # negative frequencies zero: the analytic signal
            magnitude = (analytic * analytic.conj()).real.sqrt_().double().numpy()
            b, a = _biquad_lowpass(self.sr, ASM_ENVELOPE_CUTOFF_HZ)  # a 10 Hz biquad needs float64 state
            return torch.from_numpy(lfilter(b, a, magnitude, axis=-1))

        return self._get("envelope", make)


class _Pair:
    """Candidates ``x`` against references ``y`` (B or 1 rows), sharing per-resolution terms."""

    def __init__(self, x: _Analysis, y: _Analysis):
        self.x, self.y = x, y
        self._terms: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}

    def stft_terms(self, ms: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(spectral convergence, mean |log-magnitude difference|) at resolution ``ms``, each (B,)."""
        if ms not in self._terms:
            mx, my = self.x.mag(ms), self.y.mag(ms)
            sc = torch.linalg.vector_norm(my - mx, dim=(1, 2)) / torch.linalg.vector_norm(my, dim=(1, 2)).clamp_min(1e-12)
            lm = (self.x.logpow(ms) - self.y.logpow(ms)).abs_().mean(dim=(1, 2)) * 0.5
            self._terms[ms] = (sc, lm)
        return self._terms[ms]


def noise_excess(flat_x: torch.Tensor, flat_y: torch.Tensor) -> torch.Tensor:
    """``perceptual``'s noise term: decades by which the candidate's gated spectral flatness exceeds
    ``PERCEPTUAL_NOISE_SLACK`` times the target's (both floored at ``NOISINESS_MIN``), times the weight."""
    fx, fy = flat_x.clamp_min(NOISINESS_MIN), flat_y.clamp_min(NOISINESS_MIN)
    excess = fx.log10() - fy.log10() - math.log10(PERCEPTUAL_NOISE_SLACK)
    return excess.clamp_min(0.0) * PERCEPTUAL_NOISE_WEIGHT


def _perceptual(p: _Pair) -> torch.Tensor:
    total = 0.0
    for ms in PERCEPTUAL_RESOLUTIONS_MS:
        ax, ay = p.x.bands(ms), p.y.bands(ms)
        floor = ay.amax(dim=(1, 2), keepdim=True).mul(10 ** (PERCEPTUAL_FLOOR_DB / 20)).clamp_min_(1e-12)
        lin = (ax - ay).abs_().sum(dim=(1, 2)) / ay.sum(dim=(1, 2)).clamp_min(1e-12)
        log = (torch.maximum(ax, floor).log_() - torch.maximum(ay, floor).log_()).abs_().mean(dim=(1, 2))
        total = total + lin + log
    return total / len(PERCEPTUAL_RESOLUTIONS_MS) + noise_excess(p.x.flatness(), p.y.flatness())


def _noisiness(p: _Pair) -> torch.Tensor:
    fx, fy = p.x.flatness().clamp_min(NOISINESS_MIN), p.y.flatness().clamp_min(NOISINESS_MIN)
    return (fx.log10() - fy.log10()).abs()


def _mr_stft(p: _Pair) -> torch.Tensor:
    return torch.stack([sum(p.stft_terms(ms)) for ms in MR_RESOLUTIONS_MS]).mean(0)


def _spectral_convergence(p: _Pair) -> torch.Tensor:
    return torch.stack([p.stft_terms(ms)[0] for ms in MR_RESOLUTIONS_MS]).mean(0)


def _log_spectral(p: _Pair) -> torch.Tensor:
    d = p.x.logpow(LSD_RESOLUTION_MS) - p.y.logpow(LSD_RESOLUTION_MS)  # 2 x ln amplitude ratio
    return d.square_().mean(dim=1).sqrt_().mean(dim=1) * (0.5 * _DB)


def _mfcc(p: _Pair) -> torch.Tensor:
    return torch.linalg.vector_norm(p.x.mfcc() - p.y.mfcc(), dim=1).mean(dim=1)


def _loudness_envelope(p: _Pair) -> torch.Tensor:
    return (p.x.loudness() - p.y.loudness()).abs().mean(dim=1)


def _fft_magnitude(p: _Pair) -> torch.Tensor:
    t = p.x.x.shape[-1]
    return torch.linalg.vector_norm(p.x.rfft_mag() - p.y.rfft_mag(), dim=1) / t


def _stft_magnitude(p: _Pair) -> torch.Tensor:
    d = p.x.asm_stft_mag() - p.y.asm_stft_mag()
    return torch.linalg.vector_norm(d, dim=(1, 2)) / (ASM_STFT_N_FFT * math.sqrt(d.shape[-1]))


def _amplitude_envelope(p: _Pair) -> torch.Tensor:
    t = p.x.x.shape[-1]
    return torch.linalg.vector_norm(p.x.envelope() - p.y.envelope(), dim=1) / math.sqrt(t)


@dataclass(frozen=True)
class Metric:
    """A named distance: its batched function, worst-case score, unit and one-line definition."""

    name: str
    fn: Callable[[_Pair], torch.Tensor]
    worst: float
    unit: str
    symmetric: bool
    summary: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("perceptual", _perceptual, 100.0, "", False,
               "mean over 128/64/32 ms of mel-band amplitude L1 / target L1 + mean |log difference| above "
               "a floor 60 dB under the target's loudest band"),
        Metric("noisiness", _noisiness, 6.0, "decades", True,
               "|log10 of the gated spectral flatness (64 ms) of the candidate / the target's|"),
        Metric("mr-stft", _mr_stft, 100.0, "", False,
               "mean over 128/64/32/16 ms Hann STFTs of spectral convergence + mean |log-magnitude difference|"),
        Metric("spectral-convergence", _spectral_convergence, 100.0, "", False,
               "mean over 128/64/32/16 ms STFTs of ||M_target - M||_F / ||M_target||_F"),
        Metric("log-spectral", _log_spectral, 200.0, "dB", True,
               "mean over 64 ms frames of the RMS (over frequency) of the dB magnitude difference"),
        Metric("mfcc", _mfcc, 1000.0, "", True,
               "mean over 64 ms frames of the Euclidean distance between 20 MFCCs (asm.audio.features)"),
        Metric("loudness-envelope", _loudness_envelope, 200.0, "dB", True,
               "mean over 32 ms frames (16 ms hop) of |A-weighted loudness difference|"),
        Metric("fft-magnitude", _fft_magnitude, 100.0, "", True,
               "AutoSoundMatch: Euclidean distance of whole-signal |rfft| / T"),
        Metric("stft-magnitude", _stft_magnitude, 100.0, "", True,
               "AutoSoundMatch: Frobenius distance of |STFT| (1024/512, rectangular) / (1024 sqrt(frames))"),
        Metric("amplitude-envelope", _amplitude_envelope, 100.0, "", True,
               "AutoSoundMatch: Euclidean distance of 10 Hz low-passed Hilbert envelopes / sqrt(T)"),
    )
}

OBJECTIVE_SETS: dict[str, tuple[str, ...]] = {
    "asm": ("perceptual", "loudness-envelope", "mfcc"),
    "perceptual": ("perceptual", "loudness-envelope", "mfcc"),
    "asm-v1": ("mr-stft", "mfcc", "loudness-envelope"),
    "autosoundmatch": ("fft-magnitude", "stft-magnitude", "amplitude-envelope"),
}

REPORT_METRICS: tuple[str, ...] = ("perceptual", "mr-stft", "log-spectral", "mfcc", "spectral-convergence")


def resolve(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Metric names from an objective-set name (``"asm"``), a metric name, a comma list or a sequence."""
    if isinstance(spec, str):
        if spec in OBJECTIVE_SETS:
            return OBJECTIVE_SETS[spec]
        spec = [s.strip() for s in spec.split(",")]
    names = tuple(spec)
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise AsmError(
            f"unknown metric {', '.join(map(repr, unknown)) or '(none given)'}: choose from "
            f"{', '.join(METRICS)} or an objective set ({', '.join(OBJECTIVE_SETS)})"
        )
    return names


def usable_rows(audio: torch.Tensor) -> torch.Tensor:
    """Boolean (B,): rows that are finite and not silent (peak >= SILENCE_PEAK)."""
    if audio.shape[-1] == 0:
        return torch.zeros(audio.shape[0], dtype=torch.bool)
    peak = audio.abs().amax(dim=-1)  # NaN or inf anywhere in a row makes its peak non-finite
    return torch.isfinite(peak) & (peak >= SILENCE_PEAK)


def _pad_to(x: torch.Tensor, n: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, n - x.shape[-1])) if x.shape[-1] < n else x


def _clean(a: torch.Tensor, ok: torch.Tensor, n: int) -> torch.Tensor:
    """Zero-pad to ``n`` samples; unusable rows become zeros so no NaN spreads through a batch."""
    a = _pad_to(a, n)
    return a if bool(ok.all()) else torch.where(ok[:, None], a, torch.zeros(()))


def _finish(raw: dict[str, np.ndarray], ok: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for name, values in raw.items():
        worst = METRICS[name].worst
        values = np.nan_to_num(values, nan=worst, posinf=worst, neginf=worst)
        out[name] = np.where(ok, np.clip(values, 0.0, worst), worst)
    return out


class Scorer:
    """Scores batches of candidates against one fixed target; the target is analysed only once.

    This is what a search holds for the whole run (it pickles, so render workers can hold one too).
    """

    def __init__(self, target: np.ndarray | torch.Tensor, sample_rate: int,
                 metrics: str | Sequence[str] = REPORT_METRICS, chunk: int = DEFAULT_CHUNK):
        self.names = resolve(metrics)
        self.sample_rate = int(sample_rate)
        self.chunk = max(1, int(chunk))
        self.target = as_batch(target)
        if self.target.shape[0] != 1:
            raise ValueError(f"a Scorer takes one target signal, got {self.target.shape[0]}")
        self.target_ok = usable_rows(self.target)
        self._analysis: tuple[int, _Analysis] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_analysis": None}

    def _target_analysis(self, n: int) -> _Analysis:
        if self._analysis is None or self._analysis[0] != n:
            self._analysis = (n, _Analysis(_clean(self.target, self.target_ok, n), self.sample_rate))
        return self._analysis[1]

    def distances(self, candidates: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """Each metric for every candidate (B, T') as float64 arrays (B,)."""
        x_all = as_batch(candidates)
        b = x_all.shape[0]
        n = max(x_all.shape[-1], self.target.shape[-1], 1)
        x_ok = usable_rows(x_all)
        raw = {name: np.empty(b, dtype=np.float64) for name in self.names}
        with torch.inference_mode():
            y = self._target_analysis(n)
            for lo in range(0, b, self.chunk):
                hi = min(b, lo + self.chunk)
                pair = _Pair(_Analysis(_clean(x_all[lo:hi], x_ok[lo:hi], n), self.sample_rate), y)
                for name in self.names:
                    raw[name][lo:hi] = METRICS[name].fn(pair).double().numpy()
        return _finish(raw, (x_ok & self.target_ok).numpy())

    def objectives(self, candidates: np.ndarray | torch.Tensor) -> np.ndarray:
        """The objective matrix (B, k), columns in ``self.names`` order (pymoo's ``F``)."""
        values = self.distances(candidates)
        return np.stack([values[n] for n in self.names], axis=1)


def distances(
    candidates: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    sample_rate: int,
    metrics: str | Sequence[str] = REPORT_METRICS,
    chunk: int = DEFAULT_CHUNK,
) -> dict[str, np.ndarray]:
    """Each named metric for every candidate, as float64 arrays of shape (B,).

    ``target`` is one signal (T,) / (1, T), scored against every candidate, or (B, T), scored
    pairwise with ``candidates`` (B, T'). Lengths may differ (zero-padded to the longer).
    """
    y_all = as_batch(target)
    if y_all.shape[0] == 1:
        return Scorer(y_all, sample_rate, metrics, chunk).distances(candidates)
    names = resolve(metrics)
    x_all = as_batch(candidates)
    b = x_all.shape[0]
    if y_all.shape[0] != b:
        raise ValueError(f"{b} candidates against {y_all.shape[0]} targets: give one target or one per candidate")
    n = max(x_all.shape[-1], y_all.shape[-1], 1)
    x_ok, y_ok = usable_rows(x_all), usable_rows(y_all)
    raw = {name: np.empty(b, dtype=np.float64) for name in names}
    step = max(1, int(chunk))
    with torch.inference_mode():
        for lo in range(0, b, step):
            hi = min(b, lo + step)
            x = _Analysis(_clean(x_all[lo:hi], x_ok[lo:hi], n), sample_rate)
            y = _Analysis(_clean(y_all[lo:hi], y_ok[lo:hi], n), sample_rate)
            pair = _Pair(x, y)
            for name in names:
                raw[name][lo:hi] = METRICS[name].fn(pair).double().numpy()
    return _finish(raw, (x_ok & y_ok).numpy())


def rerender_spread(clips: np.ndarray, sample_rate: int, metrics: Sequence[str]) -> dict[str, float]:
    """The mean of each metric over all ordered pairs of ``clips`` (R renders of one preset, R >= 2):
    how far apart a nondeterministic synth's renders of one preset are (its re-render floor)."""
    clips = np.asarray(clips)
    r = len(clips)
    rows = [(i, j) for i in range(r) for j in range(r) if i != j]
    d = distances(clips[[j for _, j in rows]], clips[[i for i, _ in rows]], sample_rate, list(metrics))
    return {m: float(np.mean(v)) for m, v in d.items()}


def distance(name: str, candidates, target, sample_rate: int, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """One metric, shape (B,) (see ``distances``)."""
    return distances(candidates, target, sample_rate, [name], chunk)[name]


def objectives(spec: str | Sequence[str], candidates, target, sample_rate: int,
               chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """The objective matrix (B, k) a pymoo Problem returns as ``F``, columns in ``resolve(spec)`` order."""
    names = resolve(spec)
    values = distances(candidates, target, sample_rate, names, chunk)
    return np.stack([values[n] for n in names], axis=1)


def worst_scores(spec: str | Sequence[str]) -> np.ndarray:
    """The worst-case score of each metric in ``spec`` (for candidates that could not be rendered)."""
    return np.array([METRICS[n].worst for n in resolve(spec)], dtype=np.float64)


def describe(names: Iterable[str] | None = None) -> list[dict]:
    """Name, unit, worst value and definition of each metric (for reports and ``--help`` texts)."""
    return [
        {"name": m.name, "unit": m.unit, "worst": m.worst, "symmetric": m.symmetric, "definition": m.summary}
        for m in (METRICS[n] for n in (names or METRICS))
    ]
