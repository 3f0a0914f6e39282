"""How closely and how fast a differentiable twin follows its real synth (``asm perf twin``).

Fidelity: MR-STFT between the twin's render and DawDreamer's (asm's own host) for random presets,
one held note each, and per module for presets that isolate one module. Speed: batched twin renders
per second and the time of one gradient step (spectral loss backward through the whole chain).
"""

from __future__ import annotations

import time

import numpy as np

from asm.midi.notes import held
from asm.perf.render_speed import faust_bare_render
from asm.registry.db import session_scope
from asm.registry.synth_loader import load_spec
from asm.synth.builtin import BUILTINS
from asm.synth.diff import twin_module
from asm.synth.host import _FaustEngine, open_synth

# presets that isolate one module: everything else neutral (open filter, flat envelopes, no LFO)
NEUTRAL = {"cutoff": 1.0, "filter_env_amount": 0.5, "key_tracking": 0.0, "amp_attack": 0.0, "amp_decay": 0.0,
           "amp_sustain": 1.0, "amp_release": 0.0, "output_gain": 0.8, "osc1_level": 0.8}
MODULES = {
    "oscillator saw": {"osc1_wave": 0.0},
    "oscillator square": {"osc1_wave": 1 / 3, "osc1_pw": 0.3},
    "oscillator triangle": {"osc1_wave": 2 / 3},
    "oscillator sine": {"osc1_wave": 1.0},
    "noise": {"osc1_level": 0.0, "noise_level": 1.0},
    "filter lowpass": {"cutoff": 0.5, "resonance": 0.7},
    "filter bandpass": {"cutoff": 0.5, "filter_type": 0.5},
    "filter highpass": {"cutoff": 0.5, "filter_type": 1.0},
    "filter envelope": {"cutoff": 0.4, "filter_env_amount": 0.9, "filter_decay": 0.4},
    "amp envelope": {"amp_attack": 0.5, "amp_decay": 0.5, "amp_sustain": 0.5, "amp_release": 0.4},
    "lfo": {"lfo_to_pitch": 0.5, "lfo_to_cutoff": 0.5, "lfo_to_amp": 0.5, "cutoff": 0.6},
    "drive": {"drive": 0.7},
}


def twin_renders(synth_name: str, values: np.ndarray, notes, sample_rate: int, duration: float,
                 device: str = "cpu", dtype: str = "float64", host_voice_freeing: bool = True) -> np.ndarray:
    """Twin audio (B, T) for full normalised values (B, P), every row playing ``notes``."""
    import torch

    from asm.synth.diff.chain import Voices

    twin = twin_module(synth_name)
    dt = getattr(torch, dtype)
    params = torch.tensor(values, dtype=dt, device=device)
    voices = Voices.from_notes([notes] * len(values), dtype=dt, device=device)
    with torch.no_grad():
        return twin.render(params, voices, sample_rate, duration,
                           host_voice_freeing=host_voice_freeing).float().cpu().numpy()


def all_voices_renderer(synth_name: str, sample_rate: int, block_size: int = 512):
    """DawDreamer rendering the built-in synth with every voice computed (``dynamic_voices = False``).

    asm's host keeps DawDreamer's dynamic voice allocation (about 9x faster), which frees some
    releasing voices at their first output sample below -90 dB after note-off (the twin follows that
    by default); this reference shows the DSP's math alone, compared with the twin's full releases.
    """
    builtin = BUILTINS[synth_name]
    f = _FaustEngine(builtin.dsp_code(), builtin.voices, sample_rate, block_size)
    f.proc.dynamic_voices = False
    f.proc.compile()
    f.engine.load_graph([(f.proc, [])])
    bare = faust_bare_render(f, [f.index[p.name] for p in builtin.params])

    def render(values, notes, duration):
        return bare(values, notes, duration)[0][: int(round(duration * sample_rate))]

    return render


