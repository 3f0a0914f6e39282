"""Estimators learn (not just run): they beat the mean predictor on parameters and by ear, save and
load exactly, are reproducible from the seed, resume after kill -9; nn finds a training example."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, run_cli_process

FREE = ("cutoff", "osc1_wave", "amp_decay")  # everything else locked: a small, learnable space


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    """One registry + tiny dataset for the whole module: 3 free parameters, 400 examples of 0.5 s."""
    home = tmp_path_factory.mktemp("models-home")
    env = {"ASM_DATA": str(home), "ASM_DB": f"sqlite:///{home / 'asm.db'}"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        from asm.cli import run
        from asm.registry.db import session_scope
        from asm.registry.synths import get_synth, space_of

        with session_scope() as s:
            space = space_of(get_synth(s, "asm-sub"))
        locks = [f"{p.name}={p.default}" for p in space.params if p.name not in FREE]
        assert run(["lock", "asm-sub", *locks]) == 0
        assert run(["update-registry", *sorted(str(p) for p in (ROOT / "fixtures" / "models").glob("*.py"))]) == 0
        assert run(["generate-dataset", "tiny", "--synth", "asm-sub", "--size", "400", "--duration", "0.5",
                    "--note-off", "0.3", "--seed", "3", "--workers", "2"]) == 0
    return env


@pytest.fixture
def home(shared_home, monkeypatch):
    for k, v in shared_home.items():
        monkeypatch.setenv(k, v)
    return Path(shared_home["ASM_DATA"])


def _train(cli, config, name, epochs=8, seed=0, extra=()):
    r = cli("train-model", "--config", config, "--dataset", "tiny", "--epochs", epochs, "--seed", seed,
            "--name", name, "--batch-size", "32", "--json", *extra)
    assert r.code == 0, r.err
    return r.json()


def test_cnn_beats_the_mean_predictor_on_parameters_and_audio(home, cli):
    from asm.data.torch_dataset import ShardDataset
    from asm.models.checkpoint import free_specs
    from asm.models.evaluate import score_predictions
    from asm.models.heads import ParameterLayout, constant_prediction
    from asm.registry.db import session_scope
    from asm.render import RenderPool
    from asm.synth.loader import load_spec

    result = _train(cli, "cnn", "cnn-learns", epochs=10)
    assert result["best_val_loss"] < 0.6 * result["baseline_val_loss"], result
    r = cli("test-model", "cnn-learns", "--split", "test", "--json")
    assert r.code == 0, r.err
    model_scores = r.json()["summary"]
    # the constant (mean / most frequent) prediction, rendered and scored the same way
    train, test = ShardDataset("tiny", "train"), ShardDataset("tiny", "test")
    layout = ParameterLayout(free_specs(train.free_parameters))
    targets = torch.from_numpy(np.stack([train.params(i) for i in range(len(train))]))
    const = layout.decode(constant_prediction(layout, targets, len(test))).numpy()
    with session_scope() as s:
        spec = load_spec(s, "asm-sub", test.sample_rate)
    with RenderPool(spec, 2) as pool:
        base = score_predictions(test, list(range(len(test))), const, spec.space, pool)
    assert model_scores["mr-stft"]["mean"] < 0.8 * float(np.mean(base["mr-stft"]))
    assert model_scores["param_mae"]["mean"] < 0.15 and model_scores["param_accuracy"]["mean"] > 0.6


def test_same_seed_same_weights_and_saved_model_predicts_identically(home, cli):
    a = _train(cli, "mlp", "mlp-a", epochs=3, seed=7)
    b = _train(cli, "mlp", "mlp-b", epochs=3, seed=7)
    c = _train(cli, "mlp", "mlp-c", epochs=3, seed=8)
    from asm import paths
    from asm.registry.db import session_scope
    from asm.registry.models import Model

    def weights(model_id):
        with session_scope() as s:
            path = paths.data_dir() / s.get(Model, model_id).checkpoint / "best.pt"
        return torch.load(path, weights_only=False)["network"]

    wa, wb, wc = weights(a["model_id"]), weights(b["model_id"]), weights(c["model_id"])
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    # predictions stored by test-model in another process == predictions of the loaded model here
    proc = run_cli_process("test-model", "mlp-a", "--limit", "8", "--json", env={})
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    from asm.data.torch_dataset import ShardDataset
    from asm.models.estimator import load_estimator
    from asm.registry.models import Run

    ds = ShardDataset("tiny", "test")
    with session_scope() as s:
        est = load_estimator(s, "mlp-a")
        stored = np.array([r.values for r in sorted(s.get(Run, run_id).results, key=lambda r: r.example_index)])
    mel = torch.from_numpy(np.stack([ds.features(i) for i in range(8)]))
    np.testing.assert_array_equal(est.candidates_from_mel(mel, 1)[:, 0], stored)
    # its report has a player for every target and prediction (8 examples: all kept with audio)
    from bench_helpers import report_audio

    r = cli("report", run_id, "--media-limit", "2", "--json")
    assert r.code == 0, r.err
    players = report_audio(r.json()["report"])
    assert len(players) == 2 * 8 and all(p.is_file() for p in players)


def test_nn_returns_the_exact_preset_of_a_training_example(home, cli):
    from asm.data.torch_dataset import ShardDataset
    from asm.models.estimator import load_estimator
    from asm.registry.db import session_scope

    r = cli("train-model", "--config", "nn", "--dataset", "tiny", "--name", "nn-tiny", "--json")
    assert r.code == 0, r.err
    train = ShardDataset("tiny", "train")
    with session_scope() as s:
        est = load_estimator(s, "nn-tiny")
    for i in (0, 17, len(train) - 1):
        cands = est.candidates(train.audio(i), k=3)  # from the audio, not the stored features
        np.testing.assert_array_equal(cands[0, 0], train.params(i))
        assert cands.shape == (1, 3, 3)


@pytest.mark.parametrize("arch", ["mlp", "cnn", "rescnn", "lstm", "transformer", "flow"])
def test_every_architecture_trains_from_the_cli_and_gives_candidates(home, cli, arch):
    from asm.data.torch_dataset import ShardDataset
    from asm.models.estimator import load_estimator
    from asm.registry.db import session_scope

    result = _train(cli, arch, f"{arch}-zoo", epochs=2)
    assert result["epochs"] == 2 and np.isfinite(result["best_val_loss"])
    ds = ShardDataset("tiny", "val")
    with session_scope() as s:
        est = load_estimator(s, f"{arch}-zoo")
    cands = est.candidates([ds.audio(0), ds.audio(1)], k=4, seed=1)
    assert cands.shape == (2, 4 if arch == "flow" else 1, 3)
    assert np.all((cands >= 0) & (cands <= 1))
    wave = cands[..., ds.free_names.index("osc1_wave")] * 3  # 4 choices -> k/3
    np.testing.assert_allclose(wave, np.round(wave), atol=1e-6)
    if arch == "flow":  # samples differ from each other and are reproducible from the seed
        assert len({tuple(c) for c in cands[0]}) > 1
        np.testing.assert_array_equal(cands, est.candidates([ds.audio(0), ds.audio(1)], k=4, seed=1))


def test_kill_9_then_resume_continues_from_the_last_completed_epoch(home):
    from sqlalchemy import select

    from asm.registry.db import session_scope
    from asm.registry.models import Model

    env = {**os.environ}
    cmd = [sys.executable, str(ROOT / "asm-cli.py"), "train-model", "--config", "cnn", "--dataset", "tiny",
           "--epochs", "40", "--name", "cnn-killed", "--batch-size", "16", "--patience", "40"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and done < 2:
        time.sleep(0.3)
        with session_scope() as s:
            row = s.scalar(select(Model).where(Model.name == "cnn-killed"))
            done = row.epochs_done if row else 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert done >= 2, "training did not progress"
    with session_scope() as s:
        row = s.scalar(select(Model).where(Model.name == "cnn-killed"))
        assert row.status == "training"
        before = row.epochs_done
    r = run_cli_process("train-model", "--resume", "cnn-killed", "--epochs", "40", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["epochs"] == 40
    with session_scope() as s:
        row = s.scalar(select(Model).where(Model.name == "cnn-killed"))
        assert row.status == "complete"
        assert [e.epoch for e in row.epochs] == list(range(1, 41))  # no hole, no duplicate
        assert before <= 40


@pytest.mark.parametrize("args, message", [
    (["train-model", "--config", "nope", "--dataset", "tiny"], "unknown model config"),
    (["train-model", "--config", "cnn", "--dataset", "nope"], "nope"),
    (["train-model", "--config", "cnn", "--dataset", "tiny", "--device", "cuda"], "CUDA"),
    (["train-model", "--config", "cnn"], "--dataset"),
    (["test-model", "no-such-model"], "unknown model"),
    (["update-registry", str(ROOT / "tests" / "data" / "bad_model_fixture.py")], "encoder"),
])
def test_bad_input_exits_2_with_one_line(home, cli, args, message):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    r = cli(*args)
    assert r.code == 2, (r.out, r.err)
    lines = [line for line in r.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], r.err


def test_a_model_refuses_another_lock_set(home, cli):
    from asm.errors import AsmError
    from asm.models.estimator import load_estimator
    from asm.registry.db import session_scope
    from asm.registry.synths import get_synth, space_of

    _train(cli, "mlp", "mlp-locks", epochs=1)
    with session_scope() as s:
        est = load_estimator(s, "mlp-locks")
        space = space_of(get_synth(s, "asm-sub"))
    est.check_space(space, "asm-sub")
    with pytest.raises(AsmError, match="other free parameters"):
        est.check_space(space.with_locks({space.spec("cutoff").index: 0.5}), "asm-sub")
    with pytest.raises(AsmError, match="other locked values"):
        est.check_space(space.with_locks({space.spec("osc2_level").index: 0.9}), "asm-sub")
    with pytest.raises(AsmError, match="trained for synth"):
        est.check_space(space, "amsynth")
