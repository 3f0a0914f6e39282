"""asm-sub's differentiable twin: its parameter mapping (identical to asm_sub.dsp) and one chain.

``render(params, voices, ...)`` takes normalised values ``(B, P)`` in the synth's parameter order
(``asm.synth.builtin.ASM_SUB.params``), exactly what the DawDreamer host receives. Continuous
parameters are differentiable; stepped ones (octave, semitone) are read as Faust reads them; a
categorical one is read as its hard choice unless ``soft`` gives weights ``(B, n_choices)`` for it.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from asm.errors import AsmError
from asm.synth.builtin import ASM_SUB
from asm.synth.diff import modules as m
from asm.synth.diff.chain import FAUST_VOICE_STOP_LEVEL, Chain, Node, Voices, VoiceSynth

VERSION = ASM_SUB.version  # the .dsp version this twin follows
NAMES = tuple(p.name for p in ASM_SUB.params)
CHOICES = {"osc1_wave": 4, "osc2_wave": 4, "filter_type": 3, "lfo_shape": 4}
STEPS = {"osc1_octave": (5, -2), "osc2_semitone": (25, -12)}


def _env_time(v: Tensor) -> Tensor:
    return m.log_map(0.001, 4.0, v)


def _bipolar(v: Tensor) -> Tensor:
    return 2 * v - 1


# normalised value -> natural unit, as the .dsp maps each slider
MAPPINGS = {
    "osc1_pw": lambda v: v * 0.9 + 0.05,
    "osc2_pw": lambda v: v * 0.9 + 0.05,
    "osc2_detune": lambda v: _bipolar(v) * 50,
    "cutoff": lambda v: m.log_map(30, 16000, v),
    "resonance": lambda v: m.log_map(0.5, 15, v),
    "filter_env_amount": lambda v: _bipolar(v) * 4,
    **{f"{env}_{stage}": _env_time for env in ("filter", "amp") for stage in ("attack", "decay", "release")},
    "lfo_rate": lambda v: m.log_map(0.1, 20, v),
    "lfo_to_pitch": lambda v: v * 2,
    "lfo_to_cutoff": lambda v: v * 2,
    "drive": lambda v: m.db_to_linear(v * 30),
    "output_gain": lambda v: m.db_to_linear(v * 30 - 24),
}


def controls(params: Tensor, soft: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Natural-unit controls (B, 1) and choice weights (B, n) from normalised values (B, P)."""
    if params.ndim != 2 or params.shape[1] != len(NAMES):
        raise AsmError(f"asm-sub twin expects parameters of shape (B, {len(NAMES)}), got {tuple(params.shape)}")
    soft = dict(soft or {})
    unknown = sorted(set(soft) - set(CHOICES))
    if unknown:
        raise AsmError(f"soft weights given for non-categorical parameters: {', '.join(unknown)}")
    out = {}
    for i, name in enumerate(NAMES):
        v = params[:, i : i + 1]
        if name in CHOICES:
            w = soft.get(name)
            out[name] = m.one_hot_choice(v[:, 0], CHOICES[name]) if w is None else w.to(params.dtype)
        elif name in STEPS:
            n, offset = STEPS[name]
            out[name] = m.steps(v, n) + offset
        else:
            out[name] = MAPPINGS.get(name, lambda x: x)(v)
    return out


def vibrato(lfo: Tensor, depth: Tensor) -> Tensor:
    return torch.pow(2.0, lfo * depth / 12)


def osc1_freq(freq: Tensor, octave: Tensor, vibrato: Tensor) -> Tensor:
    return freq * torch.pow(2.0, octave) * vibrato


def osc2_freq(freq: Tensor, semitone: Tensor, detune: Tensor, vibrato: Tensor) -> Tensor:
    return freq * torch.pow(2.0, (semitone + detune / 100) / 12) * vibrato


def filter_cutoff(cutoff: Tensor, env: Tensor, amount: Tensor, key_tracking: Tensor, freq: Tensor, lfo: Tensor,
                  lfo_depth: Tensor, sample_rate: float) -> Tensor:
    """Cutoff in Hz per sample, clamped to 20 Hz .. 0.45 SR as in the .dsp (keeps the biquad stable)."""
    note = 12 * torch.log2(freq / 440) + 69
    fc = cutoff * torch.pow(2.0, amount * env + key_tracking * (note - 60) / 12 + lfo * lfo_depth)
    return fc.clamp(20, sample_rate * 0.45)


