"""Pictures of audio: log-frequency spectrograms, side by side on one colour scale, written atomically.

``asm match`` writes one for the target and its match; the HTML report shows them per target. The
figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display
needed), and a panel's level is dB re a full-scale sinusoid (``asm.audio.metrics`` normalisation),
so pictures of different runs compare directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asm.atomic import atomic_path
from asm.audio.io import check_writable

WINDOW_MS = 64.0  # analysis window; hop is 1/8 of it for a smooth picture
DYNAMIC_RANGE_DB = 80.0
FMIN_HZ = 30.0


def spectrogram_db(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times s, frequencies Hz, level dB re a full-scale sinusoid (F, frames)) of mono audio."""
    import torch

    from asm.audio.features import power_spectrogram
    from asm.audio.metrics import frame_length

    n = frame_length(sample_rate, WINDOW_MS)
    hop = n // 8
    x = np.asarray(audio, dtype=np.float32)
    if x.size == 0:
        x = np.zeros(1, np.float32)
    power = power_spectrogram(np.nan_to_num(x), n, hop)[0].numpy()
    k = 2.0 / float(torch.hann_window(n).sum())
    level = 10 * np.log10(np.maximum(power * k * k, 1e-12))
    times = np.arange(level.shape[1]) * hop / sample_rate
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    return times, freqs, level


def save_spectrograms(
    panels: Sequence[tuple[str, np.ndarray]],
    sample_rate: int,
    path: str | Path,
    title: str | None = None,
) -> Path:
    """One PNG with a spectrogram per ``(label, audio)`` panel, side by side, sharing axes and colour scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    path = Path(path)
    check_writable(path)
    if not panels:
        raise ValueError("no audio to draw")
    specs = [spectrogram_db(audio, sample_rate) for _, audio in panels]
    top = max(float(level.max()) for _, _, level in specs)
    vmax = float(np.ceil(top / 10.0) * 10.0)
    vmin = vmax - DYNAMIC_RANGE_DB
    duration = max(len(np.asarray(audio)) for _, audio in panels) / sample_rate

    fig = Figure(figsize=(4.6 * len(panels) + 1.2, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharex=True, sharey=True, squeeze=False)[0]
    mesh = None
    for ax, (label, _), (times, freqs, level) in zip(axes, panels, specs):
        keep = freqs >= FMIN_HZ
        mesh = ax.pcolormesh(times, freqs[keep], level[keep], shading="nearest", cmap="magma", vmin=vmin, vmax=vmax,
                             rasterized=True)
        ax.set_yscale("log")
        ax.set_ylim(FMIN_HZ, sample_rate / 2)
        ax.set_xlim(0, max(duration, 1e-3))
        ax.set_title(label)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (Hz)")
    ticks = [f for f in (50, 100, 200, 500, 1000, 2000, 4000, 8000, 16000) if f <= sample_rate / 2]
    axes[0].yaxis.set_major_locator(FixedLocator(ticks))
    axes[0].yaxis.set_minor_locator(NullLocator())
    axes[0].yaxis.set_major_formatter(FuncFormatter(lambda f, _: f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"))
    fig.colorbar(mesh, ax=list(axes), label="level (dB re full-scale sine)", pad=0.02)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return path


def save_figure(fig, path: Path) -> None:
    """Write a matplotlib figure as PNG atomically (a crash never leaves half a picture)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def save_match_picture(target: np.ndarray, match: np.ndarray, sample_rate: int, path: str | Path,
                       title: str | None = None) -> Path:
    """The target's and the match's spectrograms side by side (``asm match`` and the report)."""
    return save_spectrograms([("target", target), ("match", match)], sample_rate, path, title)
