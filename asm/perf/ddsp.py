"""``asm perf ddsp``: the exported DDSP model on one CPU core: real-time factor per buffer size, latency, and
how far its streaming output is from the offline render of the same input."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

BUFFERS = (128, 512, 2048)


def test_signal(sample_rate: int, seconds: float, seed: int = 0) -> torch.Tensor:
    """A phrase of harmonic notes with vibrato and swells (seeded), standing in for a monophonic input."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    note = np.repeat(rng.integers(55, 76, size=int(seconds * 2) + 1), sample_rate // 2)[:n]
    f0 = 440.0 * 2 ** ((note - 69) / 12) * (1 + 0.005 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    env = 0.3 * (0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t))
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * env
    return torch.from_numpy(x.astype(np.float32))


def run_buffers(module, audio: torch.Tensor, buffer: int) -> tuple[torch.Tensor, float]:
    """The module's output over ``audio`` in buffers (after reset) and the seconds it took."""
    module.reset()
    outs = []
    n = audio.shape[0] // buffer * buffer
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, n, buffer):
            outs.append(module(audio[i: i + buffer].unsqueeze(0)))
    return torch.cat(outs, 1)[0], time.perf_counter() - start


def measure(name: str, seconds: float = 10.0, buffers: tuple[int, ...] = BUFFERS, seed: int = 0) -> dict:
    from asm.ddsp.stream import export, load_export, offline
    from asm.ddsp.train import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, summary = load_model(name)
        sr = summary["sample_rate"]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.nm"
            meta = export(model, summary, path)
            module, _ = load_export(path)
        audio = test_signal(sr, seconds, seed)
        reference = offline(model, audio)
        latency = int(module.calc_model_delay_samples())
        peak = float(reference.abs().max())
        run_buffers(module, audio[: sr], 512)  # TorchScript's profiling runs and first allocations
        rows = []
        for buffer in buffers:
            out, took = run_buffers(module, audio, buffer)
            n = min(out.shape[0] - latency, reference.shape[0])
            diff = float((out[latency: latency + n] - reference[:n]).abs().max())
            rows.append({"buffer": buffer, "rtf": out.shape[0] / sr / took, "ms_per_buffer": 1000 * took * buffer
                         / out.shape[0], "max_abs_diff": diff, "diff_db_below_peak":
                         20 * math.log10(peak / diff) if diff > 0 else math.inf})
        return {"name": name, "sample_rate": sr, "latency_samples": latency, "latency_ms": 1000 * latency / sr,
                "seconds": seconds, "peak": peak, "buffers": rows, "config": summary["config"],
                "knobs": list(meta["neutone_parameters"])}
    finally:
        torch.set_num_threads(threads)
