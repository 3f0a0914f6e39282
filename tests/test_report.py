"""The benchmark report and ``asm results``: built from real run/result rows, opened in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bench_helpers import build_run

from asm.bench.summary import summarise

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Loads the report in a frame and, once every image has loaded or failed and every audio element
# has its metadata or an error, writes what it found into the page for --dump-dom.
HARNESS = """<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="f" src="REPORT" style="width:1400px;height:900px"></iframe>
<script>
document.getElementById('f').addEventListener('load', async () => {
  const doc = document.getElementById('f').contentDocument;
  const imgs = [...doc.images], audios = [...doc.querySelectorAll('audio')];
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  await Promise.all(audios.map(a => a.readyState >= 1 ? null : new Promise(r => {
    a.addEventListener('loadedmetadata', r); a.addEventListener('error', r); a.load(); })));
  document.getElementById('result').textContent = JSON.stringify({
    title: doc.title,
    tables: [...doc.querySelectorAll('table')].map(t => ({cls: t.className, rows: t.rows.length,
      text: t.innerText})),
    images: imgs.map(i => ({src: i.getAttribute('src'), width: i.naturalWidth})),
    audio: audios.map(a => ({src: a.getAttribute('src'), duration: a.duration, error: a.error && a.error.code})),
  });
});
</script></body></html>"""


def open_in_chromium(report: Path, work: Path) -> dict:
    """What headless Chromium sees of ``report``: tables, images (natural width), audio (duration)."""
    harness = work / "harness.html"
    harness.write_text(HARNESS.replace("REPORT", report.resolve().as_uri()))
    profile = work / "profile"
    profile.mkdir(exist_ok=True)
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--allow-file-access-from-files",
         "--virtual-time-budget=30000", "--dump-dom", harness.as_uri()],
        check=False, capture_output=True, text=True, timeout=120)
    start = proc.stdout.find('<pre id="result">')
    assert start >= 0, proc.stderr[-2000:]
    text = proc.stdout[start + len('<pre id="result">'):proc.stdout.find("</pre>", start)]
    assert text != "pending", "the report did not finish loading in Chromium"
    import html

    return json.loads(html.unescape(text))


def test_summary_statistics_medians_intervals_and_best():
    from scipy import stats

    rows = []
    for i, v in enumerate([1.0, 2.0, 3.0, 10.0]):
        rows.append({"method": "hybrid", "target_set": "test", "target": f"t{i}",
                     "metrics": {"mr-stft": v, "mfcc": 5.0}, "param_mae": 0.1 * i, "param_accuracy": 0.5,
                     "renders": 100 + i, "seconds": 2.0})
        rows.append({"method": "random", "target_set": "test", "target": f"t{i}",
                     "metrics": {"mr-stft": v + 1, "mfcc": 4.0}, "param_mae": None, "param_accuracy": 0.75,
                     "renders": 1, "seconds": 0.01})
    rows.append({"method": "random", "target_set": "ood", "target": "x", "metrics": {"mr-stft": float("nan")},
                 "renders": 1, "seconds": 0.5})
    summary = summarise(rows)
    assert [(e["target_set"], e["method"]) for e in summary] == [("test", "random"), ("test", "hybrid"),
                                                                  ("ood", "random")]
    hybrid = summary[1]["metrics"]["mr-stft"]
    assert hybrid["median"] == 2.5 and hybrid["mean"] == 4.0 and hybrid["n"] == 4
    half = stats.t.ppf(0.975, 3) * np.std([1, 2, 3, 10], ddof=1) / 2
    assert np.allclose(hybrid["ci95"], [4 - half, 4 + half])
    assert summary[1]["best"] == ["mr-stft"]  # param MAE: no other method has one to beat
    assert summary[0]["best"] == ["mfcc", "param_accuracy"]
    assert summary[2]["best"] == []  # alone in its set
    assert summary[0]["param_mae"] is None and summary[1]["param_mae"]["mean"] == pytest.approx(0.15)
    assert summary[1]["renders"]["median"] == 101.5 and summary[1]["total_seconds"] == 8.0
    assert summary[2]["metrics"]["mr-stft"] is None  # NaN is no score, not a crash
    assert summary[2]["metrics"]["mfcc"] is None and summary[2]["n"] == 1


def test_report_from_a_real_run_loads_in_chromium(tmp_path, asm_home):
    from asm.bench.report import write_report
    from asm.runs import load_run

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make system-deps installs it)")
    run_id = build_run(n_targets=3)
    run, records = load_run(run_id)
    assert run["status"] == "complete" and run["synth"] == "asm-sub" and len(records) == 3 * 3 + 3
    report = write_report(run_id)
    assert report == asm_home / "reports" / f"run-{run_id}" / "index.html"
    assert load_run(run_id)[0]["report_path"] == f"reports/run-{run_id}/index.html"

    seen = open_in_chromium(report, tmp_path)
    assert seen["title"].startswith(f"asm benchmark · run {run_id}")
    kinds = [t["cls"] for t in seen["tables"]]
    assert kinds == ["summary", "summary noisiness", "targets"] * 2  # test set, then ood
    summary_test = seen["tables"][0]
    assert summary_test["rows"] == 2 + 3  # two header rows, three methods
    for method in ("random", "nn", "nsga2"):
        assert method in summary_test["text"]
    assert seen["tables"][2]["rows"] == 1 + 3 and seen["tables"][5]["rows"] == 1 + 1  # one row per target
    # images: 2 plots per target set + a spectrogram per target and per match, all decoded
    assert len(seen["images"]) == 2 * 2 + 3 * 4 + 1 * 4
    assert all(i["width"] > 0 for i in seen["images"]), [i for i in seen["images"] if not i["width"]]
    # audio: the target and every method's match, each with its real duration
    assert len(seen["audio"]) == 3 * 4 + 4
    assert all(a["error"] is None and abs(a["duration"] - 1.0) < 0.01 for a in seen["audio"]), seen["audio"]

    # the check can fail: a missing picture is seen as not loaded
    broken = next((report.parent / "img" / "spec" / "test").rglob("nn.png"))
    broken.unlink()
    again = open_in_chromium(report, tmp_path)
    assert sum(i["width"] == 0 for i in again["images"]) == 1

    # rebuilt from the rows alone: same page, pictures drawn again
    shutil.rmtree(report.parent / "img")
    first = report.read_text()
    report.unlink()
    assert write_report(run_id).read_text() == first
    assert broken.is_file()


def test_results_cli_lists_shows_and_compares(cli, asm_home):
    a = build_run(n_targets=2, seed=1, name="first", search_budget=8)
    b = build_run(n_targets=2, seed=2, name="second", search_budget=16)

    r = cli("results")
    assert r.code == 0 and "first" in r.out and "second" in r.out
    listed = cli("results", "--json").json()
    assert [x["id"] for x in listed] == [b, a] and listed[0]["results"] == 2 * 3 + 3

    r = cli("results", "--run", a)
    assert r.code == 0, r.err
    for text in ("random", "nn", "nsga2", "MR-STFT", "in-domain", "out of domain"):
        assert text in r.out
    shown = cli("results", "--run", a, "--json").json()
    from asm.runs import load_run

    assert shown["summary"] == json.loads(json.dumps(summarise(load_run(a)[1])))
    nsga2 = next(e for e in shown["summary"] if e["method"] == "nsga2" and e["target_set"] == "test")
    assert nsga2["renders"]["median"] == 8 and nsga2["n"] == 2

    r = cli("results", "--compare", a, b)
    assert r.code == 0 and f"run {a} → run {b}" in r.out and "→" in r.out
    both = cli("results", "--compare", a, b, "--json").json()
    assert [x["id"] for x in both["runs"]] == [a, b] and len(both["summaries"]) == 2

    r = cli("report", b)
    assert r.code == 0 and (asm_home / "reports" / f"run-{b}" / "index.html").is_file()
    for args in (("results", "--run", 999), ("results", "--compare", a, 999), ("report", 999),
                 ("results", "--kind", "nonsense")):
        r = cli(*args)
        assert r.code == 2 and r.err.count("\n") == 1, (args, r.err)


def test_run_writer_marks_a_failed_run_and_keeps_its_rows(asm_home):
    from asm.runs import RunWriter, load_run

    audio = np.sin(np.arange(16000) * 0.1).astype(np.float32) * 0.3
    with pytest.raises(RuntimeError), RunWriter("benchmark", "broken") as w:
        w.add(method="random", target_set="test", target="t0", audio=None, sample_rate=16000,
              target_audio=audio, renders=1)
        raise RuntimeError("boom")
    run, records = load_run(w.run_id)
    assert run["status"] == "failed" and run["finished_at"] is not None
    assert records[0]["metrics"]["mr-stft"] == 100.0  # an unrenderable answer scores the worst value
    assert "audio" not in records[0]["extra"] and records[0]["extra"]["target_audio"].endswith("target.wav")


def test_reach_summary_counts_renders_to_the_reference_final_score():
    from asm.audio.metrics import HEADLINE_METRIC
    from asm.bench.summary import reach_summary, reach_text

    def rec(method, target, final, curve):
        return {"method": method, "target_set": "test", "target": target, "metrics": {HEADLINE_METRIC: final},
                "renders": curve[-1][0], "extra": {"curve": curve}}

    records = [
        rec("nsga2-autosoundmatch", "a", 1.0, [[25, 0.1, 3.0], [400, 1.0, 1.0]]),
        rec("hybrid", "a", 0.5, [[50, 0.1, 2.0], [80, 0.2, 0.9], [600, 2.0, 0.5]]),
        rec("nsga2-autosoundmatch", "b", 0.5, [[25, 0.1, 2.0], [200, 1.0, 0.5]]),
        rec("hybrid", "b", 0.8, [[50, 0.1, 0.8]]),  # never reaches 0.5
    ]
    (entry,) = reach_summary(records)
    assert entry["targets"] == 2 and entry["reached"] == 1
    assert entry["median_seeded_renders"] == 80 and entry["median_reference_renders"] == 400
    assert entry["median_ratio"] == pytest.approx(0.2)
    assert "1/2 targets" in reach_text(entry)


def test_summary_counts_matches_three_times_noisier_and_scales_by_the_floor():
    from asm.bench.noisiness import MATCH_KEY, TARGET_KEY, noisiness_ratio
    from asm.bench.rerender_floor import FLOOR_KEY, deterministic_floor

    floor = {"metric": "perceptual", "deterministic": False, "value": 0.5, "max": 0.7, "renders": 3, "presets": 2,
             "source": "target presets"}

    def rec(method, i, target, match, score, target_set="ood", floor_info=floor):
        extra = {TARGET_KEY: target, FLOOR_KEY: floor_info}
        if match is not None:
            extra[MATCH_KEY] = match
        return {"method": method, "target_set": target_set, "target": f"t{i}", "metrics": {"perceptual": score},
                "renders": 1, "seconds": 0.1, "extra": extra}

    records = [rec("hybrid", 0, 0.01, 0.03, 1.0),  # exactly 3x: counts
               rec("hybrid", 1, 0.01, 0.029, 2.0),  # just under
               rec("hybrid", 2, 0.0, 1e-7, 3.0),  # a pure target: both floored at 1e-6, ratio 1
               rec("hybrid", 3, 0.02, None, 4.0),  # did not render: not counted either way
               rec("random", 0, 0.01, 0.5, 9.0),
               rec("random", 0, 0.01, 0.01, 1.0, target_set="test", floor_info=deterministic_floor())]
    assert noisiness_ratio(records[0]["extra"]) == pytest.approx(3.0)
    assert noisiness_ratio(records[2]["extra"]) == 1.0 and noisiness_ratio(records[3]["extra"]) is None
    summary = summarise(records)
    hybrid = next(e for e in summary if e["method"] == "hybrid")
    assert hybrid["noisiness"]["n"] == 3 and hybrid["noisiness"]["noisier"] == 1
    assert hybrid["noisiness"]["share"] == pytest.approx(1 / 3)
    assert hybrid["noisiness"]["target"]["median"] == pytest.approx(0.01)
    assert hybrid["rerender_floor"]["value"] == 0.5
    assert hybrid["relative_floor"]["median"] == pytest.approx(2.5 / 0.5)  # median 2.5 in floors of 0.5
    test = next(e for e in summary if e["target_set"] == "test")
    assert test["rerender_floor"]["deterministic"] and test["relative_floor"] is None  # no division by zero

    from rich.console import Console

    from asm.bench.summary import summary_tables

    console = Console(width=120, record=True)
    for table in summary_tables(summary):
        console.print(table)
    text = console.export_text()
    assert "33% (1/3)" in text and "×floor" in text and "deterministic" in text


def test_rerender_floor_is_positive_for_amsynth_and_zero_for_asm_sub(asm_home):
    from plugin_paths import AMSYNTH, amsynth_spec

    from asm.bench.rerender_floor import measure_floor
    from asm.midi.notes import Note
    from asm.registry.db import session_scope
    from asm.registry.synth_loader import spec_of
    from asm.registry.synths import get_synth
    from asm.render import RenderPool

    if not AMSYNTH.is_file():
        pytest.skip("amsynth is not installed")
    notes = [Note(57, 100, 0.0, 0.3)]
    spec = amsynth_spec(16000)
    preset = spec.space.free_part(spec.space.defaults())
    with RenderPool(spec, 1) as pool:
        floor = measure_floor(pool, [(preset, notes, 0.5)], 16000, 3, "target presets")
    assert floor["presets"] == 1 and floor["renders"] == 3 and not floor["deterministic"]
    assert floor["value"] > 1e-3  # random oscillator phase: renders differ
    with session_scope() as session:
        sub = spec_of(get_synth(session, "asm-sub"), 16000)
    rng = np.random.default_rng(0)
    with RenderPool(sub, 1) as pool:
        same = measure_floor(pool, [(sub.space.random_free(rng, 1)[0], notes, 0.5)], 16000, 3, "target presets")
    assert same["value"] < 1e-6 < floor["value"]  # asm-sub's "deterministic" is measured, not assumed


def test_report_noisiness_columns_come_from_the_stored_renders(tmp_path, asm_home):
    """The per-target noisiness cells, as Chromium shows them, are the noisiness of the stored audio files;
    the floor and the share per method are in the summary tables."""
    import re

    from asm.audio.analysis import noisiness
    from asm.audio.io import read_audio
    from asm.bench.noisiness import NOISIER_RATIO
    from asm.bench.report import write_report
    from asm.bench.rerender_floor import FLOOR_KEY, deterministic_floor
    from asm.bench.summary import fmt
    from asm.runs import load_run, resolve_data_path

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make system-deps installs it)")
    ood_floor = {"metric": "perceptual", "deterministic": False, "value": 0.25, "max": 0.5, "renders": 3,
                 "presets": 1, "source": "best matches"}
    run_id = build_run(n_targets=2, floors={"test": deterministic_floor(), "ood": ood_floor})
    report = write_report(run_id)
    seen = open_in_chromium(report, tmp_path)
    noise_test, noise_ood = (t for t in seen["tables"] if t["cls"] == "summary noisiness")
    assert noise_test["rows"] == 2 + 2 and noise_ood["rows"] == 2 + 1

    _, records = load_run(run_id)
    r = next(x for x in records if x["target_set"] == "test" and x["method"] == "nn")
    target, sr = read_audio(resolve_data_path(r["extra"]["target_audio"]))
    match, _ = read_audio(resolve_data_path(r["extra"]["audio"]))
    target_n, match_n = noisiness(target[:, 0], sr), noisiness(match[:, 0], sr)
    assert 0 < target_n < 1 and 0 < match_n < 1
    row = next(line for line in noise_test["text"].splitlines() if line.startswith(r["target"]))
    cells = row.split("\t")  # target, its noisiness, then (match, x target) per method: random, nn, nsga2
    assert cells[1] == fmt(target_n) and cells[4] == fmt(match_n)  # recomputed from the stored WAVs
    assert cells[5] == fmt(match_n / target_n) + "×"

    summary_ood = [t for t in seen["tables"] if t["cls"] == "summary"][1]
    assert "× re-render" in summary_ood["text"] and f"≥{NOISIER_RATIO:g}× noisier" in summary_ood["text"]
    assert re.search(r"\d+% \(\d/1\)", summary_ood["text"])  # the share of the one ood target, per method
    page = report.read_text()
    assert "re-render floor: deterministic" in page and "median 0.250" in page
    assert all(FLOOR_KEY in x["extra"] for x in records)  # noted on every row of both sets


def test_benchmark_notes_amsynths_floor_from_true_presets_or_best_matches(asm_home):
    """The runner's floor stage with real amsynth renders: a set with true presets is measured on them,
    a set without (out of domain) on each target's best match; every row of a set gets its floor."""
    from plugin_paths import AMSYNTH, amsynth_spec

    from asm.bench.rerender_floor import FLOOR_KEY
    from asm.bench.runner import Evaluator, Prepared, Target
    from asm.midi.notes import Note
    from asm.progress import RecordingReporter
    from asm.render import RenderPool
    from asm.runs import RunWriter, load_run

    if not AMSYNTH.is_file():
        pytest.skip("amsynth is not installed")
    spec = amsynth_spec(16000)
    notes = [Note(57, 100, 0.0, 0.3)]
    preset = spec.space.free_part(spec.space.defaults())
    rec = RecordingReporter()
    with RenderPool(spec, 1) as pool, RunWriter("benchmark", "floor") as writer:
        ev = Evaluator({"request": {"seed": 0}, "methods": ["random"]}, Prepared("none", {}, "none"), writer, pool,
                       spec, rec)
        target = pool.render(preset[None], notes, 0.5, free=True)[0]
        targets = [Target("test", "t0", "t0", target, notes, preset), Target("ood", "o0", "o0", target, notes)]
        ev.point_methods(targets)  # one random answer per target
        ev.rerender_floors(targets)
        run_id = writer.run_id
    _, records = load_run(run_id)
    floors = {r["target_set"]: r["extra"][FLOOR_KEY] for r in records}
    assert floors["test"]["source"] == "target presets" and floors["ood"]["source"] == "best matches"
    assert all(not f["deterministic"] and f["renders"] == 3 and f["value"] > 0 for f in floors.values())
    assert any(t.startswith("ood: re-render floor (perceptual, 3 renders of 1 best matches)") for t in rec.messages())
