"""import-presets / export-preset on the built-in synth (no plugin needed)."""

import json

import numpy as np

from asm.presets import jsonpreset
from asm.synth.builtin import ASM_SUB
from asm.synth.params import ParameterSpace


def test_json_presets_round_trip_through_the_registry(cli, tmp_path):
    space = ParameterSpace(ASM_SUB.params)
    rng = np.random.default_rng(5)
    for k in range(3):
        values = space.quantise(space.full(space.random_free(rng, 1))[0]).tolist()
        jsonpreset.write(tmp_path / f"p{k}.json", "asm-sub", f"Random {k}", space, values)
    r = cli("import-presets", "--synth", "asm-sub", str(tmp_path / "p*.json"), "--json")
    assert r.code == 0 and r.json() == {"imported": 3, "duplicates": 0, "failed": 0, "failures": []}
    assert cli("inspect-registry", "--synth", "asm-sub", "--json").json()["preset_count"] == 3

    out = tmp_path / "out" / "again.json"
    out.parent.mkdir()
    assert cli("lock", "asm-sub", "cutoff=0.5").code == 0
    r = cli("export-preset", "--synth", "asm-sub", "--preset", "Random 1", "--out", out)
    assert r.code == 0, r.err
    original, exported = json.loads((tmp_path / "p1.json").read_text()), json.loads(out.read_text())
    assert exported["parameters"] == original["parameters"] and exported["locked"] == ["cutoff"]
    r = cli("import-presets", "--synth", "asm-sub", out, "--json")
    assert r.json()["duplicates"] == 1  # the same values: not stored twice

    r = cli("export-preset", "--synth", "asm-sub", "--preset", "Random 1", "--out", tmp_path / "x.fxp")
    assert r.code == 2 and "cannot write .fxp for asm-sub (faust); use .json" in r.err
    r = cli("import-presets", "--synth", "asm-sub", tmp_path / "nothing.json")
    assert r.code == 2 and "no presets imported" in r.err and "file not found" in r.out
    r = cli("import-presets", "--synth", "asm-sub", str(tmp_path / "*.nomatch"))
    assert r.code == 2 and "no preset files match" in r.err


def test_lock_from_a_stored_preset(cli, tmp_path):
    space = ParameterSpace(ASM_SUB.params)
    values = space.defaults().tolist()
    values[space.position("cutoff")], values[space.position("filter_type")] = 0.123, 1.0
    jsonpreset.write(tmp_path / "p.json", "asm-sub", "Mine", space, values)
    assert cli("import-presets", "--synth", "asm-sub", tmp_path / "p.json").code == 0
    r = cli("lock", "asm-sub", "--from-preset", "Mine", "cutoff", "9")  # by name and by plugin index
    assert r.code == 0, r.err
    params = {p["name"]: p for p in cli("inspect-registry", "--synth", "asm-sub", "--json").json()["parameters"]}
    assert params["cutoff"]["locked_value"] == 0.123 and params["noise_level"]["locked"]
    r = cli("lock", "asm-sub", "--from-preset", "Mine", "cutoff=0.2")
    assert r.code == 2 and "names only" in r.err
    r = cli("lock", "asm-sub", "--from-preset", "Nope", "cutoff")
    assert r.code == 2 and "no preset named 'Nope'" in r.err