def amplitude(env: Tensor, gain: Tensor, lfo: Tensor, depth: Tensor) -> Tensor:
    return env * gain * (1 - depth * (0.5 + 0.5 * lfo))


def noise_source(freq: Tensor, n_samples: int) -> Tensor:
    return m.noise(freq.shape[0], n_samples, freq.dtype, freq.device)


def vca(x: Tensor, amp: Tensor) -> Tensor:
    return x * amp


TIME = {"sample_rate": "sample_rate", "n_samples": "n_samples"}
VOICE_GIVEN = frozenset(NAMES) | {"freq", "gain", "gate_samples", "sample_rate", "n_samples"}

VOICE = Chain(
    nodes=(
        Node("lfo", m.lfo, {"rate": "lfo_rate", "shape": "lfo_shape", **TIME}),
        Node("vibrato", vibrato, {"lfo": "lfo", "depth": "lfo_to_pitch"}),
        Node("f1", osc1_freq, {"freq": "freq", "octave": "osc1_octave", "vibrato": "vibrato"}),
        Node("f2", osc2_freq, {"freq": "freq", "semitone": "osc2_semitone", "detune": "osc2_detune",
                               "vibrato": "vibrato"}),
        Node("osc1", m.oscillator, {"freq": "f1", "wave": "osc1_wave", "width": "osc1_pw", **TIME}),
        Node("osc2", m.oscillator, {"freq": "f2", "wave": "osc2_wave", "width": "osc2_pw", **TIME}),
        Node("noise", noise_source, {"freq": "freq", "n_samples": "n_samples"}),
        Node("mix", m.mixer, {"signals": ("osc1", "osc2", "noise"),
                              "levels": ("osc1_level", "osc2_level", "noise_level")}, {"scale": 0.5}),
        Node("filter_env", m.adsr, {"attack": "filter_attack", "decay": "filter_decay", "sustain": "filter_sustain",
                                    "release": "filter_release", "gate_samples": "gate_samples", **TIME}),
        Node("fc", filter_cutoff, {"cutoff": "cutoff", "env": "filter_env", "amount": "filter_env_amount",
                                   "key_tracking": "key_tracking", "freq": "freq", "lfo": "lfo",
                                   "lfo_depth": "lfo_to_cutoff", "sample_rate": "sample_rate"}),
        Node("filtered", m.biquad, {"x": "mix", "cutoff": "fc", "q": "resonance", "mode": "filter_type",
                                    "sample_rate": "sample_rate"}),
        Node("amp_env", m.adsr, {"attack": "amp_attack", "decay": "amp_decay", "sustain": "amp_sustain",
                                 "release": "amp_release", "gate_samples": "gate_samples", **TIME}),
        Node("amp", amplitude, {"env": "amp_env", "gain": "gain", "lfo": "lfo", "depth": "lfo_to_amp"}),
        Node("voice", vca, {"x": "filtered", "amp": "amp"}),
    ),
    output="voice",
    given=VOICE_GIVEN,
)

EFFECT = Chain(
    nodes=(
        Node("dc", m.dc_blocker, {"x": "voices"}),
        Node("out", m.drive, {"x": "dc", "gain": "drive", "output_gain": "output_gain"}),
    ),
    output="out",
    given=frozenset(NAMES) | {"voices", "sample_rate", "n_samples"},
)

SYNTH = VoiceSynth(voice=VOICE, effect=EFFECT)


def render(params: Tensor, voices: Voices, sample_rate: int, duration: float,
           soft: Mapping[str, Tensor] | None = None, host_voice_freeing: bool = True) -> Tensor:
    """Audio (B, round(duration * SR)) of asm-sub for normalised ``params`` (B, P) and ``voices``.

    ``host_voice_freeing``: end releasing voices where asm's DawDreamer host does (its first output
    sample below -90 dB after note-off); False lets every release play out, as the DSP alone would.
    """
    if voices.pitch.shape[0] != params.shape[0]:
        raise AsmError(f"{params.shape[0]} parameter rows but {voices.pitch.shape[0]} note rows")
    n_samples = int(round(duration * sample_rate))
    stop = FAUST_VOICE_STOP_LEVEL if host_voice_freeing else None
    return SYNTH.render(controls(params, soft), voices, int(sample_rate), n_samples, stop)
