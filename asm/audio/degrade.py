"""Controlled degradations of a sound, for judging distances (``asm perf metric-sanity``).

A distance tracks what a listener hears when it grows with the strength of a degradation heard as
one (more noise, more detune, a longer or shorter envelope, a darker sound, a level change) and
stays near 0 for what is not heard (the same sound with other oscillator phases). Each function
takes mono float audio at ``sample_rate`` and returns float32 audio of the same length; the random
ones take a seed.

* ``add_noise``: white noise at ``db`` re the signal's peak (its RMS is ``peak * 10^(db/20)``).
* ``detune``: resampling by ``2^(cents/1200)`` (pitch and, by as much, time: 6 % at 100 cents),
  then cut or zero-padded back to the length.
* ``stretch_envelope``: the amplitude envelope (RMS over 10 ms, made monotone on each side of its
  peak) warped in time, the attack (start to the envelope's peak) or the decay (peak to end) by
  ``factor``, applied as a smooth gain ``warped / original`` (capped at +40 dB: a tail that has
  decayed into silence cannot be raised).
* ``lowpass``: 8th-order Butterworth, zero phase, at ``fraction`` of the signal's bandwidth
  (``bandwidth``: the frequency under which 99 % of its energy lies).
* ``gain``: ``db`` of level.
* ``random_phase``: a cascade of ``PHASE_SECTIONS`` second-order all-pass filters with random
  centre frequencies and pole radius ``PHASE_RADIUS``: every partial keeps its amplitude and gets a
  phase shift that differs from its neighbours' (what a synth with free-running oscillators does
  from one note to the next), while the group delay stays under a millisecond. Used for sounds that
  cannot be re-rendered with other phases (recordings, the deterministic asm-sub); amsynth is
  re-rendered instead, since its oscillators start at random phase.
"""

from __future__ import annotations

import numpy as np

ENVELOPE_WINDOW = 0.01  # s
MAX_ENVELOPE_GAIN_DB = 40.0
ATTACK_END = 10 ** (-3 / 20)
BANDWIDTH_ENERGY = 0.99
PHASE_SECTIONS = 8
PHASE_RADIUS = 0.6


def _f32(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def add_noise(audio: np.ndarray, db: float, seed: int) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float64)
    peak = float(np.abs(x).max()) if x.size else 0.0
    noise = np.random.default_rng(seed).standard_normal(x.shape)
    return _f32(x + noise * peak * 10 ** (db / 20))


def gain(audio: np.ndarray, db: float) -> np.ndarray:
    return _f32(np.asarray(audio, dtype=np.float64) * 10 ** (db / 20))


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


def detune(audio: np.ndarray, cents: float) -> np.ndarray:
    from scipy.signal import resample

    x = np.asarray(audio, dtype=np.float64)
    ratio = 2 ** (cents / 1200)
    return _f32(_fit(resample(x, max(1, round(len(x) / ratio))), len(x)))


def envelope(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS amplitude over ``ENVELOPE_WINDOW`` around every sample (moving average of x^2)."""
    from scipy.ndimage import uniform_filter1d

    x = np.asarray(audio, dtype=np.float64)
    w = max(1, round(ENVELOPE_WINDOW * sample_rate))
    return np.sqrt(np.maximum(uniform_filter1d(x * x, w, mode="constant"), 0.0))


def monotone_envelope(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """(envelope, peak index): the RMS envelope made non-decreasing up to its peak and
    non-increasing after it (running maxima), so a warp of it is monotone in its factor whatever
    the sound's own tremolo or swells."""
    env = envelope(audio, sample_rate)
    peak = int(np.argmax(env))
    out = env.copy()
    out[: peak + 1] = np.maximum.accumulate(env[: peak + 1])
    out[peak:] = np.maximum.accumulate(env[peak:][::-1])[::-1]
    return out, peak


def stretch_envelope(audio: np.ndarray, sample_rate: int, part: str, factor: float) -> np.ndarray:
    """Attack (``part="attack"``) or decay (``"decay"``) made ``factor`` times as long.

    With E the monotone envelope peaking at t_p and t_a the attack's end (E first within 3 dB of its
    peak): a faster attack (factor < 1) is ``E'(t) = E(min(t / factor, t_a))`` up to t_a, E after; a
    slower one ``E'(t) = min(E(t / factor), E(t))`` (the stretched rise until it meets the
    original); decay, ``E'(t) = E(t_p + (t - t_p) / factor)`` after t_p (0 past the end). The
    audio is multiplied by ``E' / E``, so its carrier (partials, vibrato, noise) is kept.
    """
    if part not in ("attack", "decay"):
        raise ValueError(f"part must be attack or decay, got {part!r}")
    x = np.asarray(audio, dtype=np.float64)
    env, peak = monotone_envelope(x, sample_rate)
    t = np.arange(len(x), dtype=np.float64)
    if part == "attack":  # the rise ends where the envelope first comes within 3 dB of its peak
        end = int(np.argmax(env >= ATTACK_END * env[peak]))
        if factor <= 1:  # faster: the rise up to the attack's end is compressed, the rest kept
            warped = np.where(t <= end, np.interp(np.minimum(t / factor, end), t, env), env)
        else:  # slower: the rise is stretched until it meets the original envelope
            warped = np.minimum(np.interp(t / factor, t, env), env)
    else:
        warped = np.where(t <= peak, env, np.interp(peak + (t - peak) / factor, t, env, right=0.0))
    floor = env.max() * 1e-5
    g = np.minimum(warped / np.maximum(env, floor), 10 ** (MAX_ENVELOPE_GAIN_DB / 20))
    return _f32(x * g)


def attack_time(audio: np.ndarray, sample_rate: int) -> float:
    """Seconds from the envelope's first -40 dB re its peak to its first -3 dB (the rise a listener hears)."""
    env, peak = monotone_envelope(audio, sample_rate)
    start = int(np.argmax(env >= 0.01 * env[peak]))
    end = int(np.argmax(env >= ATTACK_END * env[peak]))
    return (end - start) / sample_rate


def bandwidth(audio: np.ndarray, sample_rate: int) -> float:
    """Frequency (Hz) under which ``BANDWIDTH_ENERGY`` of the signal's energy lies."""
    power = np.abs(np.fft.rfft(np.asarray(audio, dtype=np.float64))) ** 2
    cum = np.cumsum(power)
    k = int(np.searchsorted(cum, BANDWIDTH_ENERGY * cum[-1]))
    return float(k * sample_rate / (2 * (len(power) - 1)))


def lowpass(audio: np.ndarray, sample_rate: int, fraction: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(audio, dtype=np.float64)
    cutoff = min(max(fraction * bandwidth(x, sample_rate), 20.0), 0.45 * sample_rate)
    return _f32(sosfiltfilt(butter(4, cutoff, fs=sample_rate, output="sos"), x))  # 4th order twice: 8th


def random_phase(audio: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """The same partials with other, random relative phases (all-pass cascade, see the module doc)."""
    from scipy.signal import sosfilt

    rng = np.random.default_rng(seed)
    r = PHASE_RADIUS
    sos = []
    for f in np.exp(rng.uniform(np.log(50.0), np.log(0.45 * sample_rate), PHASE_SECTIONS)):
        c = -2 * r * np.cos(2 * np.pi * f / sample_rate)
        sos.append([r * r, c, 1.0, 1.0, c, r * r])  # numerator = reversed denominator: |H| = 1
    return _f32(sosfilt(np.array(sos), np.asarray(audio, dtype=np.float64)))
