"""The differentiable asm-sub twin follows the real Faust synth (DawDreamer) and has usable gradients.

asm's host (DawDreamer, one sample per poly compute) frees a releasing voice right after its first
output sample below -90 dB; the twin follows that by default (``host_voice_freeing``), and without
it matches DawDreamer computing every voice (the DSP's math alone).
"""

import numpy as np
import pytest
import torch

from asm.audio.metrics import distance
from asm.errors import AsmError
from asm.midi.notes import Note, held
from asm.perf.twin_fidelity import MODULES, NEUTRAL, all_voices_renderer, twin_renders
from asm.registry.synth_loader import load_synth
from asm.synth.diff import asm_sub, twin_module
from asm.synth.diff import modules as m
from asm.synth.diff.chain import Chain, Node, Voices

SR = 16000
DURATION = 0.45
NOTES = held([60], 100, 0.3)


@pytest.fixture(scope="module")
def synth():
    return load_synth("asm-sub", SR)


def _pair(synth, values, notes=NOTES, duration=DURATION):
    values = synth.space.quantise(values).astype(np.float32).astype(np.float64)
    ref = synth.render(values, notes, duration)
    out = twin_renders("asm-sub", values[None], notes, SR, duration)[0]
    return out, ref


# per module: the tolerance is float rounding (the Faust build computes in float32, the twin in float64)
@pytest.mark.parametrize("module", ["oscillator saw", "oscillator square", "oscillator sine", "noise",
                                    "filter lowpass", "filter bandpass", "filter highpass", "filter envelope",
                                    "amp envelope", "lfo", "drive"])
def test_each_module_matches_the_faust_render(synth, module):
    values = synth.space.from_named({**NEUTRAL, **MODULES[module]})
    out, ref = _pair(synth, values)
    assert np.abs(ref).max() > 0.05
    assert np.abs(out - ref).max() < 1e-3, module
    assert distance("mr-stft", out[None], ref[None], SR)[0] < 1e-3, module


def test_noise_is_the_faust_lcg_sample_for_sample(synth):
    values = synth.space.from_named({**NEUTRAL, **MODULES["noise"]})
    out, ref = _pair(synth, values)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_random_presets_match_the_faust_dsp(synth):
    space = synth.space
    values = space.quantise(space.full(space.random_free(np.random.default_rng(3), 12)))
    values = values.astype(np.float32).astype(np.float64)
    # every voice computed: the DSP's math alone (asm's host frees some releasing voices early)
    render = all_voices_renderer("asm-sub", SR)
    ref = np.stack([render(v, NOTES, DURATION) for v in values])
    out = twin_renders("asm-sub", values, NOTES, SR, DURATION, host_voice_freeing=False)
    d = distance("mr-stft", out, ref, SR)
    assert np.median(d) < 1e-3 and d.max() < 0.01, d


def test_random_presets_match_what_asm_renders(synth):
    space = synth.space
    values = space.quantise(space.full(space.random_free(np.random.default_rng(5), 12)))
    notes = held([60], 100, 0.75)
    ref = np.stack([synth.render(v, notes, 1.0) for v in values])
    d = distance("mr-stft", twin_renders("asm-sub", values, notes, SR, 1.0), ref, SR)
    assert np.median(d) < 1e-3 and d.max() < 0.05, d


def test_a_chord_with_staggered_notes_matches_the_faust_render(synth):
    notes = [Note(48, 110, 0.0, 0.3), Note(55, 70, 0.05, 0.2), Note(64, 90, 0.1213, 0.25)]
    values = synth.space.from_named({"osc2_level": 0.5, "noise_level": 0.1, "cutoff": 0.6, "resonance": 0.6})
    out, ref = _pair(synth, values, notes)
    assert distance("mr-stft", out[None], ref[None], SR)[0] < 1e-3
    assert np.abs(out - ref).max() < 1e-3


def test_releasing_voices_end_where_the_host_frees_them(synth):
    # a long release after an early note-off: the host frees the voice at its first sample below -90 dB
    values = synth.space.quantise(synth.space.from_named({**NEUTRAL, "osc1_wave": 1.0, "amp_release": 0.8}))
    notes = held([57], 100, 0.1)
    ref = synth.render(values, notes, 0.8)
    freed = twin_renders("asm-sub", values[None], notes, SR, 0.8)
    full = twin_renders("asm-sub", values[None], notes, SR, 0.8, host_voice_freeing=False)
    d_freed, d_full = (distance("mr-stft", x, ref[None], SR)[0] for x in (freed, full))
    assert d_freed < 1e-3, d_freed
    assert d_full > 0.3, d_full  # the release would otherwise play on


