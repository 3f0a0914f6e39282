"""Timbre transfer (``asm ddsp resynth``): any monophonic input played by a trained DDSP model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from asm.ddsp.features import frame_loudness, offline_f0, read_mono
from asm.ddsp.model import DdspModel, shift_pitch
from asm.errors import AsmError


def resynthesize(model: DdspModel, path: Path, semitones: float = 0.0, loudness_offset: float = 0.0,
                 seed: int = 0, f0_method: str | None = None) -> np.ndarray:
    """The input's pitch and loudness, shifted, through the model: mono float32 at its rate. The pitch comes
    from ``f0_method`` (default: the model's own, that of its training features)."""
    from asm.audio.signal import is_silent

    cfg = model.config
    audio = read_mono(Path(path), cfg.sample_rate)
    if is_silent(audio):
        raise AsmError(f"{path} is silent: nothing to resynthesise")
    if len(audio) < cfg.window:
        raise AsmError(f"{path} is too short ({len(audio) / cfg.sample_rate:.3f} s; at least "
                       f"{cfg.window / cfg.sample_rate:.3f} s needed)")
    f0, _ = offline_f0(audio, replace(cfg, f0_method=f0_method) if f0_method else cfg)
    if not (f0 > 0).any():
        raise AsmError(f"{path} has no pitch that the pitch tracker can follow: give a monophonic pitched input")
    loud = frame_loudness(audio, cfg) + loudness_offset
    f0_t = shift_pitch(torch.from_numpy(f0), semitones).unsqueeze(0)
    loud_t = torch.from_numpy(loud).unsqueeze(0)
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, (f0_t.shape[1] - 1) * cfg.hop, generator=g) * 2 - 1
    with torch.no_grad():
        out = model.render(f0_t, loud_t, noise)[0].numpy()
    return out[: len(audio)].astype(np.float32)
