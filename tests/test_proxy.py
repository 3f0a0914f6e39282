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
        assert doc["presets_indexed"] == 128 and doc["renders"] == doc["shortlist"] == 24
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
