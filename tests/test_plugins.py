"""Real plugins: registration, crash isolation, reproducible renders (amsynth and a crashing plugin)."""

import json
import os
import signal

import numpy as np
import pytest
from conftest import run_cli_process, spectrum
from plugin_paths import AMSYNTH, amsynth_spec, needs_amsynth

from asm.errors import AsmError
from asm.midi.notes import held

pytest_plugins = ["plugin_helpers"]  # fixtures: amsynth_registry, crashy_plugin


def _registry(cli):
    return json.dumps(cli("inspect-registry", "--json").json(), sort_keys=True)


def rel_spectral_distance(a, b, sr=16000):
    _, ma = spectrum(a, sr, pad=1)
    _, mb = spectrum(b, sr, pad=1)
    return float(np.linalg.norm(ma - mb) / np.linalg.norm(ma))


@needs_amsynth
def test_register_amsynth_reads_every_parameter(cli):
    r = cli("register-synth", "amsynth", "--path", AMSYNTH, "--json")
    assert r.code == 0, r.err
    result = r.json()
    assert result["created"] and result["plugin_id"] == "amsy" and result["parameter_count"] == 41
    data = cli("inspect-registry", "--synth", "amsynth", "--json").json()
    params = {p["name"]: p for p in data["parameters"]}
    assert [p["index"] for p in data["parameters"]] == list(range(41))
    assert params["osc2_sync"]["kind"] == "boolean"
    assert params["osc2_pitch"]["kind"] == "stepped" and params["osc2_pitch"]["steps"] == 25
    assert params["lfo_waveform"]["steps"] == 7 and params["keyboard_mode"]["steps"] == 3
    assert params["osc2_range"]["kind"] == "categorical"  # octave factors 0.125 .. 16 are not evenly spaced
    assert params["osc2_range"]["choices"] == ["0.125", "0.25", "0.5", "1", "2", "4", "8", "16"]
    assert params["filter_cutoff"]["kind"] == "continuous" and params["filter_cutoff"]["default"] == 1.0
    assert params["master_vol"]["default"] == pytest.approx(0.67)
    assert data["preset_count"] == 0 and data["free_count"] == 41


@needs_amsynth
def test_registering_again_updates_in_place_and_keeps_locks_and_presets(cli, amsynth_registry):
    assert cli("lock", "amsynth", "master_vol=0.5", "filter_type=0.5").code == 0
    before = cli("inspect-registry", "--synth", "amsynth", "--json").json()
    r = cli("register-synth", "amsynth", "--path", AMSYNTH)
    assert r.code == 0, r.err
    assert "no parameter changes" in r.out and f"kept {amsynth_registry['imported']} preset(s) and 2 lock(s)" in r.out
    after = cli("inspect-registry", "--synth", "amsynth", "--json").json()
    assert after == before


@needs_amsynth
def test_a_changed_parameter_list_is_reported_and_locks_follow_names(cli, amsynth_registry):
    """Simulate a plugin update: the registry has an old parameter list (one fewer, shifted names)."""
    from asm.registry.db import session_scope
    from asm.registry.synths import get_synth, space_of

    assert cli("lock", "amsynth", "master_vol=0.25").code == 0
    with session_scope() as session:
        row = get_synth(session, "amsynth")
        preset = row.presets[0]
        first = list(preset.values)
        for p in row.parameters:  # "old version": index 14 was called master_volume
            if p.index == 14:
                p.name = "master_volume"
    r = cli("register-synth", "amsynth", "--path", AMSYNTH)
    assert r.code == 0, r.err
    assert "the plugin changed" in r.out and "renamed 14:master_volume -> master_vol" in r.out
    with session_scope() as session:
        row = get_synth(session, "amsynth")
        assert space_of(row).spec("master_vol").locked_value == 0.25
        assert list(row.presets[0].values) == first


