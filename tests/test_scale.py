"""Estimators at scale: features-only datasets, streamed training data, learning curves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, run_cli_process

FREE = ("cutoff", "osc1_wave", "amp_decay")


def _lock_all_but(free=FREE):
    from asm.cli import run
    from asm.registry.db import session_scope
    from asm.registry.synths import get_synth, space_of

    with session_scope() as s:
        space = space_of(get_synth(s, "asm-sub"))
    assert run(["lock", "asm-sub", *[f"{p.name}={p.default}" for p in space.params if p.name not in free]]) == 0


def _stream(workers, seed=5, shard_size=16, ahead=3):
    from asm.data.settings import DatasetSettings
    from asm.data.stream import ExampleStream
    from asm.registry.db import session_scope
    from asm.registry.synth_loader import spec_of
    from asm.registry.synths import get_synth

    settings = DatasetSettings(synth="asm-sub", size=1, duration=0.25, note_off=0.2, note_range=(48, 72), seed=seed)
    with session_scope() as s:
        spec = spec_of(get_synth(s, "asm-sub"), settings.sample_rate)
    return ExampleStream(spec, settings, workers=workers, shard_size=shard_size, ahead=ahead)


def test_a_stream_gives_the_same_examples_whatever_the_number_of_workers():
    from asm.data.stream import StreamDataset

    got = {}
    for workers in (1, 2):
        with _stream(workers) as stream:
            items = list(StreamDataset(stream, start=0, stop=70))
            got[workers] = items
    one, two = got[1], got[2]
    assert [i["index"] for i in one] == list(range(70))
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a["features"].numpy(), b["features"].numpy())
        np.testing.assert_array_equal(a["params"].numpy(), b["params"].numpy())
    params = np.stack([i["params"].numpy() for i in one])
    assert len(np.unique(params, axis=0)) == 70  # no example repeats
    # starting later continues the same sequence; another seed gives other examples
    with _stream(2) as stream:
        later = list(StreamDataset(stream, start=40, stop=50))
    for a, b in zip(later, one[40:50]):
        np.testing.assert_array_equal(a["features"].numpy(), b["features"].numpy())
    with _stream(1, seed=6) as stream:
        other = next(iter(StreamDataset(stream, start=0, stop=1)))
    assert not np.array_equal(other["params"].numpy(), one[0]["params"].numpy())


def test_a_features_only_dataset_trains_and_evaluates_like_a_full_one(cli):
    from asm.data.store import show_dataset, verify_dataset
    from asm.data.torch_dataset import ShardDataset
    from asm.errors import AsmError

    _lock_all_but()
    assert cli("update-registry", *sorted(str(p) for p in (ROOT / "fixtures" / "models").glob("*.py"))).code == 0
    common = ["--synth", "asm-sub", "--size", "160", "--duration", "0.5", "--note-off", "0.3", "--seed", "3",
              "--workers", "2"]
    assert cli("generate-dataset", "full", *common).code == 0
    r = cli("generate-dataset", "feats", *common, "--store", "features")
    assert r.code == 0, r.err
    full, feats = ShardDataset("full", None), ShardDataset("feats", None)
    for i in (0, 77, 159):
        np.testing.assert_array_equal(full.features(i), feats.features(i))
        np.testing.assert_array_equal(full.params(i), feats.params(i))
    assert show_dataset("feats")["bytes"] < 0.25 * show_dataset("full")["bytes"]
    assert verify_dataset("feats")["ok"], verify_dataset("feats")["problems"]
    with pytest.raises(AsmError, match="features only"):
        feats.audio(0)
    results = {}
    for ds in ("full", "feats"):
        r = cli("train-model", "--config", "mlp", "--dataset", ds, "--epochs", "2", "--batch-size", "32",
                "--name", f"m-{ds}", "--json")
        assert r.code == 0, r.err
        trained = r.json()
        r = cli("test-model", f"m-{ds}", "--limit", "12", "--workers", "2", "--json")
        assert r.code == 0, r.err
        results[ds] = (trained, r.json()["summary"])
    assert results["full"][0]["best_val_loss"] == results["feats"][0]["best_val_loss"]
    for metric, score in results["full"][1].items():  # apart from the int16 rounding of the stored targets
        assert results["feats"][1][metric]["median"] == pytest.approx(score["median"], rel=2e-3, abs=1e-5), metric


def _rows(name):
    from sqlalchemy import select

    from asm.registry.db import session_scope
    from asm.registry.models import Model

    with session_scope() as s:
        row = s.scalar(select(Model).where(Model.name == name))
        return None if row is None else (row.status, row.epochs_done, [(e.epoch, e.train_loss, e.val_loss)
                                                                        for e in row.epochs])


def test_a_killed_streaming_run_resumes_from_its_last_checkpoint(cli):
    _lock_all_but()
    assert cli("update-registry", *sorted(str(p) for p in (ROOT / "fixtures" / "models").glob("*.py"))).code == 0
    assert cli("generate-dataset", "small", "--synth", "asm-sub", "--size", "120", "--duration", "0.25",
               "--note-off", "0.2", "--seed", "1", "--workers", "2", "--store", "features").code == 0
    args = ["--config", "mlp", "--dataset", "small", "--stream", "192", "--epochs", "6", "--patience", "6",
            "--batch-size", "32", "--workers", "2"]
    r = cli("train-model", *args, "--name", "whole", "--json")
    assert r.code == 0, r.err
    whole = r.json()
    assert whole["streamed_examples"] == 6 * 192 and 0 <= whole["data_wait_share"] <= 1

    proc = subprocess.Popen([sys.executable, str(ROOT / "asm-cli.py"), "train-model", *args, "--name", "killed"],
                            env={**os.environ}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, done = time.time() + 180, 0
    while time.time() < deadline and done < 1 and proc.poll() is None:
        time.sleep(0.2)
        row = _rows("killed")
        done = row[1] if row else 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 1 <= done < 6, "the run was not killed mid-training"
    assert _rows("killed")[0] == "training"
    r = run_cli_process("train-model", "--resume", "killed", "--workers", "2", "--json")
    assert r.returncode == 0, r.stderr
    resumed = json.loads(r.stdout)
    assert resumed["epochs"] == 6
    # the resumed run trained on the examples an uninterrupted one sees: identical epochs
    assert [e[0] for e in _rows("killed")[2]] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([e[1:] for e in _rows("killed")[2]], [e[1:] for e in _rows("whole")[2]], rtol=1e-5)
    assert resumed["best_val_loss"] == pytest.approx(whole["best_val_loss"], rel=1e-5)


def test_learning_curve_trains_each_size_on_the_same_held_out_set_and_reuses_finished_models(cli):
    from asm.data.torch_dataset import ShardDataset

    _lock_all_but()
    args = ["perf", "learning-curve", "--config", "mlp", "--sizes", "80,40", "--val", "20", "--test", "4",
            "--duration", "0.25", "--epochs", "1", "--workers", "2", "--json"]
    r = cli(*args)
    assert r.code == 0, r.err
    out = r.json()
    assert [row["size"] for row in out["rows"]] == [40, 80]
    assert all(row["median_mr_stft"] is not None and row["val_loss"] is not None for row in out["rows"])
    ds = ShardDataset(out["dataset"], None)
    assert ds.split_counts == {"train": 80, "val": 20, "test": 4} and not ds.has_audio
    again = cli(*args)
    assert again.code == 0 and "reusing model" in again.err
    assert [row["val_loss"] for row in again.json()["rows"]] == [row["val_loss"] for row in out["rows"]]
    assert cli("perf", "learning-curve", "--sizes", "0,5").code == 2


def test_canonical_order_gives_each_asm_sub_sound_one_label_only_where_the_swap_is_exact():
    from asm.data.symmetry import Canonicaliser
    from asm.midi.notes import Note
    from asm.registry.db import session_scope
    from asm.registry.synth_loader import spec_of
    from asm.registry.synths import get_synth, space_of
    from asm.synth.host import open_synth

    with session_scope() as s:
        row = get_synth(s, "asm-sub")
        full_space, spec = space_of(row), spec_of(row, 16000)
    synth = open_synth(spec, isolate=False)
    notes = [Note(57, 100, 0.0, 0.2)]

    def render(space, free):
        return synth.render(space.full(np.asarray(free, dtype=np.float64)), notes, 0.3)

    # pitch controls free: the swap is exact on no random preset, so nothing is reordered ...
    free = full_space.random_free(np.random.default_rng(0), 500).astype(np.float32)
    canon = Canonicaliser.for_space("asm-sub", full_space)
    np.testing.assert_array_equal(canon(free), free)
    # ... and rightly: exchanging the oscillators of a preset whose pitches differ changes the sound
    names = [p.name for p in full_space.free]
    a = free[0].copy()
    b = a.copy()
    for x, y in (("osc1_wave", "osc2_wave"), ("osc1_pw", "osc2_pw"), ("osc1_level", "osc2_level")):
        b[names.index(x)], b[names.index(y)] = a[names.index(y)], a[names.index(x)]
    assert np.abs(render(full_space, a) - render(full_space, b)).max() > 1e-2

    # both oscillators at one pitch: every label gets the louder oscillator first, and sounds the same
    _lock_all_but(("osc1_wave", "osc1_pw", "osc1_level", "osc2_wave", "osc2_pw", "osc2_level", "cutoff"))
    with session_scope() as s:
        space = space_of(get_synth(s, "asm-sub"))
    canon = Canonicaliser.for_space("asm-sub", space)
    free = space.random_free(np.random.default_rng(1), 12).astype(np.float32)
    labels = canon(free)
    names = [p.name for p in space.free]
    lv1, lv2 = labels[:, names.index("osc1_level")], labels[:, names.index("osc2_level")]
    assert (lv1 >= lv2).all() and (labels != free).any(axis=1).sum() >= 3
    np.testing.assert_array_equal(canon(labels), labels)  # idempotent
    for f, c in zip(free, labels):
        np.testing.assert_allclose(render(space, c), render(space, f), atol=1e-5)


def test_canonical_and_stream_refusals_leave_no_model_row(cli):
    _lock_all_but(("cutoff", "osc1_level"))  # osc2 locked: nothing to exchange
    assert cli("generate-dataset", "locked", "--synth", "asm-sub", "--size", "20", "--duration", "0.25",
               "--note-off", "0.2", "--workers", "1").code == 0
    for args, message in ((["--dataset", "locked", "--canonical"], "no parameter symmetry"),
                          (["--dataset", "locked", "--config", "nn", "--stream", "64"], "cannot train on a --stream"),
                          (["--dataset", "locked", "--stream", "0"], "--stream")):
        r = cli("train-model", "--config", "mlp", *args, "--name", "refused")
        assert r.code == 2 and message in r.err, r.err
        assert _rows("refused") is None
