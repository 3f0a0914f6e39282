"""Neural proxies and preset retrieval (asm.proxy): find-presets over a real amsynth bank."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from plugin_paths import AMSYNTH, BANKS, needs_amsynth

BANK = "BriansBank01.amSynth.bank"  # 128 hand-made presets: a small index, built in seconds


@pytest.fixture
def amsynth_bank(cli):
    """amsynth registered with the amsynth32 locks and one factory bank imported."""
    assert cli("register-synth", "amsynth", "--path", AMSYNTH).code == 0
    assert cli("update-registry", "fixtures/amsynth32.py").code == 0
    r = cli("import-presets", "--synth", "amsynth", BANKS / BANK, "--json")
    assert r.code == 0, r.err


def _midi(path, pitch=57, velocity=100, seconds=1.2):
    from asm.midi.notes import Note
    from asm.midi.partition import write_midi

    write_midi(path, [Note(pitch, velocity, 0.0, seconds)])
    return path


def _preset_id(name: str) -> int:
    from sqlalchemy import select

    from asm.registry.db import session_scope
    from asm.registry.models import Preset

    with session_scope() as session:
        return int(session.scalar(select(Preset.id).where(Preset.name == name)))


@needs_amsynth
def test_find_presets_ranks_the_preset_a_target_was_rendered_from_first(cli, amsynth_bank, tmp_path):
    mid = _midi(tmp_path / "n.mid")
    hits = 0
    names = _some_names(2)
    for name in names:
        wav = tmp_path / f"{name}.wav"
        assert cli("render", "-s", "amsynth", "-p", name, "--midi", mid, "--duration", "2", "-o", wav).code == 0
        r = cli("find-presets", wav, "--synth", "amsynth", "-k", "3", "--midi", mid, "-j", "1",
                "--out-dir", tmp_path / f"find-{name}", "--json")
        assert r.code == 0, r.err
        doc = r.json()
        assert doc["presets_indexed"] == 128 and doc["renders"] == doc["shortlist"] == 100  # max(10 k, 100)
        assert len(doc["found"]) == 3
        scores = [f["metrics"]["perceptual"] for f in doc["found"]]
        assert scores == sorted(scores)  # ranked by real renders
        hits += doc["found"][0]["preset_id"] == _preset_id(name)
        out = tmp_path / f"find-{name}"
        assert (out / "spectrograms.png").is_file() and (out / "target.wav").is_file()
        audio, sr = sf.read(doc["found"][0]["audio"])
        assert sr == 16000 and np.abs(audio).max() > 0
        assert json.loads((out / "find.json").read_text())["found"][0]["name"] == doc["found"][0]["name"]
    assert hits == len(names)


def _some_names(n: int) -> list[str]:
    from sqlalchemy import select

    from asm.registry.db import session_scope
    from asm.registry.models import Preset

    with session_scope() as session:
        rows = list(session.scalars(select(Preset.name).order_by(Preset.id)))
    unique = [r for r in rows if rows.count(r) == 1]
    return [unique[i] for i in np.linspace(0, len(unique) - 1, n).astype(int)]


@needs_amsynth
def test_the_index_is_cached_and_rebuilt_when_the_preset_set_changes(cli, amsynth_bank, tmp_path, asm_home):
    mid = _midi(tmp_path / "n.mid", pitch=60)
    name = _some_names(1)[0]
    wav = tmp_path / "t.wav"
    assert cli("render", "-s", "amsynth", "-p", name, "--midi", mid, "--duration", "2", "-o", wav).code == 0
    args = ("find-presets", wav, "-k", "1", "--shortlist", "4", "--midi", mid, "-j", "1", "--json")
    first = cli(*args, "--out-dir", tmp_path / "a").json()
    second = cli(*args, "--out-dir", tmp_path / "b").json()
    assert first["index_built"] is True and second["index_built"] is False
    files = list((asm_home / "proxies" / "index").glob("amsynth-*.npz"))
    assert len(files) == 1
    r = cli("import-presets", "--synth", "amsynth", BANKS / "BriansBank02.amSynth.bank", "--json")
    assert r.code == 0
    third = cli(*args, "--out-dir", tmp_path / "c").json()
    assert third["index_built"] is True and third["presets_indexed"] > 128
    assert list((asm_home / "proxies" / "index").glob("amsynth-*.npz")) != files  # the stale one is gone
    assert len(list((asm_home / "proxies" / "index").glob("amsynth-*.npz"))) == 1


def test_find_presets_bad_input_is_one_line_exit_2(cli, tmp_path):
    from asm.audio.io import write_audio

    tone = write_audio(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000))
                       .astype(np.float32), 16000)
    cases = [(("find-presets", tone, "--synth", "nosuch"), "nosuch"),
             (("find-presets", tone, "--synth", "asm-sub"), "no presets"),
             (("find-presets", tmp_path / "missing.wav", "--synth", "asm-sub"), "missing.wav")]
    assert cli("update-registry", "fixtures/asm_sub.py").code == 0
    for args, words in cases:
        r = cli(*args)
        assert r.code == 2, (args, r.err)
        assert words in r.err and "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err


@needs_amsynth
def test_find_presets_refuses_a_silent_target(cli, amsynth_bank, tmp_path):
    from asm.audio.io import write_audio

    silent = write_audio(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    r = cli("find-presets", silent, "--synth", "amsynth")
    assert r.code == 2 and "silent" in r.err and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "asm-data" / "proxies").exists()  # refused before anything was built


# --- proxies: train-proxy, test-proxy --------------------------------------------------------------

@pytest.fixture(scope="module")
def proxy_home(tmp_path_factory):
    """One registry + a small asm-sub dataset (300 examples of 0.5 s) for the proxy tests."""
    home = tmp_path_factory.mktemp("proxy-home")
    env = {"ASM_DATA": str(home), "ASM_DB": f"sqlite:///{home / 'asm.db'}"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        from asm.cli import run

        assert run(["generate-dataset", "sub", "--synth", "asm-sub", "--size", "300", "--duration", "0.5",
                    "--note-off", "0.3", "--seed", "5", "--workers", "2"]) == 0
    return env


@pytest.fixture
def phome(proxy_home, monkeypatch):
    for k, v in proxy_home.items():
        monkeypatch.setenv(k, v)
    from pathlib import Path

    return Path(proxy_home["ASM_DATA"])


def test_a_proxy_trained_for_a_few_epochs_beats_a_constant_embedding(phome, cli):
    from asm.registry.db import session_scope
    from asm.registry.models import Proxy

    r = cli("train-proxy", "--synth", "asm-sub", "--dataset", "sub", "--config", "proxy-mlp", "--epochs", "20", "--batch-size", "32",
            "--name", "mlp15", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["best_val_l1"] < 0.9 * out["baseline_val_l1"]
    with session_scope() as session:
        row = session.get(Proxy, out["proxy_id"])
        assert row.status == "complete" and row.epochs_done == len(row.history) > 0
        assert row.config.name == "proxy-mlp" and row.net == "mlp"
        checkpoint = phome / row.checkpoint
    assert (checkpoint / "best.pt").is_file() and (checkpoint / "last.pt").is_file()
    # test-proxy: L1 on the test split below the constant's, MRR above chance, a stored run
    r = cli("test-proxy", "mlp15", "--json")
    assert r.code == 0, r.err
    t = r.json()
    assert t["l1"] < t["l1_constant"] and t["mrr_on"] == "test"  # asm-sub has no factory presets
    assert t["mrr"] > t["mrr_chance"] and -1 <= t["spearman"] <= 1
    from asm.registry.models import Run

    with session_scope() as session:
        run = session.get(Run, t["run_id"])
        assert run.kind == "test-proxy" and run.status == "complete" and run.summary["mrr"] == t["mrr"]
        assert run.settings["proxy"] == "mlp15"


def test_mean_reciprocal_rank_is_one_for_a_perfect_proxy_and_lower_for_a_shuffled_one():
    from asm.proxy.evaluate import mean_reciprocal_rank

    truth = np.random.default_rng(0).normal(size=(50, 8))
    assert mean_reciprocal_rank(truth, truth) == 1.0
    assert mean_reciprocal_rank(truth[::-1].copy(), truth) < 0.2


def test_an_interrupted_proxy_resumes_from_its_last_epoch(phome, cli):
    from asm.progress import Reporter
    from asm.proxy.train import train_proxy
    from asm.registry.db import session_scope
    from asm.registry.models import Proxy

    class StopAfterTwo(Reporter):
        def update(self, done, **kw):
            if kw.get("stage", "").startswith("training") and done >= 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_proxy("proxy-highway", "sub", epochs=4, name="hw", reporter=StopAfterTwo())
    with session_scope() as session:
        from sqlalchemy import select

        row = session.scalar(select(Proxy).where(Proxy.name == "hw"))
        assert row.status == "training" and row.epochs_done == 2
    r = cli("train-proxy", "--dataset", "sub", "--config", "proxy-highway", "--name", "hw")
    assert r.code == 2 and "--resume hw" in r.err
    r = cli("train-proxy", "--resume", "hw", "--json")
    assert r.code == 0, r.err
    assert r.json()["epochs"] == 4
    with session_scope() as session:
        row = session.scalar(select(Proxy).where(Proxy.name == "hw"))
        assert row.status == "complete" and [h["epoch"] for h in row.history] == [1, 2, 3, 4]


def test_the_transformer_proxy_trains_on_per_parameter_tokens(phome):
    import torch

    from asm.proxy.models import ProxyNetwork
    from asm.proxy.train import train_proxy

    out = train_proxy("proxy-transformer", "sub", epochs=2, name="tf")
    assert out["epochs"] == 2 and np.isfinite(out["best_val_l1"])
    free = [{"kind": "continuous", "n_values": 0}, {"kind": "categorical", "n_values": 3}]
    net = ProxyNetwork("transformer", free, 6, dim=16, depth=1, heads=2)
    x = torch.tensor([[0.5, 0.1], [0.5, 0.9]])
    y = net(x)
    assert y.shape == (2, 6) and not torch.allclose(y[0], y[1])  # the category changes the answer


def test_proxy_bad_input_is_one_line_exit_2(phome, cli, tmp_path):
    cases = [(("train-proxy", "--dataset", "nosuch"), "nosuch"),
             (("train-proxy", "--dataset", "sub", "--config", "nope"), "unknown proxy config"),
             (("train-proxy", "--dataset", "sub", "--synth", "nosynth"), "nosynth"),
             (("test-proxy", "never-trained"), "no proxy"),
             (("find-presets", tmp_path / "x.wav", "--synth", "nosynth"), "x.wav")]
    bad = tmp_path / "bad.py"
    bad.write_text("from asm.proxy.config import ProxyConfig\nFIXTURE = [ProxyConfig(name='b', net='mlp', "
                   "hyper={'width': 3})]\n")
    cases.append((("update-registry", bad), "width"))
    for args, words in cases:
        r = cli(*args)
        assert r.code == 2, (args, r.err)
        assert words in r.err and "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err