def test_paths_that_are_not_plugins_give_one_clear_line(cli, tmp_path):
    before = _registry(cli)
    text = tmp_path / "notes.so"
    text.write_text("not a plugin")
    for path, message in [(tmp_path / "missing.so", "plugin not found"),
                          (text, "could not be loaded as a plugin"),
                          (tmp_path, "is a directory"),
                          (tmp_path / "x.txt", "plugin not found")]:
        r = cli("register-synth", "thing", "--path", path)
        lines = [line for line in r.err.splitlines() if line.strip()]
        assert r.code == 2 and len(lines) == 1 and message in lines[0], r.err
    assert _registry(cli) == before


def test_a_plugin_that_crashes_while_loading_leaves_the_cli_and_registry_intact(cli, crashy_plugin, monkeypatch):
    before = _registry(cli)
    monkeypatch.setenv("CRASHY_MODE", "load")
    r = run_cli_process("register-synth", "crashy", "--path", crashy_plugin)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "crashed (signal SIGSEGV) while loading" in r.stderr and r.stderr.count("\n") == 1
    assert _registry(cli) == before


def test_a_plugin_that_crashes_while_rendering_raises_and_is_restarted(cli, crashy_plugin, monkeypatch):
    from asm.synth.host import SynthSpec
    from asm.synth.plugin import IsolatedPlugin, describe_plugin, space_from

    monkeypatch.setenv("CRASHY_MODE", "abort")
    info = describe_plugin(crashy_plugin)  # loading and reading parameters do not crash
    assert info.plugin_id == "crsh" and [p.name for p in info.params] == ["level", "tone"]
    synth = IsolatedPlugin(SynthSpec("crashy", "vst2", str(crashy_plugin), space_from(info)))
    first = synth.child_pid
    for _ in range(2):
        with pytest.raises(AsmError, match=r"crashed \(signal SIGABRT\) while rendering; it is restarted"):
            synth.render(np.array([0.5, 0.5]), held([60], 100, 0.2), 0.5)
    assert synth.child_pid != first  # a fresh child was started for the second call
    synth.close()


@needs_amsynth
def test_isolated_amsynth_survives_a_killed_child_and_matches_in_process_renders():
    from asm.synth.plugin import IsolatedPlugin, PluginSynth

    spec = amsynth_spec()
    iso, local = IsolatedPlugin(spec), PluginSynth(spec)
    values = spec.space.from_named({"filter_cutoff": 0.6, "osc1_waveform": 0.25})
    notes = held([57], 100, 0.5)
    a = iso.render(values, notes, 1.0)
    os.kill(iso.child_pid, signal.SIGSEGV)
    with pytest.raises(AsmError, match="crashed"):
        iso.render(values, notes, 1.0)
    b = iso.render(values, notes, 1.0)  # restarted
    c = local.render(values, notes, 1.0)
    assert a.dtype == np.float32 and a.shape == (16000,) and np.abs(a).max() > 0.05
    assert rel_spectral_distance(a, b) < 0.02 and rel_spectral_distance(a, c) < 0.02
    iso.close()


@needs_amsynth
def test_renders_do_not_depend_on_what_was_rendered_before():
    """Long release, reverb tail and portamento would leak from one render into the next."""
    from asm.synth.plugin import PluginSynth

    spec = amsynth_spec()
    space = spec.space
    tail = space.from_named({"amp_release": 0.9, "reverb_wet": 0.9, "reverb_roomsize": 0.95,
                             "portamento_time": 0.8, "filter_resonance": 0.8})
    plain = space.from_named({"amp_release": 0.2, "portamento_time": 0.8})
    fresh = PluginSynth(spec).render(plain, held([48], 100, 0.3), 1.0)
    used = PluginSynth(spec)
    used.render(tail, held([84], 127, 0.9), 1.0)  # leaves a reverb tail, a voice in release, pitch 84
    after = used.render(plain, held([48], 100, 0.3), 1.0)
    assert rel_spectral_distance(fresh, after) < 0.02
    assert np.abs(used.render(plain, [], 0.5)).max() == 0.0  # nothing rings on into an empty render

    # The same sequence through the bare DawDreamer calls (no reset) is measurably different.
    bare = PluginSynth(spec).bare_renderer()
    bare(tail, held([84], 127, 0.9), 1.0)
    leaked = bare(plain, held([48], 100, 0.3), 1.0).mean(axis=0)[:16000]
    assert rel_spectral_distance(fresh, leaked) > 0.1


