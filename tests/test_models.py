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
from conftest import ROOT, run_cli_process, tiny_locked_dataset

FREE = ("cutoff", "osc1_wave", "amp_decay")  # everything else locked: a small, learnable space


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    """One registry + tiny dataset for the whole module: 3 free parameters, 400 examples of 0.5 s."""
    home = tmp_path_factory.mktemp("models-home")
    fixtures = sorted(str(p) for p in (ROOT / "fixtures" / "models").glob("*.py"))
    return tiny_locked_dataset(home, FREE, fixtures, size=400, workers=2)


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
    from asm.registry.synth_loader import load_spec
    from asm.render import RenderPool

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
    (["train-model", "--config", "cnn", "--dataset", "tiny", "--name", "../x"], "bad model name"),
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


def _model_row(name):
    from sqlalchemy import select

    from asm.registry.db import session_scope
    from asm.registry.models import Model

    with session_scope() as s:
        row = s.scalar(select(Model).where(Model.name == name))
        return None if row is None else {"status": row.status, "checkpoint": row.checkpoint, "id": row.id}


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--lr", "0"), ("--batch-size", "0"),
                                         ("--patience", "0"), ("--lr", "nan")])
def test_explicit_zero_settings_are_refused_not_replaced_by_the_config(home, cli, flag, value):
    r = cli("train-model", "--config", "mlp", "--dataset", "tiny", "--name", "zero", flag, value)
    assert r.code == 2, (r.out, r.err)
    lines = [line for line in r.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in r.err, r.err
    assert _model_row("zero") is None


def test_library_callers_get_the_same_range_checks(home):
    from asm.errors import AsmError
    from asm.models.training import train_model

    for kwargs in ({"epochs": 0}, {"lr": 0.0}, {"batch_size": 0}, {"patience": 0}):
        with pytest.raises(AsmError, match="--"):
            train_model("mlp", "tiny", name="zero-lib", **kwargs)
    assert _model_row("zero-lib") is None


def test_a_second_process_cannot_train_a_model_that_is_being_trained(home, cli):
    from asm.models.checkpoint import model_lock
    from asm.registry.db import session_scope
    from asm.registry.models import Model

    _train(cli, "mlp", "mlp-busy", epochs=1)
    row = _model_row("mlp-busy")
    with session_scope() as s:  # as if a training of it were under way (or killed)
        s.get(Model, row["id"]).status = "training"
    directory = home / row["checkpoint"]
    before = {p.name: p.stat().st_mtime_ns for p in directory.glob("*.pt*")}
    assert "last.pt" in before
    with model_lock("mlp-busy", row["checkpoint"]):  # this process trains it
        r = run_cli_process("train-model", "--resume", "mlp-busy", "--epochs", "2")
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
        assert "mlp-busy is being trained by another asm process" in r.stderr
        assert f"pid {os.getpid()} on " in r.stderr and "since 20" in r.stderr
        r = cli("delete-model", "mlp-busy", "--yes")
        assert r.code == 2 and "being trained" in r.err
    assert {p.name: p.stat().st_mtime_ns for p in directory.glob("*.pt*")} == before  # checkpoints untouched
    assert _model_row("mlp-busy")["status"] == "training"
    # released (the holder ended): the resume goes ahead
    r = cli("train-model", "--resume", "mlp-busy", "--json")
    assert r.code == 0, r.err
    assert _model_row("mlp-busy")["status"] == "complete"


def test_a_dataset_without_a_validation_split_leaves_no_model_row(home, cli):
    assert cli("generate-dataset", "noval", "--size", "8", "--duration", "0.5", "--note-off", "0.3",
               "--split", "0.75,0,0.25", "--workers", "1").code == 0
    for _ in range(2):  # the same name stays usable: the second attempt fails the same way
        r = cli("train-model", "--config", "mlp", "--dataset", "noval", "--name", "noval-mlp", "--epochs", "1")
        assert r.code == 2 and "train and val splits" in r.err, r.err
        assert _model_row("noval-mlp") is None
    assert cli("delete-dataset", "noval").code == 0


def test_an_unreadable_shard_marks_the_model_failed_and_delete_model_removes_it(home, cli):
    from asm.data.store import dataset_dir

    assert cli("generate-dataset", "broken", "--size", "12", "--duration", "0.5", "--note-off", "0.3",
               "--workers", "1").code == 0
    shard = sorted(dataset_dir("broken").glob("shard-*"))[0]
    shard.write_bytes(b"\0" * 64)  # damaged after generation
    r = cli("train-model", "--config", "mlp", "--dataset", "broken", "--name", "broken-mlp", "--epochs", "1")
    assert r.code == 2 and "Traceback" not in r.err, r.err
    row = _model_row("broken-mlp")
    assert row["status"] == "failed"
    r = cli("train-model", "--config", "mlp", "--dataset", "broken", "--name", "broken-mlp", "--epochs", "1")
    assert r.code == 2 and "delete-model" in r.err and "--resume" in r.err, r.err
    r = cli("train-model", "--resume", "broken-mlp")  # a retry fails the same way, and says so
    assert r.code == 2 and _model_row("broken-mlp")["status"] == "failed"
    r = cli("delete-model", "broken-mlp")
    assert r.code == 2 and "--yes" in r.err and _model_row("broken-mlp") is not None
    r = cli("delete-model", "broken-mlp", "--yes", "--json")
    assert r.code == 0, r.err
    assert r.json()["deleted"] == "broken-mlp"
    assert _model_row("broken-mlp") is None and not (home / row["checkpoint"]).exists()
    assert cli("list-models", "--json").json() == [m for m in cli("list-models", "--json").json()
                                                   if m["name"] != "broken-mlp"]
    assert cli("delete-dataset", "broken").code == 0
