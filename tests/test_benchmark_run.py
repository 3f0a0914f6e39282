"""A whole (tiny) benchmark: set-up, dataset, models, every method on the same targets, reuse on a rerun."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asm.bench.config import BenchmarkRequest, ModeSettings, ScalePreset
from asm.bench.ood import FORMAT
from asm.bench.runner import run_benchmark
from asm.progress import RecordingReporter, StageFinished, StageProgress, StageStarted

TINY = ScalePreset(name="tiny", description="tests", dataset_size=120, test_targets=3, factory_targets=3,
                   ood_targets=1, models=("mlp",), epochs=2, patience=2, batch_size=16, search_budget=40,
                   search_time_limit=None,
                   mono=ModeSettings(duration=0.5, note_off=0.3, note_range=(48, 72)),
                   poly=ModeSettings(duration=0.5, note_off=0.3, note_range=(48, 72), max_polyphony=3))


def _ood_dir(tmp_path, sr=22050):
    """A one-target out-of-domain set in the manifest format (a decaying 220 Hz square wave)."""
    from asm.audio.io import write_audio

    d = tmp_path / "ood"
    (d / "mono").mkdir(parents=True)
    t = np.arange(int(0.5 * sr)) / sr
    write_audio(d / "mono" / "00-square-A3.wav", (0.4 * np.sign(np.sin(2 * np.pi * 220 * t)) * np.exp(-4 * t)), sr)
    (d / "manifest.json").write_text(json.dumps({
        "format": FORMAT, "soundfont": "none", "sample_rate": sr, "duration": 0.5, "note_off": 0.3,
        "velocity": 100, "peak": 0.4, "targets": [{"name": "00-square-A3", "set": "mono", "file": "mono/00-square-A3.wav",
                                                    "program": 80, "instrument": "square", "family": "synth lead",
                                                    "notes": [[57, 100, 0.0, 0.3]], "gain": 1.0}]}))
    return d


def test_the_dataset_stage_of_a_benchmark_reports_its_bar_and_its_events(asm_home):
    """The runner passes its reporter to dataset generation (its old adapter's methods were hidden by
    dataclass fields: no bar, no events, no worker-crash messages)."""
    from asm.bench.config import plan
    from asm.bench.runner import apply_setup, build_dataset

    rec = RecordingReporter()
    small = TINY.model_copy(update={"dataset_size": 24})
    req = BenchmarkRequest(ood=False)
    apply_setup(plan(req, small), [], rec)
    name = build_dataset(plan(req, small), 2, rec)
    assert rec.of(StageStarted, "generating") == [StageStarted(f"generating {name}", 24, 0)]
    progress = rec.of(StageProgress, "generating")
    assert progress and progress[-1].done == 24 and all(0 <= e.done <= 24 for e in progress)
    assert StageFinished(f"generating {name}") in rec.events
    said = rec.messages()
    assert any(t.startswith("set-up: ") for t in said) and f"dataset {name}: 24 examples (generated)" in said


def test_set_up_applies_the_scale_default_configs_hyphenated_names_included(asm_home):
    """The small scale's asm-sub models include ``cnn-spectral`` (file ``cnn_spectral.py``); an unknown config
    is one line naming the shipped ones."""
    from sqlalchemy import select

    from asm.bench.config import SCALES, default_models, plan
    from asm.bench.runner import apply_setup
    from asm.errors import AsmError
    from asm.registry.db import session_scope
    from asm.registry.models import ModelConfigRow

    configs = list(default_models(SCALES["small"], "asm-sub"))
    assert "cnn-spectral" in configs
    apply_setup(plan(BenchmarkRequest(ood=False), TINY), configs, RecordingReporter())
    with session_scope() as session:
        names = set(session.scalars(select(ModelConfigRow.name)))
    assert {*configs, "nn"} <= names
    with pytest.raises(AsmError, match="unknown model config 'nope': shipped configs are .*cnn-spectral"):
        apply_setup(plan(BenchmarkRequest(ood=False), TINY), ["nope"], RecordingReporter())


@pytest.mark.slow
def test_tiny_mono_benchmark_end_to_end_and_reuse(tmp_path, asm_home):
    from sqlalchemy import func, select

    from asm.registry.db import session_scope
    from asm.registry.models import Dataset, Model
    from asm.runs import load_run

    rec = RecordingReporter()
    req = BenchmarkRequest(ood_dir=str(_ood_dir(tmp_path)))
    first = run_benchmark(req, preset=TINY, workers=2, device="cpu", reporter=rec)
    # every stage reports: the dataset's bar, the training epochs, one step per (target, method) answer
    stages = [e.stage for e in rec.of(StageStarted)]
    assert stages[0].startswith("generating ") and any(s.startswith("training ") for s in stages)
    assert rec.of(StageProgress, "generating")[-1].done == TINY.dataset_size
    matching = rec.of(StageProgress, "matching")
    assert [e.done for e in matching] == list(range(1, 4 * 8 + 1))
    assert set(stages) <= {e.stage for e in rec.of(StageFinished)}
    run, records = load_run(first["run_id"])
    assert run["status"] == "complete" and run["kind"] == "benchmark"
    methods = ["random", "nn", "model:mlp", "nsga2-autosoundmatch", "nsga2", "hybrid", "gradient", "cmaes"]
    assert sorted({r["method"] for r in records}) == sorted(methods)
    assert len(records) == (3 + 1) * len(methods)  # every method on every target
    by_set = {s: [r for r in records if r["target_set"] == s] for s in ("test", "ood")}
    assert len({r["target"] for r in by_set["test"]}) == 3 and len({r["target"] for r in by_set["ood"]}) == 1
    for r in by_set["test"]:
        assert r["param_mae"] is not None and r["param_accuracy"] is not None  # truth known
        assert r["metrics"]["mr-stft"] < 100 and len(r["values"]) == 30
    assert all(r["param_mae"] is None for r in by_set["ood"])  # no true preset out of domain
    searched = [r for r in by_set["test"] if r["method"] in ("nsga2-autosoundmatch", "nsga2", "hybrid", "gradient", "cmaes")]
    assert all(0 < r["renders"] <= TINY.search_budget + 64 for r in searched)  # one budget for every search
    assert (asm_home / "reports" / f"run-{first['run_id']}" / "index.html").is_file()
    _check_noisiness_and_floor(records, asm_home / "reports" / f"run-{first['run_id']}" / "index.html")

    # the stored answer re-rendered with the stored notes gives the stored score: same notes, same length
    from asm.audio.io import read_audio
    from asm.audio.metrics import distances
    from asm.midi.notes import Note
    from asm.registry.synth_loader import spec_of
    from asm.registry.synths import get_synth
    from asm.runs import resolve_data_path
    from asm.synth.host import open_synth

    r = next(x for x in by_set["test"] if x["method"] == "model:mlp")
    target, _ = read_audio(resolve_data_path(r["extra"]["target_audio"]))
    with session_scope() as session:
        spec = spec_of(get_synth(session, "asm-sub"), 16000)
    synth = open_synth(spec)
    audio = synth.render_free(np.array(r["values"]), [Note(*n) for n in r["notes"]], len(target) / 16000)
    again = distances(audio, target[:, 0], 16000, ["mr-stft"])["mr-stft"][0]
    assert again == pytest.approx(r["metrics"]["mr-stft"], rel=1e-3)

    # a second run reuses the dataset and the models, and scores the same targets the same way
    rec = RecordingReporter()
    second = run_benchmark(req, preset=TINY, workers=2, device="cpu", reporter=rec)
    said = rec.messages()
    assert any("already complete" in s for s in said) and sum("reused" in s for s in said) == 2
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == 1
        assert session.scalar(select(func.count()).select_from(Model)) == 2  # mlp and the nn index
    _, again_records = load_run(second["run_id"])
    def key(r):
        return (r["target_set"], r["target"], r["method"])
    before = {key(r): r["metrics"]["mr-stft"] for r in records if not r["method"].startswith(("nsga2", "hybrid"))}
    after = {key(r): r["metrics"]["mr-stft"] for r in again_records if key(r) in before}
    assert after == pytest.approx(before)


def _check_noisiness_and_floor(records: list[dict], index) -> None:
    """Every row has its target's and match's noisiness and its set's floor (asm-sub: deterministic);
    the report's per-target noisiness cells are the noisiness of the stored WAVs."""
    import html
    import re

    from asm.audio.analysis import noisiness
    from asm.audio.io import read_audio
    from asm.bench.noisiness import MATCH_KEY, TARGET_KEY
    from asm.bench.rerender_floor import FLOOR_KEY
    from asm.bench.summary import fmt
    from asm.runs import resolve_data_path

    assert all(TARGET_KEY in r["extra"] and MATCH_KEY in r["extra"] for r in records)
    assert all(r["extra"][FLOOR_KEY]["deterministic"] for r in records)
    page = index.read_text(encoding="utf-8")
    assert "Noisiness per target" in page and "re-render floor: deterministic" in page
    r = next(x for x in records if x["target_set"] == "ood" and x["method"] == "hybrid")
    target, sr = read_audio(resolve_data_path(r["extra"]["target_audio"]))
    match, _ = read_audio(resolve_data_path(r["extra"]["audio"]))
    table = page[page.index('<table class="summary noisiness">', page.index('id="set-ood"')):]
    row = next(tr for tr in re.findall(r"<tr>(.*?)</tr>", table[: table.index("</table>")])
               if html.escape(r["extra"]["target_label"]) in tr)
    cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
    methods = ["random", "nn", "model:mlp", "nsga2-autosoundmatch", "nsga2", "hybrid"]
    at = 2 + 2 * methods.index("hybrid")  # label, target noisiness, then (match, x target) per method
    assert cells[1] == fmt(noisiness(target[:, 0], sr)) and cells[at] == fmt(noisiness(match[:, 0], sr))


@pytest.mark.slow
def test_tiny_poly_benchmark_scores_the_polyphonic_render(asm_home):
    from asm.runs import load_run

    first = run_benchmark(BenchmarkRequest(mode="poly", ood=False), preset=TINY, workers=2, device="cpu",
                          report=False)
    _, records = load_run(first["run_id"])
    test = [r for r in records if r["target_set"] == "test"]
    assert test and all(len(r["notes"]) >= 1 for r in test)
    assert any(len(r["notes"]) > 1 for r in test)  # chords / sequences, stored with every note
    starts = {n[2] for r in test for n in r["notes"]}
    assert all(0 <= s < 0.5 for s in starts)
