"""``asm match`` end to end: outputs, stored rows, the re-render check, bad inputs, amsynth."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from plugin_paths import needs_amsynth

from asm.search.config import BUILTIN_RECIPES

pytest_plugins = ["plugin_helpers"]


def _render(cli, path, *extra):
    r = cli("render", "--synth", "asm-sub", "--note", "57", "--duration", "1.0", "--note-off", "0.6",
            "--set", "osc1_wave=square", "--set", "cutoff=0.45", *extra, "--out", path)
    assert r.code == 0, r.err
    return path


def _count_runs() -> int:
    from asm.registry.db import session_scope
    from asm.registry.models import Preset, Result, Run

    with session_scope() as session:
        return (session.query(Run).count() + session.query(Result).count()
                + session.query(Preset).filter(Preset.origin == "matched").count())


def test_match_writes_every_output_and_the_preset_re_renders_to_the_reported_match(cli, tmp_path):
    from asm.audio.metrics import distances
    from asm.midi.notes import Note
    from asm.presets import jsonpreset
    from asm.registry.db import session_scope
    from asm.registry.models import Preset, Result, Run
    from asm.synth.host import open_synth
    from asm.synth.loader import load_spec

    target = _render(cli, tmp_path / "target.flac")
    out = tmp_path / "out"
    r = cli("match", target, "--method", "nsga2", "--budget", "90", "--seed", "3", "--out-dir", out, "--json",
            "--workers", "2")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["method"] == "nsga2" and doc["renders"] == 90 and doc["notes_from"] == "detected"
    assert [n["pitch"] for n in doc["notes"]] == [57]
    assert set(doc["metrics"]) >= {"mr-stft", "log-spectral", "mfcc", "spectral-convergence"}
    names = {p.name for p in out.iterdir()}
    assert {"best.json", "match.wav", "target.wav", "spectrograms.png", "match.json"} <= names
    assert {f"pareto-{k}.json" for k in range(1, len(doc["front"]) + 1)} <= names and doc["front"]
    assert json.loads((out / "match.json").read_text())["result_id"] == doc["result_id"]
    # the exported preset, rendered again with the reported notes, is the match and scores as reported
    with session_scope() as session:
        spec = load_spec(session, "asm-sub", doc["sample_rate"])
        (preset,) = jsonpreset.decode(out / "best.json", "asm-sub", spec.space)
        run = session.get(Run, doc["run_id"])
        result = session.get(Result, doc["result_id"])
        stored = session.get(Preset, doc["preset_id"])
        assert run.kind == "match" and run.status == "complete" and result.run_id == run.id
        assert stored.origin == "matched" and stored.values == pytest.approx(preset.values)
        assert result.renders == 90 and result.metrics["mr-stft"] == pytest.approx(doc["metrics"]["mr-stft"])
    notes = [Note(n["pitch"], n["velocity"], n["start"], n["duration"]) for n in doc["notes"]]
    again = open_synth(spec).render(np.array(preset.values), notes, doc["duration"])
    match, sr = sf.read(out / "match.wav", dtype="float32")
    assert sr == doc["sample_rate"] and np.array_equal(again, match)
    tgt, _ = sf.read(out / "target.wav", dtype="float32")
    score = distances(again, tgt, sr, ["mr-stft"])["mr-stft"][0]
    assert score == pytest.approx(doc["metrics"]["mr-stft"], rel=1e-6)


def test_default_method_is_hybrid_seeded_from_a_dataset_and_notes_can_be_given(cli, tmp_path):
    r = cli("generate-dataset", "tiny", "--synth", "asm-sub", "--size", "60", "--duration", "1", "--note-off",
            "0.75", "--workers", "1")
    assert r.code == 0, r.err
    target = _render(cli, tmp_path / "t.wav")
    r = cli("match", target, "--budget", "60", "--note", "C3", "--out-dir", tmp_path / "o", "--json",
            "--workers", "1")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["method"] == "hybrid" and doc["dataset"] == "tiny" and doc["model"] is None
    train = 48  # 80% of 60
    want = min(BUILTIN_RECIPES["asm"][0].seeds.neighbours, train)
    assert doc["initial_population"]["nn:tiny"] == want and doc["initial_population"]["default"] == 1
    assert doc["notes_from"] == "note" and [n["pitch"] for n in doc["notes"]] == [48]
    assert doc["renders"] == 60
    r = cli("match", target, "--method", "nn", "--budget", "60", "--out-dir", tmp_path / "o2", "--json",
            "--workers", "1")
    assert r.code == 0, r.err
    assert r.json()["renders"] == 1 and r.json()["best_source"] == "nn:tiny"


def test_models_drive_model_and_hybrid_and_a_model_for_other_locks_is_refused(cli, tmp_path):
    r = cli("generate-dataset", "tiny", "--synth", "asm-sub", "--size", "60", "--duration", "1", "--note-off",
            "0.75", "--workers", "1")
    assert r.code == 0, r.err
    assert cli("update-registry", "fixtures/models/nn.py").code == 0
    r = cli("train-model", "--config", "nn", "--dataset", "tiny", "--json")
    assert r.code == 0, r.err
    name = r.json()["name"]
    target = _render(cli, tmp_path / "t.wav")
    r = cli("match", target, "--method", "model", "--model", name, "--out-dir", tmp_path / "a", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["model"] == name and doc["renders"] == 1 and doc["best_source"] == f"model:{name}"
    r = cli("match", target, "--method", "hybrid", "--model", name, "--budget", "40", "--out-dir", tmp_path / "b",
            "--json", "--workers", "1")
    assert r.code == 0, r.err
    k = min(BUILTIN_RECIPES["asm"][0].seeds.estimator, 48)
    assert r.json()["initial_population"][f"model:{name}"] == k  # an nn model gives K candidates
    assert cli("lock", "asm-sub", "cutoff=0.5").code == 0
    before = _count_runs()
    r = cli("match", target, "--model", name, "--out-dir", tmp_path / "c")
    assert r.code == 2 and "other free parameters" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli("match", target, "--dataset", "tiny", "--out-dir", tmp_path / "c")
    assert r.code == 2 and "other locks" in r.err
    assert _count_runs() == before and not any((tmp_path / "c").glob("*"))


def _midi(path, pitch: int):
    import mido

    mid = mido.MidiFile()
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.Message("note_on", note=pitch, velocity=100, time=0))
    track.append(mido.Message("note_off", note=pitch, velocity=0, time=480))
    mid.save(path)
    return path


def test_bad_inputs_exit_2_with_one_line_and_store_nothing(cli, tmp_path):
    good = _render(cli, tmp_path / "good.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(40)))
    text = tmp_path / "notes.txt"
    text.write_text("this is not audio\n" * 50)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    short = tmp_path / "short.wav"
    sf.write(short, 0.5 * np.sin(np.arange(800) * 0.2).astype(np.float32), 16000)  # 0.05 s
    low = _midi(tmp_path / "low.mid", 10)
    out = tmp_path / "out"
    cases = [
        ((tmp_path / "missing.wav",), "not found"),
        ((empty,), "empty"),
        ((corrupt,), "cannot read"),
        ((text,), "cannot read"),
        ((silent,), "silent"),
        ((short,), "too short"),
        ((good, "--synth", "no-such-synth"), "unknown synth"),
        ((good, "--model", "no-such-model"), "unknown model"),
        ((good, "--dataset", "no-such-dataset"), "unknown dataset"),
        ((good, "--method", "magic"), "unknown method"),
        ((good, "--midi", low), "outside the range of asm-sub"),
        ((good, "--note", "C-3"), "outside the MIDI range"),
        ((good, "--method", "model"), "needs a trained model"),
        ((good, "--method", "nn"), "needs a dataset"),
        ((good, "--search", "nope"), "unknown search config"),
        ((good, "--out-dir", good), "not a directory"),
    ]
    for args, expected in cases:
        r = cli("match", *args, "--out-dir", out, "--budget", "10") if "--out-dir" not in args else \
            cli("match", *args, "--budget", "10")
        assert r.code == 2, (args, r.out, r.err)
        assert expected in r.err, (args, r.err)
        assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
    assert _count_runs() == 0
    assert not out.exists() or not any(out.iterdir())


@needs_amsynth
@pytest.mark.slow
def test_amsynth_factory_target_gives_an_fxp_that_amsynth_loads(cli, amsynth_registry, tmp_path):
    from plugin_paths import amsynth_spec

    from asm.presets import fxp
    from asm.synth.plugin import PluginSynth

    target = tmp_path / "strings.wav"
    r = cli("render", "--synth", "amsynth", "--preset", "Synth Strings 1", "--note", "C3", "--duration", "1.5",
            "--note-off", "1.0", "--out", target)
    assert r.code == 0, r.err
    out = tmp_path / "out"
    r = cli("match", target, "--synth", "amsynth", "--budget", "40", "--out-dir", out, "--json", "--workers", "2")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["method"] == "hybrid" and doc["initial_population"]["factory"] == 8
    best = out / "best.fxp"
    item = fxp.read(best)
    assert item.magic == b"FxCk" and item.plugin_id == "amsy"
    synth = PluginSynth(amsynth_spec())
    try:
        (loaded,) = synth.load_presets([(best.read_bytes(), "fxp")])
    finally:
        synth.close()
    assert loaded == pytest.approx([np.float32(doc["preset"][k]) for k in doc["preset"]], abs=1e-6)
    assert doc["metrics"]["mr-stft"] < 100  # a usable (non-silent) match


def test_a_polyphonic_target_plays_the_midi_files_notes(cli, tmp_path):
    import mido

    mid = mido.MidiFile()
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for k, pitch in enumerate((48, 52, 55)):
        track.append(mido.Message("note_on", note=pitch, velocity=90, time=0 if k else 240))  # first note at 0.25 s
    track.append(mido.Message("note_off", note=48, velocity=0, time=720))
    track.append(mido.Message("note_off", note=52, velocity=0, time=0))
    track.append(mido.Message("note_off", note=55, velocity=0, time=0))
    mid.save(tmp_path / "chord.mid")
    target = tmp_path / "chord.wav"
    r = cli("render", "--midi", tmp_path / "chord.mid", "--out", target)
    assert r.code == 0, r.err
    r = cli("match", target, "--midi", tmp_path / "chord.mid", "--method", "nsga2", "--budget", "16",
            "--out-dir", tmp_path / "o", "--json", "--workers", "1")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["notes_from"] == "midi" and sorted(n["pitch"] for n in doc["notes"]) == [48, 52, 55]
    assert min(n["start"] for n in doc["notes"]) == 0.0  # shifted: the target's leading silence is trimmed
    assert doc["renders"] == 16


def test_report_of_a_match_run_plays_its_target_and_its_match_also_for_rows_stored_before_the_common_layout(
        cli, tmp_path):
    from bench_helpers import report_audio

    from asm.registry.db import _alembic_config, engine, session_scope
    from asm.registry.models import Result

    target = _render(cli, tmp_path / "target.wav")
    out = tmp_path / "out"
    r = cli("match", target, "--method", "nsga2", "--budget", "24", "--out-dir", out, "--json", "--workers", "1")
    assert r.code == 0, r.err
    doc = r.json()
    r = cli("report", doc["run_id"], "--json")
    assert r.code == 0, r.err
    players = report_audio(r.json()["report"])
    assert players == [(out / "target.wav").resolve(), (out / "match.wav").resolve()]
    with session_scope() as session:
        extra = dict(session.get(Result, doc["result_id"]).extra)
    assert extra["preset"] == str((out / "best.json").resolve()) and extra["target_label"] == "target.wav"
    assert extra["picture"] == str((out / "spectrograms.png").resolve()) and len(extra["curve"]) >= 1

    # a match stored by older code named its files under "files" only: no players, until migration 0005
    from alembic import command

    old = {k: v for k, v in extra.items() if k not in ("audio", "target_audio", "picture", "preset", "target_label")}
    with session_scope() as session:
        session.get(Result, doc["result_id"]).extra = old
    assert report_audio(cli("report", doc["run_id"], "--json").json()["report"]) == []
    command.stamp(_alembic_config(engine()), "0004")
    command.upgrade(_alembic_config(engine()), "head")
    with session_scope() as session:
        migrated = dict(session.get(Result, doc["result_id"]).extra)
    assert migrated == extra
    assert report_audio(cli("report", doc["run_id"], "--json").json()["report"]) == players