def _loss(params: torch.Tensor) -> torch.Tensor:
    voices = Voices.from_notes([held([57], 100, 0.05)] * len(params))
    audio = asm_sub.render(params, voices, SR, 0.08)
    return (audio ** 2).mean()


@pytest.mark.parametrize("name", ["cutoff", "resonance", "osc1_level", "osc1_pw", "amp_sustain", "amp_attack",
                                  "filter_env_amount", "drive", "lfo_to_amp"])
def test_gradients_agree_with_finite_differences(name):
    defaults = {p.name: p.default for p in asm_sub.ASM_SUB.params}
    defaults.update(osc1_wave=1 / 3, amp_decay=0.35, lfo_to_amp=0.3, drive=0.3)  # away from envelope kinks
    params = torch.tensor([[defaults[n] for n in asm_sub.NAMES]], dtype=torch.float64, requires_grad=True)
    _loss(params).backward()
    i = asm_sub.NAMES.index(name)
    eps = 1e-5
    up, down = params.detach().clone(), params.detach().clone()
    up[0, i] += eps
    down[0, i] -= eps
    numeric = (_loss(up) - _loss(down)).item() / (2 * eps)
    analytic = params.grad[0, i].item()
    assert abs(numeric) > 1e-6, name  # the parameter matters, so the comparison means something
    assert abs(analytic - numeric) <= 1e-3 * abs(numeric) + 1e-9, (name, analytic, numeric)


def test_soft_choices_mix_outputs_and_pass_gradients_to_logits():
    params = torch.tensor([[p.default for p in asm_sub.ASM_SUB.params]] * 2, dtype=torch.float64)
    voices = Voices.from_notes([NOTES] * 2)
    hard = asm_sub.render(params, voices, SR, 0.2)
    one_hot = torch.nn.functional.one_hot(torch.tensor([0, 0]), 4).double()
    torch.testing.assert_close(asm_sub.render(params, voices, SR, 0.2, soft={"osc1_wave": one_hot}), hard)
    logits = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    audio = asm_sub.render(params, voices, SR, 0.2, soft={"filter_type": torch.softmax(logits, -1)})
    audio.square().mean().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_biquad_with_fixed_cutoff_equals_the_analog_prototype_response():
    # RBJ lowpass via the twin's filter, driven by a unit impulse: its DFT is the bilinear-transformed response
    x = torch.zeros(1, 4096, dtype=torch.float64)
    x[0, 0] = 1
    fc, q = 1000.0, 2.0
    h = m.biquad(x, torch.full((1, 4096), fc, dtype=torch.float64), torch.tensor([[q]], dtype=torch.float64),
                 torch.tensor([[1.0, 0, 0]], dtype=torch.float64), SR)
    response = torch.fft.rfft(h[0]).abs()
    k = int(round(fc / SR * 4096))
    assert abs(response[0].item() - 1) < 1e-6  # unity at DC
    assert abs(response[k].item() - q) < 0.02 * q  # gain Q at the cutoff


def test_bad_inputs_are_user_errors():
    with pytest.raises(AsmError):
        asm_sub.render(torch.zeros(1, 3), Voices.from_notes([NOTES]), SR, 0.1)
    with pytest.raises(AsmError):
        asm_sub.controls(torch.zeros(1, len(asm_sub.NAMES)), soft={"cutoff": torch.ones(1, 2)})
    with pytest.raises(AsmError):
        Chain(nodes=(Node("y", m.sine, {"t": "phase"}),), output="y", given=frozenset({"x"}))
    with pytest.raises(AsmError):
        twin_module("amsynth")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_render_matches_cpu():
    params = torch.tensor(np.random.default_rng(0).random((4, len(asm_sub.NAMES))))
    cpu = asm_sub.render(params, Voices.from_notes([NOTES] * 4), SR, DURATION)
    gpu = asm_sub.render(params.cuda(), Voices.from_notes([NOTES] * 4, device="cuda"), SR, DURATION)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-6, rtol=1e-5)