def measure_twin(synth_name: str, n: int, sample_rate: int = 16000, duration: float = 1.0, seed: int = 0,
                 batch: int = 32, device: str = "cpu", all_voices: bool = False) -> dict:
    import torch

    from asm.audio.metrics import distance
    from asm.synth.diff.chain import Voices

    module = twin_module(synth_name)  # fails first for a synth without a twin
    with session_scope() as session:
        spec = load_spec(session, synth_name, sample_rate)
    synth = open_synth(spec)
    render_reference = all_voices_renderer(synth_name, sample_rate) if all_voices else synth.render
    space = spec.space
    notes = held([60], 100, 0.75 * duration)
    rng = np.random.default_rng(seed)
    # the values DawDreamer receives: quantised, locks applied, float32 controls
    values = space.apply_locks(space.quantise(space.full(space.random_free(rng, n)))).astype(np.float32)
    values = values.astype(np.float64)
    reference = np.stack([render_reference(v, notes, duration) for v in values])
    twin = np.concatenate([twin_renders(synth_name, values[i : i + batch], notes, sample_rate, duration, device,
                                        host_voice_freeing=not all_voices)
                           for i in range(0, n, batch)])
    d = distance("mr-stft", twin, reference, sample_rate)
    twin32 = np.concatenate([twin_renders(synth_name, values[i : i + batch], notes, sample_rate, duration, device,
                                          "float32", host_voice_freeing=not all_voices)
                             for i in range(0, n, batch)])
    d32 = distance("mr-stft", twin32, reference, sample_rate)
    modules = {}
    for name, setting in MODULES.items():
        v = space.apply_locks(space.quantise(space.from_named({**NEUTRAL, **setting}))).astype(np.float32)
        v = v.astype(np.float64)[None]
        ref = render_reference(v[0], notes, duration)[None]
        out = twin_renders(synth_name, v, notes, sample_rate, duration, device, host_voice_freeing=not all_voices)
        modules[name] = {"mr_stft": float(distance("mr-stft", out, ref, sample_rate)[0]),
                         "max_abs_error": float(np.abs(out - ref).max()), "peak": float(np.abs(ref).max())}

    # speed: batched renders per second (float32, no grad) and one gradient step
    params = torch.tensor(values[:batch], dtype=torch.float32, device=device)
    voices = Voices.from_notes([notes] * len(params), dtype=torch.float32, device=device)
    with torch.no_grad():
        module.render(params, voices, sample_rate, duration)  # warm-up
        t0 = time.perf_counter()
        reps = 3
        for _ in range(reps):
            module.render(params, voices, sample_rate, duration)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rps = reps * len(params) / (time.perf_counter() - t0)
    target = torch.tensor(reference[: len(params)], device=device)
    free = params.clone().requires_grad_(True)
    t0 = time.perf_counter()
    audio = module.render(free, voices, sample_rate, duration)
    loss = _log_stft_loss(audio, target)
    loss.backward()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    grad_s = time.perf_counter() - t0
    return {
        "synth": synth_name, "n": n, "reference": "all voices computed" if all_voices else "asm host",
        "sample_rate": sample_rate, "duration": duration, "device": device,
        "median": float(np.median(d)), "p90": float(np.percentile(d, 90)), "mean": float(np.mean(d)),
        "median_float32": float(np.median(d32)), "p90_float32": float(np.percentile(d32, 90)),
        "modules": modules, "renders_per_s": rps, "batch": len(params), "grad_step_s": grad_s,
        "grad_finite": bool(torch.isfinite(free.grad).all()),
    }


def _log_stft_loss(audio, target):
    """A small differentiable spectral loss for timing the backward pass (log magnitude L1)."""
    import torch

    window = torch.hann_window(1024, device=audio.device, dtype=audio.dtype)

    def mag(x):
        return torch.stft(x, 1024, 256, window=window, return_complex=True).abs()

    return (torch.log(mag(audio) + 1e-5) - torch.log(mag(target.to(audio.dtype)) + 1e-5)).abs().mean()
