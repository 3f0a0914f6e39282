"""Notes of a monophonic target: pitch (YIN), note-on/off times and a velocity estimate.

``asm match`` renders its candidates with the notes found here, so a candidate can only match a
target when pitch and timing are right; the search never has to discover pitch itself.

Pitch is tracked with YIN (de Cheveigné & Kawahara 2002) written with numpy FFTs: librosa's
``yin``/``pyin`` cost ~30 s / ~12 s of numba JIT on their first call on this machine, and pyin
~0.7 s per second of audio after that; this one costs a few milliseconds and also returns YIN's
aperiodicity, which decides voicing. YIN reads the audio low-passed (4th-order Butterworth, zero
phase) at 1.1 x fmax, so a loud resonance far above the pitch cannot capture it. For each 5 ms
frame:

* frame: ``W + max_lag`` samples, with ``W = max_lag = ceil(sr / fmin)``;
* difference ``d(tau) = sum_{j<W} (x_j - x_{j+tau})^2``, normalised as
  ``d'(tau) = d(tau) * tau / sum_{k=1..tau} d(k)``;
* the period is the first local minimum of ``d'`` below ``YIN_THRESHOLD`` between
  ``sr/fmax`` and ``sr/fmin`` (else the global minimum), refined by parabolic interpolation;
  ``aperiodicity = d'(period)``; a frame is voiced when it is audible (within ``ACTIVE_DB`` of the
  loudest frame) and its aperiodicity is below ``VOICED_APERIODICITY``.

Notes: audible regions of the level envelope (RMS over max(20 ms, 3 periods), in dB; gaps under
``MERGE_GAP`` joined) each give one note, or several where the voiced pitch moves more than
``SPLIT_SEMITONES`` from the current note's median and stays for ``MIN_NOTE`` seconds (legato). The
MIDI pitch is the rounded median over the note's voiced frames before its note-off (a release can
sweep a resonant filter). A region's first note starts at its first sample within ``ACTIVE_DB`` of
its peak; the last note ends at the note-off, found by walking back from the end of the sound while
the level still falls faster than ``RELEASE_SLOPE`` dB/s (the release), so a short release gives
the note-off within a few tens of ms. A sound whose level decays to nothing while the key is held
has no observable note-off: the estimate is then where the sound ends. Velocity follows
the General MIDI loudness curve ``dB = 40 log10(v / 127)`` from the note's peak RMS level re a
full-scale sine: only an estimate, since the preset's own level is unknown (a search absorbs the
rest in the synth's gain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from asm.errors import AsmError
from asm.midi.notes import Note

FMIN, FMAX = 40.0, 2100.0  # Hz: E1 (MIDI 28) .. C7 (MIDI 96)
HOP_SECONDS = 0.005
LOWPASS_FACTOR = 1.1  # YIN reads the audio low-passed at 1.1 * fmax
LOWPASS_PAD_SECONDS = 0.05  # odd extension at each end before that filter (as filtfilt pads)
YIN_THRESHOLD = 0.15
VOICED_APERIODICITY = 0.25
ACTIVE_DB = 40.0  # frames within 40 dB of the loudest count as sounding
SPLIT_SEMITONES = 0.75  # a held pitch moving further than this starts a new note
MIN_NOTE = 0.1  # seconds: shorter runs of one pitch are glitches or glides, not notes
MIN_VOICED = 0.05  # seconds of voiced audio needed to report a pitch at all
MERGE_GAP = 0.03  # seconds: sounding regions closer than this are one region
RELEASE_SLOPE = 20.0  # dB/s: a level falling faster than this is a release (or decay)


class NoPitchFound(AsmError):
    """The audio has no clear pitch (noise, a drum, silence): the caller must be given the notes."""


@dataclass(frozen=True)
class PitchTrack:
    """Per-frame analysis: times (s), f0 (Hz, NaN where unvoiced), aperiodicity, level (dB) and voicing."""

    times: np.ndarray
    f0: np.ndarray
    aperiodicity: np.ndarray
    level_db: np.ndarray
    voiced: np.ndarray
    hop: float

    @property
    def midi(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return 69.0 + 12.0 * np.log2(self.f0 / 440.0)


def _frames(x: np.ndarray, length: int, hop: int, n: int) -> np.ndarray:
    padded = np.pad(x, (0, max(0, (n - 1) * hop + length - len(x))))
    return np.lib.stride_tricks.sliding_window_view(padded, length)[::hop][:n]


def yin(audio: np.ndarray, sample_rate: int, fmin: float = FMIN, fmax: float = FMAX,
        hop: float = HOP_SECONDS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, f0 Hz, aperiodicity) for frames every ``hop`` seconds, centred on ``times``."""
    x = np.asarray(audio, dtype=np.float64)
    fmax = min(fmax, sample_rate / 4)
    max_lag = math.ceil(sample_rate / fmin)
    min_lag = max(2, math.floor(sample_rate / fmax))
    w = max_lag
    length = w + max_lag
    hop_n = max(1, round(hop * sample_rate))
    n_frames = max(1, math.ceil(len(x) / hop_n))
    x = np.pad(x, (length // 2, 0))  # frame i is centred on sample i * hop_n
    frames = _frames(x, length, hop_n, n_frames)
    n_fft = 1 << math.ceil(math.log2(length + w))
    spec = np.fft.rfft(frames, n_fft)
    head = np.fft.rfft(frames[:, :w], n_fft)
    corr = np.fft.irfft(spec * np.conj(head), n_fft)[:, : max_lag + 1]  # sum_j x_j x_{j+tau}, j < W
    energy = np.cumsum(np.pad(frames**2, ((0, 0), (1, 0))), axis=1)
    e_tau = energy[:, w : w + max_lag + 1] - energy[:, : max_lag + 1]  # sum_{j<W} x_{j+tau}^2
    diff = np.maximum(e_tau[:, :1] + e_tau - 2 * corr, 0.0)
    taus = np.arange(max_lag + 1)
    cum = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)
    cmnd[cum[:, -1] <= 1e-12] = 1.0  # digital silence: no period
    search = cmnd[:, min_lag : max_lag + 1]
    below = search < YIN_THRESHOLD
    # first dip under the threshold, then walk to that dip's local minimum
    first = np.where(below.any(axis=1), below.argmax(axis=1), search.argmin(axis=1))
    tau = first.copy()
    rows = np.arange(len(tau))
    for _ in range(search.shape[1]):
        step = (tau + 1 < search.shape[1]) & (search[rows, np.minimum(tau + 1, search.shape[1] - 1)] < search[rows, tau])
        if not step.any():
            break
        tau = tau + step
    tau = tau + min_lag
    left = cmnd[rows, np.maximum(tau - 1, 1)]
    mid = cmnd[rows, tau]
    right = cmnd[rows, np.minimum(tau + 1, max_lag)]
    denom = left - 2 * mid + right
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    period = tau + np.clip(shift, -1, 1)
    times = np.arange(n_frames) * hop_n / sample_rate
    return times, sample_rate / period, mid


def _lowpass(audio: np.ndarray, sample_rate: int, fmax: float) -> np.ndarray:
    """Butterworth low-pass (4th order, zero phase) a little above ``fmax``: a loud resonance or
    bright partials far above the highest pitch otherwise make YIN lock onto their period.

    The response of ``sosfiltfilt(butter(4, cutoff))`` (``|H|^2`` of the bilinear-transformed
    Butterworth) applied over an FFT of the signal with odd extensions at both ends, as filtfilt pads;
    numpy only: importing scipy.signal costs ~1.1 s, most of an ``asm match``'s target analysis.
    ``tests/test_analysis.py`` holds it to scipy's output."""
    cutoff = LOWPASS_FACTOR * fmax
    x = np.asarray(audio, dtype=np.float64)
    if cutoff >= 0.45 * sample_rate or len(x) < 64:
        return audio
    pad = min(len(x) - 1, int(round(LOWPASS_PAD_SECONDS * sample_rate)))
    ext = np.concatenate([2 * x[0] - x[pad:0:-1], x, 2 * x[-1] - x[-2 : -pad - 2 : -1]])
    n = 1 << int(np.ceil(np.log2(len(ext) + pad)))  # room for the response's tail: no wrap-around
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    ratio = np.tan(np.pi * np.minimum(freqs, 0.4999 * sample_rate) / sample_rate) / np.tan(np.pi * cutoff / sample_rate)
    y = np.fft.irfft(np.fft.rfft(ext, n) / (1.0 + ratio ** 8), n)
    return y[pad : pad + len(x)]


def _level_db(audio: np.ndarray, sample_rate: int, times: np.ndarray, window: float) -> np.ndarray:
    """RMS level (dB re full scale, floor -120) over a ``window``-second window centred on each time."""
    x = np.asarray(audio, dtype=np.float64)
    half = max(1, round(window * sample_rate / 2))
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    centre = np.round(times * sample_rate).astype(int)
    lo = np.clip(centre - half, 0, len(x))
    hi = np.clip(centre + half, 0, len(x))
    power = (csum[hi] - csum[lo]) / (2 * half)
    return 10 * np.log10(np.maximum(power, 1e-12))


def pitch_track(audio: np.ndarray, sample_rate: int, fmin: float = FMIN, fmax: float = FMAX) -> PitchTrack:
    """Frame-wise pitch, aperiodicity, level and voicing of mono audio."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1 or audio.size == 0:
        raise AsmError("pitch analysis needs non-empty mono audio")
    if not np.isfinite(audio).all():
        raise AsmError("pitch analysis got NaN or infinite samples")
    times, f0, aperiodicity = yin(_lowpass(audio, sample_rate, fmax), sample_rate, fmin, fmax)
    level = _level_db(audio, sample_rate, times, 0.02)
    active = level > level.max() - ACTIVE_DB
    voiced = active & (aperiodicity < VOICED_APERIODICITY) & (f0 >= fmin) & (f0 <= fmax)
    if voiced.sum() >= 3:  # smooth the level over >= 3 periods so a low note's own ripple is not a "fall"
        level = _level_db(audio, sample_rate, times, max(0.02, 3.0 / float(np.median(f0[voiced]))))
    return PitchTrack(times, np.where(voiced, f0, np.nan), aperiodicity, level, voiced, HOP_SECONDS)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the True runs of ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _note_off(level: np.ndarray, start: int, stop: int, hop: float) -> int:
    """Frame where the final fall of the level (the release) begins, walking back from ``stop``."""
    k = max(1, round(0.01 / hop))  # slope over 10 ms
    limit = RELEASE_SLOPE * k * hop  # dB per k frames
    i = stop - 1
    while i - k >= start and level[i - k] - level[i] > limit:
        i -= 1
    return i


def _onset(audio: np.ndarray, sample_rate: int, t_lo: float, t_hi: float) -> float:
    """First sample within ``ACTIVE_DB`` of the region's peak, searched from half a window before
    ``t_lo`` (the centred level window sees a sound up to half a window early)."""
    x = np.abs(np.asarray(audio))
    lo = max(0, int((t_lo - 0.05) * sample_rate))
    hi = min(len(x), int(t_hi * sample_rate) + 1)
    seg = x[lo:hi]
    if seg.size == 0:
        return float(t_lo)
    above = np.flatnonzero(seg >= seg.max() * 10 ** (-ACTIVE_DB / 20))
    return max(float(t_lo) - 0.05, (lo + int(above[0])) / sample_rate) if above.size else float(t_lo)


def _velocity(peak_db: float) -> int:
    """General MIDI curve dB = 40 log10(v/127), with 0 dB = a full-scale sine (RMS -3 dB)."""
    return int(np.clip(round(127 * 10 ** ((peak_db + 10 * math.log10(2)) / 40)), 1, 127))


def _pitch_segments(midi: np.ndarray, voiced: np.ndarray, min_run: int) -> list[tuple[int, int]]:
    """(first, last) voiced frames of each held pitch, in order.

    A new segment starts when the pitch moves more than ``SPLIT_SEMITONES`` from the median of the
    current one (hysteresis: a pitch wavering around a semitone boundary stays one note); segments
    shorter than ``min_run`` frames are dropped, and neighbours left with the same rounded pitch
    are joined.
    """
    segs: list[list[int]] = []  # [first, last, count]
    values: list[float] = []
    for frame in voiced:
        m = midi[frame]
        if segs and abs(m - float(np.median(values))) <= SPLIT_SEMITONES:
            segs[-1][1], segs[-1][2] = frame, segs[-1][2] + 1
            values.append(m)
        else:
            segs.append([frame, frame, 1])
            values = [m]
    kept = [sg for sg in segs if sg[2] >= min_run] or [max(segs, key=lambda sg: sg[2])]
    pitch = [round(float(np.median(midi[voiced[(voiced >= a) & (voiced <= b)]]))) for a, b, _ in kept]
    out: list[list[int]] = []  # [first, last, rounded pitch]
    for (a, b, _), p in zip(kept, pitch):
        if out and p == out[-1][2]:
            out[-1][1] = b
        else:
            out.append([a, b, p])
    return [(a, b) for a, b, _ in out]


def detect_notes(audio: np.ndarray, sample_rate: int, fmin: float = FMIN, fmax: float = FMAX) -> list[Note]:
    """The notes of monophonic audio, in time order; raises ``NoPitchFound`` when nothing is pitched."""
    track = pitch_track(audio, sample_rate, fmin, fmax)
    hop = track.hop
    if track.voiced.sum() * hop < MIN_VOICED:
        raise NoPitchFound(
            "no pitch found in the target (noise, percussion or too little pitched sound): "
            "give the note with --note or --midi"
        )
    active = track.level_db > track.level_db.max() - ACTIVE_DB
    regions = _runs(active)
    merged: list[list[int]] = []
    for lo, hi in regions:
        if merged and (lo - merged[-1][1]) * hop < MERGE_GAP:
            merged[-1][1] = hi
        else:
            merged.append([lo, hi])
    min_run = max(1, round(MIN_NOTE / hop))
    notes: list[Note] = []
    for lo, hi in merged:
        off = _note_off(track.level_db, lo, hi, hop)
        # pitch is read while the note is held: a release can sweep a resonant filter or glide
        voiced = np.flatnonzero(track.voiced[lo : max(off, lo + 1)]) + lo
        if len(voiced) * hop < MIN_VOICED:
            voiced = np.flatnonzero(track.voiced[lo:hi]) + lo
        if len(voiced) * hop < MIN_VOICED:
            continue
        for j, (first, last) in enumerate(segments := _pitch_segments(track.midi, voiced, min_run)):
            begin = lo if j == 0 else first
            stop = segments[j + 1][0] if j + 1 < len(segments) else max(off, last + 1)
            frames = voiced[(voiced >= first) & (voiced <= last)]
            pitch = int(np.round(np.median(track.midi[frames])))
            if not 0 <= pitch <= 127:
                continue
            peak = float(track.level_db[begin:stop].max())
            t0 = _onset(audio, sample_rate, track.times[lo], track.times[hi - 1]) if j == 0 else float(track.times[begin])
            duration = max(hop, float(track.times[min(stop, len(track.times) - 1)]) - t0)
            notes.append(Note(pitch, _velocity(peak), round(t0, 4), round(duration, 4)))
    if not notes:
        raise NoPitchFound("no pitch found in the target: give the note with --note or --midi")
    return notes


NOISINESS_GATE_DB = 30.0  # frames within 30 dB of the loudest frame count
NOISINESS_FMIN = 20.0  # Hz: bins below are left out (DC and rumble say nothing about noise)
_FLATNESS_FLOOR_DB = -100.0  # re each frame's loudest bin, so digital silence between partials is finite


def flatness_from_power(power, sample_rate: int, gate_db: float = NOISINESS_GATE_DB):
    """Mean spectral flatness (geometric / arithmetic mean of the power over bins >= 20 Hz) of the
    frames of ``power`` (torch, (B, F, frames), a one-sided |STFT|^2) within ``gate_db`` of each
    row's loudest frame; (B,) in [0, 1]: ~0 for pure partials, 1 for white noise.

    The level gate keeps the silent tail and the fade-out (where any signal is "flat") out, so the
    number says how much noise fills the space between partials while the sound is heard.
    """
    import torch

    n_fft = 2 * (power.shape[-2] - 1)
    lo = max(1, int(math.ceil(NOISINESS_FMIN * n_fft / sample_rate)))
    p = power[..., lo:, :].double()
    peak_bin = p.amax(dim=-2, keepdim=True)
    p = torch.maximum(p, peak_bin * 10 ** (_FLATNESS_FLOOR_DB / 10)).clamp_min(1e-30)
    flat = p.log().mean(dim=-2).exp() / p.mean(dim=-2)  # (B, frames)
    energy = power.sum(dim=-2).double()
    gate = energy >= energy.amax(dim=-1, keepdim=True) * 10 ** (-gate_db / 10)
    gate &= energy > 0
    count = gate.sum(dim=-1)
    return torch.where(count > 0, (flat * gate).sum(dim=-1) / count.clamp_min(1), torch.zeros(())).float()


def noisiness(audio: np.ndarray, sample_rate: int, window_ms: float = 64.0) -> float:
    """Spectral flatness of mono ``audio`` while it sounds (see ``flatness_from_power``): how much
    of it is noise rather than partials. A match whose noisiness is several times its target's
    fills the gaps between the target's harmonics with noise."""
    from asm.audio.features import power_spectrogram
    from asm.audio.metrics import HOP_DIVISOR, frame_length

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0 or not np.isfinite(audio).all():
        raise AsmError("noisiness needs non-empty, finite mono audio")
    n = frame_length(sample_rate, window_ms)
    return float(flatness_from_power(power_spectrogram(audio, n, n // HOP_DIVISOR), sample_rate)[0])
