"""``asm match`` end to end: outputs, stored rows, the re-render check, bad inputs, amsynth."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from plugin_paths import needs_amsynth

from asm.errors import AsmError
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
    from asm.registry.synth_loader import load_spec
    from asm.synth.host import open_synth

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
    stages = {"startup", "registry", "target", "pool_start", "pool_wait", "search", "final_render", "outputs",
              "store", "total"}
    assert stages <= set(doc["timings"]) and all(v >= 0 for v in doc["timings"].values())
    assert doc["timings"]["search"] <= doc["timings"]["total"]
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


def test_the_neighbour_index_is_kept_beside_the_dataset_and_rebuilt_when_the_dataset_changes(cli, tmp_path):
    from asm.data.store import dataset_dir
    from asm.registry.db import session_scope
    from asm.registry.models import Dataset
    from asm.search.seeding import DatasetNeighbours

    r = cli("generate-dataset", "tiny", "--synth", "asm-sub", "--size", "40", "--duration", "0.5", "--note-off",
            "0.3", "--workers", "1")
    assert r.code == 0, r.err
    target, _ = sf.read(_render(cli, tmp_path / "t.wav"), dtype="float32")
    built = DatasetNeighbours("tiny")
    files = list(dataset_dir("tiny").glob("neighbours-*.safetensors"))
    assert not built.loaded and [f.name for f in files] == ["neighbours-train-32.safetensors"]
    stored = DatasetNeighbours("tiny")
    assert stored.loaded
    assert np.array_equal(built.candidates(target, 16000, 5), stored.candidates(target, 16000, 5))
    assert cli("verify-dataset", "tiny").code == 0  # the index beside the shards is not a problem
    with session_scope() as session:  # another shard content (the checksum the registry vouches for)
        shard = session.query(Dataset).filter_by(name="tiny").one().shards[0]
        shard.sha256 = "0" * 64
    assert not DatasetNeighbours("tiny").loaded and DatasetNeighbours("tiny").loaded
    files[0].write_bytes(b"damaged")
    again = DatasetNeighbours("tiny")
    assert not again.loaded and np.array_equal(again.candidates(target, 16000, 5), built.candidates(target, 16000, 5))


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
    long = tmp_path / "long.wav"
    sf.write(long, np.full(31 * 8000, 0.3, np.float32), 8000)
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
        ((good, "--method", "magic"), "Invalid value for '--method'"),
        ((good, "--midi", low), "outside the range of asm-sub"),
        ((good, "--note", "C-3"), "outside the MIDI range"),
        ((good, "--method", "model"), "needs a trained model"),
        ((good, "--method", "nn"), "needs a dataset"),
        ((good, "--search", "nope"), "unknown search config"),
        ((good, "--out-dir", good), "not a directory"),
        ((long,), "too long: it lasts 31.0 s"),
        ((good, "--crop", "5:2"), "--crop"),
        ((good, "--crop", "3:4"), "after the end"),
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


def test_final_render_takes_the_next_candidate_when_the_best_no_longer_renders_audibly():
    """The archive says candidate 0 was the best (as when a worker's render was audible in the search),
    but it renders silence now, also in a fresh instance: the match is the next audible candidate."""
    from test_search import asm_sub_spec

    from asm.audio.signal import is_usable
    from asm.match.final import FreshSynths, final_render
    from asm.midi.notes import held
    from asm.render import RenderPool
    from asm.search.problem import Archive

    spec = asm_sub_spec()
    space = spec.space
    silent = space.free_part(space.defaults()).copy()
    for name in ("osc1_level", "osc2_level", "noise_level"):
        silent[[p.name for p in space.free].index(name)] = 0.0
    audible = space.free_part(space.defaults())
    archive = Archive(space.n_free, 1)
    archive.add(np.stack([silent, audible, audible]), np.array([[0.5], [1.0], [100.0]]), np.array([0.5, 1.0, 100.0]),
                ["search", "default", "search"])
    notes = held([57], 100, 0.5)
    with RenderPool(spec, 1, stall_timeout=30) as pool:
        index, audio, notices = final_render(pool, FreshSynths(spec), archive, 100.0, notes, 0.8)
        assert index == 1 and is_usable(audio) and len(notices) == 1 and "no longer renders" in notices[0]
        only_silent = Archive(space.n_free, 1)
        only_silent.add(silent[None], np.array([[0.5]]), np.array([0.5]), "search")
        with pytest.raises(AsmError, match="no longer do"):
            final_render(pool, FreshSynths(spec), only_silent, 100.0, notes, 0.8)
        nothing = Archive(space.n_free, 1)  # a search that found nothing audible keeps its (silent) best
        nothing.add(silent[None], np.array([[100.0]]), np.array([100.0]), "search")
        index, audio, _ = final_render(pool, FreshSynths(spec), nothing, 100.0, notes, 0.8)
        assert index == 0 and not is_usable(audio)


def _level_db(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-20))


@needs_amsynth
@pytest.mark.slow
def test_consecutive_amsynth_matches_of_one_pool_report_what_a_fresh_instance_plays():
    """Many matches on one worker pool (plugin state carried from match to match): every final render
    is audible when the search found an audible preset, and sounds like a fresh instance's render."""
    from plugin_paths import amsynth_spec

    from asm.audio.signal import is_usable
    from asm.match.pipeline import match_target
    from asm.midi.notes import held
    from asm.render import RenderPool
    from asm.search.config import SearchSettings
    from asm.synth.plugin import PluginSynth

    spec = amsynth_spec()
    space = spec.space
    rng = np.random.default_rng(11)
    settings = SearchSettings(population=12, budget=24)
    fresh = PluginSynth(spec)
    levels = []
    with RenderPool(spec, 2, stall_timeout=60) as pool:
        for k in range(12):
            notes = held([int(rng.integers(40, 70))], 100, 0.6)
            target = fresh.render_free(space.random_free(rng, 1)[0], notes, 1.0)
            if not is_usable(target):
                continue
            r = match_target(target, notes, spec, "nsga2", settings, pool=pool, seed=k)
            found = min(b for _, _, b in r.curve) < 100
            again = PluginSynth(spec).render_free(r.values, notes, 1.0)
            if found:
                assert is_usable(r.audio), (k, r.events)
            if is_usable(again):
                # amsynth draws random oscillator phases and noise, so two renders of one preset differ
                # sample by sample (mr-stft up to ~2); their levels stay within ~2.5 dB
                assert is_usable(r.audio), k
                gap = abs(_level_db(r.audio) - _level_db(again))
                levels.append(gap)
                assert gap < 6.0, (k, gap, r.events)
    assert len(levels) >= 8


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

    # a match stored by older code named its files under "files" only: no players, until migration 0006
    from alembic import command

    old = {k: v for k, v in extra.items() if k not in ("audio", "target_audio", "picture", "preset", "target_label")}
    with session_scope() as session:
        session.get(Result, doc["result_id"]).extra = old
    assert report_audio(cli("report", doc["run_id"], "--json").json()["report"]) == []
    command.stamp(_alembic_config(engine()), "0005")
    command.upgrade(_alembic_config(engine()), "0006")  # only the layout migration runs again
    command.stamp(_alembic_config(engine()), "head")
    with session_scope() as session:
        migrated = dict(session.get(Result, doc["result_id"]).extra)
    assert migrated == extra
    assert report_audio(cli("report", doc["run_id"], "--json").json()["report"]) == players
