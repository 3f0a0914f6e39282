"""Spectral training through the twin: the batched losses are the metrics, gradients reach the estimator's
categorical logits, the spectral stage lowers the spectral loss on a real tiny dataset, a synth without a
twin is refused in one line before any row exists, and a resume across the stage boundary equals an
uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_locked_dataset

from asm.errors import AsmError

SR = 16000
FREE = ("cutoff", "osc1_wave", "amp_decay")  # everything else locked: a small, learnable space
TINY = ("from asm.models.config import ModelConfig\n"
        "FIXTURE = [ModelConfig(name='tiny-spectral', arch='cnn', "
        "encoder={'channels': [8, 16, 16, 16], 'dim': 64, 'time_bins': 4}, "
        "train={'epochs': 7, 'lr': 3e-3, 'patience': 10}, "
        "spectral={'warmup': 2, 'ramp': 1, 'examples': 12, 'duration': 0.4, 'val_examples': 40, "
        "'loss': 'perceptual+mr-stft'})]\n")


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    """One registry and a tiny real dataset (DawDreamer renders): 3 free parameters, 240 examples of 0.5 s."""
    home = tmp_path_factory.mktemp("spectral-home")
    fixture = home / "tiny_spectral.py"
    fixture.write_text(TINY)
    return tiny_locked_dataset(home, FREE, [str(fixture)], size=240, workers=1)


@pytest.fixture
def home(shared_home, monkeypatch):
    for k, v in shared_home.items():
        monkeypatch.setenv(k, v)
    return Path(shared_home["ASM_DATA"])


def _epochs(name: str) -> list:
    from sqlalchemy import select

    from asm.registry.db import session_scope
    from asm.registry.models import Model

    with session_scope() as s:
        row = s.scalar(select(Model).where(Model.name == name))
        return [(e.epoch, e.train_loss, e.val_loss, dict(e.parts)) for e in row.epochs]


def test_batched_losses_equal_the_metrics_row_by_row():
    from asm.audio.metrics import distances
    from asm.audio.spectral_loss import MultiResolutionSTFTLoss, PerceptualLoss

    t = np.arange(6400) / SR
    rng = np.random.default_rng(0)
    targets = np.stack([0.5 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * t),
                        0.3 * np.sign(np.sin(2 * np.pi * 330 * t))]).astype(np.float32)
    cands = (targets[::-1] + 0.01 * rng.standard_normal(targets.shape)).astype(np.float32)
    x = torch.tensor(cands, requires_grad=True)
    for loss_type, metric in ((PerceptualLoss, "perceptual"), (MultiResolutionSTFTLoss, "mr-stft")):
        loss = loss_type(targets, SR)(x)
        want = [distances(cands[i : i + 1], targets[i], SR, [metric])[metric][0] for i in range(2)]
        np.testing.assert_allclose(loss.detach().numpy(), want, rtol=1e-3)
        x.grad = None
        loss.sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("categorical", ["soft", "straight-through"])
def test_gradients_of_the_spectral_term_reach_the_categorical_logits(home, categorical):
    from asm.data.torch_dataset import ShardDataset
    from asm.models.checkpoint import build_network
    from asm.models.config import SpectralSettings
    from asm.models.spectral import SpectralTerm

    train, val = ShardDataset("tiny", "train"), ShardDataset("tiny", "val")
    meta = {"arch": "cnn", "config_settings": {"encoder": {"channels": [8, 16, 16, 16], "dim": 64, "time_bins": 4}},
            "free_parameters": train.free_parameters, "input_shape": list(train.feature_shape)}
    torch.manual_seed(0)
    network = build_network(meta)
    term = SpectralTerm(SpectralSettings(examples=8, duration=0.4, categorical=categorical), train, val,
                        network.layout)
    assert [name for _, name in term.soft] == ["osc1_wave"]
    idx = np.arange(8)
    mel = torch.from_numpy(np.stack([train.features(int(i)) for i in idx]))
    labels = torch.from_numpy(np.stack([train.params(int(i)) for i in idx]))
    pred, _ = network(mel)
    loss = term.train_loss(pred, idx, labels, np.random.default_rng(0))
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    grad = network.head.logits.weight.grad
    assert grad is not None and grad.abs().sum() > 0  # through the softmax into the twin's oscillator mix
    if categorical == "straight-through":  # the twin plays the argmax choice: exactly the hard preset's render
        _, soft = term.presets(pred)
        torch.testing.assert_close(soft["osc1_wave"].detach(), torch.nn.functional.one_hot(
            pred.logits[:, :4].argmax(dim=1), 4).float(), rtol=0, atol=1e-6)
    assert network.head.continuous.weight.grad.abs().sum() > 0
    # the target is the stored audio: the true preset rendered by the twin is close to it
    target, notes = term.targets(train, idx)
    true = term.render(term._true_presets(labels), None, notes)
    from asm.audio.spectral_loss import PerceptualLoss

    assert float(PerceptualLoss(target, SR)(true).mean()) < 0.05


@pytest.mark.slow
def test_the_spectral_stage_lowers_the_spectral_loss(home, cli):
    r = cli("train-model", "--config", "tiny-spectral", "--dataset", "tiny", "--batch-size", "24", "--name",
            "spec-a", "--json")
    assert r.code == 0, r.err
    epochs = _epochs("spec-a")
    assert [e[0] for e in epochs] == list(range(1, 8))
    weights = [e[3]["spectral_weight"] for e in epochs]
    assert weights == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert "spectral" not in epochs[1][3] and "spectral" in epochs[2][3]  # warm-up: parameter loss alone
    train_spectral = [e[3]["spectral"] for e in epochs[2:]]
    assert train_spectral[-1] < train_spectral[0]
    val_spectral = [e[3]["val_spectral"] for e in epochs]
    assert min(val_spectral[2:]) < val_spectral[1]  # the spectral stage sounds closer than the warm-up's end
    assert [e[2] for e in epochs] == val_spectral  # the best epoch is chosen by the spectral loss
    out = r.json()
    assert out["best_epoch"] == 1 + int(np.argmin(val_spectral))
    shown = cli("show-model", "spec-a", "--json").json()["epochs"]
    assert [e["parts"]["val_spectral"] for e in shown] == val_spectral
    r = cli("test-model", "spec-a", "--split", "test", "--limit", "8", "--workers", "1", "--json")
    assert r.code == 0, r.err


def test_a_synth_without_a_twin_is_refused_in_one_line(home, cli, monkeypatch):
    from sqlalchemy import select

    from asm.models.spectral import check_twin
    from asm.registry.db import session_scope
    from asm.registry.models import Model

    with pytest.raises(AsmError, match="model config x trains through a differentiable twin, and synth amsynth"):
        check_twin("amsynth", "model config x")
    monkeypatch.delitem(__import__("asm.synth.diff", fromlist=["TWINS"]).TWINS, "asm-sub")
    r = cli("train-model", "--config", "tiny-spectral", "--dataset", "tiny", "--name", "no-twin")
    assert r.code == 2
    assert "synth asm-sub has none" in r.err and len(r.err.strip().splitlines()) == 1
    with session_scope() as s:
        assert s.scalar(select(Model).where(Model.name == "no-twin")) is None


def test_a_non_trained_architecture_cannot_take_a_spectral_section(home, cli, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from asm.models.config import ModelConfig\n"
                   "FIXTURE = [ModelConfig(name='nn-spectral', arch='nn', spectral={})]\n")
    r = cli("update-registry", str(bad))
    assert r.code == 2 and "spectral" in r.err


@pytest.mark.slow
def test_resume_across_the_stage_boundary_equals_an_uninterrupted_run(home):
    from sqlalchemy import select

    from asm.models.training import train_model
    from asm.progress import Reporter
    from asm.registry.db import session_scope
    from asm.registry.models import Model

    class StopAfter(Reporter):
        def __init__(self, epoch: int):
            super().__init__()
            self.epoch = epoch

        def update(self, done, *, stage=None, total=None, **info):
            super().update(done, stage=stage, total=total, **info)
            if stage and stage.startswith("training") and done == self.epoch:
                raise KeyboardInterrupt

    kw = dict(epochs=5, batch_size=24, device="cpu", seed=4)
    train_model("tiny-spectral", "tiny", name="whole", **kw)
    with pytest.raises(KeyboardInterrupt):  # stopped at the end of the warm-up (epoch 2 of 5)
        train_model("tiny-spectral", "tiny", name="split", reporter=StopAfter(2), **kw)
    out = train_model("tiny-spectral", "tiny", resume="split", device="cpu")
    assert out["epochs"] == 5
    with session_scope() as s:
        dirs = {m.name: home / m.checkpoint for m in s.scalars(select(Model).where(Model.name.in_(["whole", "split"])))}
    a = torch.load(dirs["whole"] / "last.pt", weights_only=False)
    b = torch.load(dirs["split"] / "last.pt", weights_only=False)
    for key, value in a["network"].items():
        torch.testing.assert_close(b["network"][key], value, rtol=0, atol=0)
    assert [e[3]["spectral_weight"] for e in _epochs("split")] == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert [e[2] for e in _epochs("split")] == pytest.approx([e[2] for e in _epochs("whole")], rel=1e-6)


def test_the_benchmark_names_a_cnn_spectral_model_by_its_fixture():
    from asm.bench.config import _config_fixture

    assert _config_fixture("cnn-spectral").name == "cnn_spectral.py" and _config_fixture("cnn-spectral").is_file()
    assert _config_fixture("cnn").name == "cnn.py"


def test_the_small_benchmark_adds_cnn_spectral_only_for_a_synth_with_a_twin():
    from asm.bench.config import SCALES, default_models

    assert default_models(SCALES["small"], "asm-sub") == ("cnn", "flow", "cnn-spectral")
    assert default_models(SCALES["small"], "amsynth") == ("cnn", "flow")


def test_a_features_only_dataset_targets_the_twin_render_of_the_true_preset(home, cli):
    from asm.data.torch_dataset import ShardDataset
    from asm.models.checkpoint import free_specs
    from asm.models.config import SpectralSettings
    from asm.models.heads import ParameterLayout
    from asm.models.spectral import SpectralTerm

    r = cli("generate-dataset", "tiny-f", "--synth", "asm-sub", "--size", "30", "--duration", "0.5",
            "--note-off", "0.3", "--seed", "5", "--workers", "1", "--store", "features")
    assert r.code == 0, r.err
    train, val = ShardDataset("tiny-f", "train"), ShardDataset("tiny-f", "val")
    assert not train.has_audio
    layout = ParameterLayout(free_specs(train.free_parameters))
    term = SpectralTerm(SpectralSettings(duration=0.4), train, val, layout)
    idx = np.arange(4)
    target, notes = term.targets(train, idx)
    assert target.shape == (4, int(0.4 * SR)) and float(target.abs().amax()) > 0.01
    # the twin's render of the true preset: what a perfect prediction would render
    labels = torch.from_numpy(np.stack([train.params(int(i)) for i in idx]))
    torch.testing.assert_close(term.render(term._true_presets(labels), None, notes), target)
    assert np.isfinite(term.validation_loss(_tiny_network(train)))


def _tiny_network(ds):
    from asm.models.checkpoint import build_network

    torch.manual_seed(0)
    return build_network({"arch": "cnn", "config_settings": {"encoder": {"channels": [8, 8, 8, 8], "dim": 16,
                                                                          "time_bins": 2}},
                          "free_parameters": ds.free_parameters, "input_shape": list(ds.feature_shape)})
