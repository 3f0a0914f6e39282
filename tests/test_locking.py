"""The three things AutoSoundMatch got wrong about locks, each checked on the real plugin.

1. Locked values are sent to the synth before every render.
2. Preset values land on the right parameters when locks are scattered over the index range.
3. The order of the unlocked parameters (what datasets and models see) is stable and stored.
"""

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import run_cli_process, spectral_centroid
from plugin_paths import AMSYNTH, amsynth_spec, needs_amsynth

from asm.midi.notes import held

pytest_plugins = ["plugin_helpers"]  # fixtures: amsynth_registry, crashy_plugin

SCATTERED = {0: 0.05, 5: 0.3, 11: 0.15, 14: 0.5, 22: 1.0, 27: 0.0, 33: 0.75, 40: 0.0}  # index -> value


def f32(x):
    return float(np.float32(x))


@needs_amsynth
@pytest.mark.parametrize("isolate", [False, True])
def test_locked_values_reach_the_plugin_before_every_render(isolate):
    from asm.synth.plugin import open_plugin

    spec = amsynth_spec()
    space = spec.space.with_locks(SCATTERED)
    synth = open_plugin(type(spec)(**{**spec.__dict__, "space": space}), isolate=isolate)
    rng = np.random.default_rng(0)
    notes = held([60], 100, 0.3)
    for values in rng.random((4, space.size)):  # callers pass anything at the locked positions
        synth.render(values, notes, 0.4)
        reported = synth.values()  # what the plugin itself holds after the render
        for index, value in SCATTERED.items():
            assert reported[index] == f32(space.params[index].quantise(value)), index
    # and audibly: cutoff locked low sounds like cutoff set low, whatever the caller asked for
    bright = spec.space.from_named({"filter_cutoff": 1.0, "osc1_waveform": 0.5})
    locked = synth.render(bright, notes, 0.5)
    assert spectral_centroid(locked, 16000) < 0.5 * spectral_centroid(
        open_plugin(spec, isolate=False).render(bright, notes, 0.5), 16000)
    synth.close()


@needs_amsynth
def test_locks_in_the_registry_apply_to_renders_in_a_new_process(cli, amsynth_registry, tmp_path):
    assert cli("lock", "amsynth", "filter_cutoff=0.1", "osc1_waveform=0.5").code == 0
    a, b = tmp_path / "locked.wav", tmp_path / "open.wav"
    r = run_cli_process("render", "--synth", "amsynth", "--set", "filter_cutoff=1.0", "--duration", "1", "--out", a)
    assert r.returncode == 0, r.stderr
    assert cli("unlock", "amsynth", "--all").code == 0
    r = run_cli_process("render", "--synth", "amsynth", "--set", "filter_cutoff=1.0", "--duration", "1", "--out", b)
    assert r.returncode == 0, r.stderr
    assert spectral_centroid(sf.read(a)[0], 16000) < 0.5 * spectral_centroid(sf.read(b)[0], 16000)


@needs_amsynth
def test_preset_values_land_on_the_right_parameters_with_scattered_locks(amsynth_registry):
    from asm.registry.db import session_scope
    from asm.registry.models import Preset
    from asm.synth.plugin import PluginSynth

    with session_scope() as session:
        preset = list(session.query(Preset).filter(Preset.name == "Synth Strings 1").one().values)
    spec = amsynth_spec()
    space = spec.space.with_locks(SCATTERED)
    free = space.free_part(np.array(preset))  # what a dataset stores and a model predicts
    assert free.shape == (41 - len(SCATTERED),)
    synth = PluginSynth(type(spec)(**{**spec.__dict__, "space": space}))
    synth.render_free(free, held([60], 100, 0.3), 0.4)
    reported = synth.values()
    for pos, p in enumerate(space.params):
        want = space.params[pos].quantise(SCATTERED[p.index]) if p.index in SCATTERED else space.params[pos].quantise(preset[pos])
        assert reported[p.index] == f32(want), p.name
    # the free vector's k-th entry belongs to the k-th free parameter in plugin-index order
    names = [p.name for p in space.free]
    assert names[:3] == ["amp_decay", "amp_sustain", "amp_release"] and "filter_cutoff" not in names
    assert space.full(free)[space.position("amp_decay")] == preset[1]


@needs_amsynth
def test_the_free_parameter_order_is_stable_and_stored(cli, amsynth_registry):
    from asm.registry.db import session_scope
    from asm.registry.synths import get_synth, space_of

    # lock in two different orders: same stored order, same signature
    assert cli("lock", "amsynth", "40=0", "master_vol=default", "5=0.3", "reverb_wet=0").code == 0
    first = cli("inspect-registry", "--synth", "amsynth", "--json").json()
    assert cli("unlock", "amsynth", "--all").code == 0
    assert cli("lock", "amsynth", "reverb_wet=0", "5=0.3", "master_vol=default", "40=0").code == 0
    second = cli("inspect-registry", "--synth", "amsynth", "--json").json()
    assert first["free_signature"] == second["free_signature"] and first["parameters"] == second["parameters"]

    stored = [(p["index"], p["free_position"]) for p in second["parameters"]]
    free = [i for i, pos in stored if pos is not None]
    assert [pos for _, pos in stored if pos is not None] == list(range(37))
    assert free == sorted(free) and {i for i, pos in stored if pos is None} == {5, 14, 27, 40}
    with session_scope() as session:
        space = space_of(get_synth(session, "amsynth"))
        assert [p.index for p in space.free] == free

    # another process reads the same order; re-registering the plugin keeps it
    r = run_cli_process("inspect-registry", "--synth", "amsynth", "--json")
    assert json.loads(r.stdout)["free_signature"] == second["free_signature"]
    assert cli("register-synth", "amsynth", "--path", AMSYNTH).code == 0
    third = cli("inspect-registry", "--synth", "amsynth", "--json").json()
    assert third["free_signature"] == second["free_signature"] and third["parameters"] == second["parameters"]


def test_migration_stores_the_free_order_of_an_existing_registry(tmp_path):
    """A registry made before free_position existed gets it filled in by migration 0002."""
    import sqlalchemy as sa
    from alembic import command

    from asm.registry.db import _alembic_config

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = _alembic_config(engine)
    command.upgrade(cfg, "0001")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO synth (id, name, kind, path, version, settings, created_at, updated_at) "
                             "VALUES (1, 's', 'vst2', '/x.so', '', '{}', '2024-01-01', '2024-01-01')"))
        for index in range(6):
            locked = index in (1, 4)
            conn.execute(sa.text(
                'INSERT INTO parameter (synth_id, "index", name, kind, minimum, maximum, unit, scale, "default", '
                "locked, locked_value) VALUES (1, :i, :n, 'continuous', 0, 1, '', 'linear', 0, :l, :v)"),
                {"i": index, "n": f"p{index}", "l": locked, "v": 0.5 if locked else None})
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        rows = conn.execute(sa.text('SELECT "index", free_position FROM parameter ORDER BY "index"')).all()
    assert rows == [(0, 0), (1, None), (2, 1), (3, 2), (4, None), (5, 3)]
