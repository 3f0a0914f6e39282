"""`asm benchmark`'s command line and plan: set-ups, scale presets, names keyed by settings."""

from __future__ import annotations

import json

from asm.bench.config import SCALES, SETUPS, BenchmarkRequest, plan
from asm.bench.ood import FORMAT


def test_scale_presets_are_consistent():
    small, paper = SCALES["small"], SCALES["paper"]
    assert small.dataset_size <= 5000 and small.test_targets == 32
    assert paper.dataset_size == 11000 and paper.test_targets == 128
    for preset in SCALES.values():
        assert preset.test_targets <= 0.1 * preset.dataset_size  # the test split holds enough targets
        assert preset.mono.note_off <= preset.mono.duration and preset.poly.note_off <= preset.poly.duration
        assert set(preset.models) <= {"mlp", "cnn", "rescnn", "lstm", "transformer", "flow"}
    assert set(paper.models) == {"mlp", "cnn", "rescnn", "lstm", "transformer", "flow"}


def test_dry_run_plan(cli, asm_home):
    r = cli("benchmark", "--dry-run", "--json")
    assert r.code == 0, r.err
    p = r.json()
    assert p["methods"] == ["random", "nn", "model:cnn", "model:flow", "model:cnn-spectral", "nsga2-autosoundmatch",
                            "nsga2", "hybrid", "gradient", "cmaes"]
    assert p["fixture"] == "fixtures/asm_sub.py" and p["free_parameters"] == 30
    assert p["target_sets"] == {"test": 32} and "make ood-targets" in p["notes"][0]
    assert p["search"]["budget"] == 600
    assert p["search"]["recipes"]["nsga2-autosoundmatch"] == {"method": "nsga2", "recipe": "autosoundmatch"}
    assert p["dataset"]["settings"]["size"] == 5000 and p["dataset"]["settings"]["duration"] == 1.0
    # names are keyed by settings: the same request gives the same names, another seed others
    again = cli("benchmark", "--dry-run", "--json").json()
    assert again["dataset"]["name"] == p["dataset"]["name"] and again["models"] == p["models"]
    other = cli("benchmark", "--dry-run", "--json", "--seed", "1").json()
    assert other["dataset"]["name"] != p["dataset"]["name"]
    assert {m["name"] for m in other["models"]}.isdisjoint({m["name"] for m in p["models"]})

    q = cli("benchmark", "--dry-run", "--json", "--mode", "poly", "--synth", "amsynth", "--params", "16",
            "--models", "mlp, cnn mlp", "--budget", "200", "--targets", "8", "--scale", "paper").json()
    assert q["methods"][2:4] == ["model:mlp", "model:cnn"] and q["fixture"] == "fixtures/amsynth16.py"
    assert "cmaes" in q["methods"] and "gradient" not in q["methods"]  # amsynth has no differentiable twin
    assert q["target_sets"] == {"test": 8, "factory": 128} and q["search"]["budget"] == 200
    assert q["dataset"]["settings"]["mode"] == "poly" and q["dataset"]["settings"]["presets"] == "mix"

    # out-of-domain targets are used when their manifest is there
    ood = asm_home / "targets" / "ood"
    ood.mkdir(parents=True)
    (ood / "manifest.json").write_text(json.dumps({"format": FORMAT, "targets": [
        {"set": "mono"}, {"set": "mono"}, {"set": "poly"}]}))
    assert cli("benchmark", "--dry-run", "--json").json()["target_sets"] == {"test": 32, "ood": 2}
    assert cli("benchmark", "--dry-run", "--json", "--no-ood").json()["target_sets"] == {"test": 32}

    r = cli("benchmark", "--dry-run")
    assert r.code == 0 and "benchmark plan" in r.out and "hybrid" in r.out


def test_bad_benchmark_options_exit_2(cli):
    for args, text in ((("--mode", "stereo"), "--mode"), (("--scale", "huge"), "--scale"),
                       (("--params", "20"), "--params"), (("--synth", "foo"), "no benchmark set-up"),
                       (("--budget", "0"), "")):
        r = cli("benchmark", "--dry-run", *args)
        assert r.code == 2 and text in r.err, (args, r.err)


def test_every_setup_fixture_applies_with_its_free_count(cli):
    for (synth, params), (fixture, free) in SETUPS.items():
        if synth != "asm-sub":
            continue  # amsynth set-ups are exercised by the plugin tests
        r = cli("update-registry", f"fixtures/{fixture}")
        assert r.code == 0, r.err
        shown = cli("inspect-registry", "--synth", synth, "--json").json()
        assert shown["free_count"] == free == sum(not p["locked"] for p in shown["parameters"]), fixture
    assert plan(BenchmarkRequest(params=16))["free_parameters"] == 16
