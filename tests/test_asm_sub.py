"""The built-in asm-sub synth renders real, well-behaved audio through DawDreamer."""

import dawdreamer as daw
import numpy as np
import pytest
from conftest import fundamental, spectral_centroid, spectrum

from asm.midi.notes import Note, held
from asm.registry.db import session_scope
from asm.registry.synth_loader import load_spec, load_synth
from asm.synth.builtin import ASM_SUB
from asm.synth.host import open_synth


@pytest.fixture
def synth():
    return load_synth("asm-sub", 16000)


def test_faust_code_declares_exactly_the_registered_parameters():
    engine = daw.RenderEngine(16000, 512)
    proc = engine.make_faust_processor("check")
    proc.num_voices = 2
    proc.group_voices = True
    proc.set_dsp_string(ASM_SUB.dsp_code())
    assert proc.compile()
    labels = {d["label"] for d in proc.get_parameters_description()}
    assert labels == {p.name for p in ASM_SUB.params}
    assert len(ASM_SUB.params) >= 24 and ASM_SUB.voices >= 8


def test_c4_is_audible_right_length_and_in_tune(synth):
    audio = synth.render(synth.space.defaults(), held([60], 100, 0.75), 1.0)
    assert audio.dtype == np.float32 and audio.shape == (16000,)
    assert np.abs(audio).max() > 0.05
    f0 = fundamental(audio, 16000)
    assert abs(f0 - 261.63) / 261.63 < 0.01, f0


def test_raising_cutoff_raises_spectral_centroid(synth):
    space = synth.space
    notes = held([48], 100, 0.8)
    dull = synth.render(space.from_named({"cutoff": 0.3, "filter_env_amount": 0.5}), notes, 1.0)
    bright = synth.render(space.from_named({"cutoff": 0.85, "filter_env_amount": 0.5}), notes, 1.0)
    assert spectral_centroid(bright, 16000) > 1.5 * spectral_centroid(dull, 16000)


def test_chord_has_energy_at_each_fundamental(synth):
    values = synth.space.from_named({"osc1_wave": 1.0, "cutoff": 0.6})  # sine: one partial per note
    pitches = [60, 64, 67]
    audio = synth.render(values, held(pitches, 100, 0.9), 1.0)
    freqs, mag = spectrum(audio, 16000)
    floor = np.median(mag)
    for p in pitches:
        f = 440 * 2 ** ((p - 69) / 12)
        band = (freqs > f * 0.98) & (freqs < f * 1.02)
        assert mag[band].max() > 100 * floor, p
    gap = (freqs > 290) & (freqs < 320)  # between E4 (329.6) and D4: no note there
    assert mag[gap].max() < 0.1 * mag[(freqs > 255) & (freqs < 268)].max()


def test_render_does_not_depend_on_what_was_rendered_before(synth):
    space = synth.space
    rng = np.random.default_rng(1)
    target = space.full(space.random_free(rng, 1)[0])
    target = space.from_named({"amp_sustain": 0.8, "noise_level": 0.3, "lfo_to_amp": 0.5}, target)
    first = synth.render(target, held([57], 90, 0.6), 1.0)
    # a long, loud, different render that leaves voices sounding and the LFO/noise state moved on
    synth.render(space.full(space.random_free(rng, 1)[0]), held([40, 52, 64, 76], 127, 3.0), 2.0)
    again = synth.render(target, held([57], 90, 0.6), 1.0)
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("sample_rate", [16000, 22050, 44100, 48000])
def test_random_and_extreme_presets_never_produce_nan_or_inf(sample_rate):
    with session_scope() as session:
        spec = load_spec(session, "asm-sub", sample_rate)
    synth = open_synth(spec)
    space = spec.space
    rng = np.random.default_rng(sample_rate)
    presets = space.full(space.random_free(rng, 24))
    extreme = space.from_named({"cutoff": 1.0, "resonance": 1.0, "key_tracking": 1.0, "filter_env_amount": 1.0,
                                "lfo_to_cutoff": 1.0, "drive": 1.0, "output_gain": 1.0, "osc1_octave": 1.0})
    presets = np.vstack([presets, extreme, space.from_named({"cutoff": 0.0, "resonance": 1.0})])
    for i, values in enumerate(presets):
        notes = [Note(int(p), 127, 0.0, 0.4) for p in (rng.integers(21, 109, size=3) if i % 2 else [108, 120])]
        audio = synth.render(values, notes, 0.5)
        assert audio.shape == (int(0.5 * sample_rate),)
        assert np.isfinite(audio).all(), (sample_rate, space.named(values))
        assert np.abs(audio).max() < 4.0


def test_locked_value_reaches_the_synth_whatever_the_caller_sends():
    from asm.registry.synths import get_synth, set_locks

    with session_scope() as session:
        row = get_synth(session, "asm-sub")
        set_locks(session, row, {11: 0.2})  # cutoff
    synth = load_synth("asm-sub", 16000)
    space = synth.space
    notes = held([48], 100, 0.8)
    bright_request = space.defaults()
    bright_request[space.position("cutoff")] = 0.95  # ignored: cutoff is locked
    got = synth.render(bright_request, notes, 1.0)
    unlocked = open_synth(synth.spec.__class__(**{**synth.spec.__dict__, "space": space.with_locks({11: None})}))
    expected = unlocked.render(space.from_named({"cutoff": 0.2}), notes, 1.0)
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("octave", [-2, -1, 0, 1, 2])
def test_every_oscillator_octave_sounds_at_its_pitch(synth, octave):
    values = synth.space.from_named({"osc1_wave": 1.0, "osc1_octave": (octave + 2) / 4, "cutoff": 1.0})
    audio = synth.render(values, held([60], 100, 0.9), 1.0)
    expected = 261.63 * 2.0 ** octave
    assert abs(fundamental(audio, 16000, lo=30, hi=4000) - expected) / expected < 0.01


@pytest.mark.parametrize("semitone", [-12, -5, 0, 7, 12])
def test_oscillator_two_semitones_sound_at_their_pitch(synth, semitone):
    values = synth.space.from_named({"osc1_level": 0.0, "osc2_level": 1.0, "osc2_wave": 1.0,
                                     "osc2_semitone": (semitone + 12) / 24, "cutoff": 1.0})
    audio = synth.render(values, held([60], 100, 0.9), 1.0)
    expected = 261.63 * 2.0 ** (semitone / 12)
    assert abs(fundamental(audio, 16000, lo=30, hi=4000) - expected) / expected < 0.01
