"""The architecture registry: one module (here, this test module) adds an architecture that model
configs accept, train-model trains and the estimators load, with no other edit."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT
from torch import nn

from asm.models import architectures
from asm.models.architectures import EncoderArchitecture, register


class LinearEncoder(nn.Module):
    """A linear map of the time-averaged log-mel: the smallest network that can learn anything."""

    def __init__(self, n_mels: int, frames: int, dim: int = 16):
        super().__init__()
        self.proj = nn.Linear(n_mels, dim)
        self.dim = dim

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.proj(mel.mean(dim=-1))


@pytest.fixture
def tiny_linear():
    @register
    class TinyLinear(EncoderArchitecture):
        name = "tinylinear"
        description = "a linear map of the time-averaged log-mel"
        encoder_class = LinearEncoder

    yield TinyLinear
    architectures.unregister("tinylinear")


def test_a_registered_architecture_trains_end_to_end(tiny_linear, cli, tmp_path):
    from asm.models.estimator import load_estimator
    from asm.registry.db import session_scope

    fixture = tmp_path / "lin.py"
    fixture.write_text("from asm.models.config import ModelConfig\n"
                       "FIXTURE = [ModelConfig(name='lin', arch='tinylinear', encoder={'dim': 8})]\n")
    r = cli("update-registry", fixture)
    assert r.code == 0, r.err
    r = cli("generate-dataset", "tiny", "--synth", "asm-sub", "--size", "40", "--duration", "0.25",
            "--note-off", "0.2", "--seed", "1", "--workers", "1")
    assert r.code == 0, r.err
    r = cli("train-model", "--config", "lin", "--dataset", "tiny", "--epochs", "2", "--batch-size", "8", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["arch"] == "tinylinear" and out["epochs"] == 2 and np.isfinite(out["best_val_loss"])
    with session_scope() as s:
        est = load_estimator(s, out["name"])
    assert isinstance(est.network.encoder, LinearEncoder) and not est.many_candidates
    cands = est.candidates(np.zeros(4000, dtype=np.float32), k=3)
    assert cands.shape == (1, 1, est.n_free) and np.all((cands >= 0) & (cands <= 1))


def test_unknown_architecture_and_hyperparameters_are_refused_by_field(tiny_linear, cli, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from asm.models.config import ModelConfig\nFIXTURE = [ModelConfig(name='x', arch='nope')]\n")
    r = cli("update-registry", bad)
    assert r.code == 2 and "arch" in r.err and "tinylinear" in r.err and "cnn" in r.err
    bad.write_text("from asm.models.config import ModelConfig\n"
                   "FIXTURE = [ModelConfig(name='x', arch='tinylinear', encoder={'depth': 3})]\n")
    r = cli("update-registry", bad)
    assert r.code == 2 and "depth" in r.err and "LinearEncoder" in r.err
    bad.write_text("from asm.models.config import ModelConfig\n"
                   "FIXTURE = [ModelConfig(name='x', arch='cnn', flow={'transforms': 2})]\n")
    r = cli("update-registry", bad)
    assert r.code == 2 and "flow" in r.err


def test_the_shipped_architectures_and_their_roles():
    assert architectures.names() == ("cnn", "flow", "lstm", "mlp", "nn", "rescnn", "transformer")
    assert architectures.trainable() == ("cnn", "flow", "lstm", "mlp", "rescnn", "transformer")
    assert architectures.get("nn").kind == "index"
    assert [a.name for a in architectures.every() if a.many_candidates] == ["flow", "nn"]


def test_listing_architectures_does_not_import_torch():
    code = ("import sys, asm.models.architectures as a; n = a.names(); "
            "assert 'cnn' in n and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