# A preset that drives amsynth's filter to NaN (resonance 1, cutoff high, full filter LFO, osc sync):
# found by random search with values snapped to the ends of their ranges, as NSGA-II's mutation does.
BLOW_UP = {"amp_attack": 0.604794, "amp_decay": 0.695704, "amp_sustain": 0.0, "amp_release": 0.463659,
           "osc1_waveform": 0.75, "filter_attack": 0.990129, "filter_decay": 0.979559, "filter_sustain": 0.124986,
           "filter_release": 0.035155, "filter_resonance": 1.0, "filter_env_amount": 0.0, "filter_cutoff": 0.938239,
           "osc2_detune": 0.365641, "osc2_waveform": 0.5, "lfo_freq": 0.963858, "lfo_waveform": 0.0,
           "osc2_range": 0.285714, "osc_mix": 1.0, "freq_mod_amount": 0.405364, "filter_mod_amount": 1.0,
           "amp_mod_amount": 0.733284, "osc_mix_mode": 0.736601, "osc1_pulsewidth": 0.0, "osc2_pulsewidth": 1.0,
           "reverb_roomsize": 0.0, "reverb_wet": 0.0, "distortion_crunch": 0.0, "osc2_sync": 1.0,
           "portamento_time": 0.0, "osc2_pitch": 0.833333, "filter_type": 0.25, "filter_slope": 1.0,
           "freq_mod_osc": 1.0, "filter_kbd_track": 0.0, "filter_vel_sens": 0.262296, "amp_vel_sens": 0.076781}


@needs_amsynth
def test_a_preset_that_renders_nan_does_not_poison_the_renders_after_it():
    """amsynth keeps NaN in its filter state through MIDI resets; asm reloads the plugin instead."""
    from asm.synth.plugin import PluginSynth

    spec = amsynth_spec()
    space = spec.space
    plain = space.from_named({"filter_cutoff": 0.6, "osc1_waveform": 0.25})
    notes = held([57], 100, 0.5)
    fresh = PluginSynth(spec).render(plain, notes, 1.0)
    used = PluginSynth(spec)
    bad = used.render(space.from_named(BLOW_UP), held([60], 100, 0.75), 1.0)
    assert not np.isfinite(bad).all() and used.reloads >= 1  # the preset itself blows up, even when fresh
    after = used.render(plain, notes, 1.0)
    assert np.isfinite(after).all() and rel_spectral_distance(fresh, after) < 0.02

    # Without the reload (the bare DawDreamer calls) every later render stays NaN.
    bare = PluginSynth(spec).bare_renderer()
    bare(space.from_named(BLOW_UP), held([60], 100, 0.75), 1.0)
    assert not np.isfinite(bare(plain, notes, 1.0)).all()


@needs_amsynth
def test_registering_another_plugin_over_a_synth_with_presets_is_refused(cli, amsynth_registry, crashy_plugin):
    """A different plugin id with 2 of amsynth's 41 parameters would drop the presets' values."""
    before = _registry(cli)
    r = cli("register-synth", "amsynth", "--path", crashy_plugin)
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert r.code == 2 and len(lines) == 1, r.err
    assert "plugin id amsy -> crsh" in r.err and "drop 39 of 41 parameters" in r.err and "--replace" in r.err
    assert _registry(cli) == before

    r = cli("register-synth", "amsynth", "--path", crashy_plugin, "--replace", "--json")
    assert r.code == 0, r.err
    data = r.json()
    assert data["plugin_id"] == "crsh" and data["parameter_count"] == 2 and "drop 39 of 41" in r.err
    r = cli("restore", data["backup"])  # the backup made before the replacement brings everything back
    assert r.code == 0, r.err
    assert _registry(cli) == before
