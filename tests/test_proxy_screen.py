"""Proxy-screened search (method ``proxy``): a real proxy, trained for a few epochs on a tiny asm-sub
dataset of varied pitch, chooses what NSGA-II renders; real DawDreamer renders score everything."""

from __future__ import annotations

import numpy as np
import pytest

from asm.midi.notes import held
from asm.search.config import SearchSettings

NOTES = held([52], 100, 0.3)
DURATION = 0.5
SR = 16000


@pytest.fixture(scope="module")
def screen_home(tmp_path_factory):
    """A registry with a 240-example asm-sub dataset (every parameter free, notes 40..76) and a proxy
    trained on it for 8 epochs (format 2: the mean pitch is an input)."""
    home = tmp_path_factory.mktemp("screen-home")
    env = {"ASM_DATA": str(home), "ASM_DB": f"sqlite:///{home / 'asm.db'}"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        from asm.cli import run
        from asm.proxy.train import train_proxy

        assert run(["generate-dataset", "sub", "--synth", "asm-sub", "--size", "240", "--duration", str(DURATION),
                    "--note-off", "0.3", "--note-range", "40:76", "--seed", "3", "--workers", "2"]) == 0
        out = train_proxy("proxy-mlp", "sub", epochs=8, batch_size=32, name="screen", seed=0)
        assert out["epochs"] == 8
    return env


@pytest.fixture
def shome(screen_home, monkeypatch):
    for k, v in screen_home.items():
        monkeypatch.setenv(k, v)
    return screen_home


@pytest.fixture(scope="module")
def spool(screen_home):
    """asm-sub (every parameter free) and one render pool for the module."""
    from asm.render import RenderPool
    from tests.test_search import asm_sub_spec

    with pytest.MonkeyPatch.context() as mp:
        for k, v in screen_home.items():
            mp.setenv(k, v)
        spec = asm_sub_spec()
    with RenderPool(spec, 2, stall_timeout=30) as pool:
        yield spec, pool


class CountingPool:
    """The render pool, recording every candidate the search rendered (``reduce``: a search batch)."""

    def __init__(self, pool):
        self.pool, self.rendered = pool, []

    def render(self, values, *args, **kwargs):
        if kwargs.get("reduce") is not None:
            self.rendered.extend(np.atleast_2d(values))
        return self.pool.render(values, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.pool, name)


class RecordingProxy:
    """A ``ProxyScreen`` whose screens record every candidate they score."""

    def __init__(self, screen):
        self.screen, self.screened, self.name = screen, [], screen.name

    def for_target(self, audio, sample_rate, notes):
        inner = self.screen.for_target(audio, sample_rate, notes)

        def score(free):
            self.screened.extend(np.atleast_2d(free))
            return inner(free)

        return score


def _screen(name="screen"):
    from asm.proxy.screen import ProxyScreen
    from asm.registry.db import session_scope

    with session_scope() as session:
        return ProxyScreen.load(session, name)


def _target(spec, pool, seed=11):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        truth = spec.space.random_free(rng, 1)[0]
        audio = pool.render(truth[None], NOTES, DURATION, free=True)[0]
        if np.abs(audio).max() > 1e-2:
            return audio
    raise AssertionError("no audible random preset")


def _keys(rows) -> set[bytes]:
    return {np.round(np.asarray(r, dtype=np.float64), 6).tobytes() for r in rows}


def test_screened_search_reports_only_renders_and_spends_exactly_the_budget(shome, spool):
    from asm.audio.metrics import distances
    from asm.match.pipeline import match_target

    spec, pool = spool
    target = _target(spec, pool)
    counting, proxy = CountingPool(pool), RecordingProxy(_screen())
    archives = []
    settings = SearchSettings(population=10, budget=57, exploit=0.4, screen_factor=5)
    r = match_target(target, NOTES, spec, "proxy", settings, pool=counting, proxy=proxy, seed=2,
                     on_batch=archives.append)
    archive = archives[-1]
    assert r.renders == archive.renders == 57 == len(counting.rendered) and r.stopped == "budget"
    assert len(archive.all_values()) == len(archive.sources) == len(archive.all_headline()) == 57
    rendered = _keys(counting.rendered)
    assert _keys(archive.all_values()) <= rendered  # the archive holds rendered candidates only
    screened_out = _keys(proxy.screened) - rendered
    assert len(proxy.screened) >= 5 * 40 and len(screened_out) > 3 * 57  # most proposals were never rendered
    assert r.screened == len(proxy.screened) and r.summary()["screened"] == r.screened
    assert not (_keys(archive.all_values()) & screened_out)
    assert _keys([r.values]) <= rendered and _keys([f["values"] for f in r.front]) <= rendered
    assert r.initial == {"random": 10} and {"random", "local", "search"} == set(archive.sources)
    # the reported score is a real render's: re-rendering the best gives it again (asm-sub is deterministic)
    again = pool.render(np.asarray(r.values)[None], NOTES, DURATION, free=True)[0]
    assert distances(again, target, SR, ["perceptual"])["perceptual"][0] == pytest.approx(
        r.metrics["perceptual"], rel=1e-5)
    assert archive.best == pytest.approx(r.metrics["perceptual"], rel=1e-5)


def test_screening_keeps_the_candidates_the_proxy_ranks_best(shome, spool):
    """The first population's random part is the best 1/factor of factor x as many random presets by the proxy."""
    from asm.search.engine import run_search
    from asm.search.problem import Archive, CandidateScorer, MatchProblem

    spec, pool = spool
    target = _target(spec, pool, seed=5)
    score = _screen().for_target(target, SR, NOTES)
    scorer = CandidateScorer(target, SR, SearchSettings().objective_names)
    archive = Archive(spec.space.n_free, len(scorer.objectives))
    problem = MatchProblem(pool, spec.space, NOTES, DURATION, scorer, archive, budget=8, screen=score)
    run_search(problem, SearchSettings(population=8, budget=8, screen_factor=10), None, seed=4)
    assert archive.renders == 8 and problem.screened == 80
    rng = np.random.default_rng([4, 0x5EED])  # run_search's own draw
    pool_ = spec.space.random_free(rng, 80)
    kept = score(archive.all_values())
    assert kept.max() <= np.sort(score(pool_))[7] + 1e-9


def test_screened_search_is_reproducible_for_a_seed(shome, spool):
    from asm.match.pipeline import match_target

    spec, pool = spool
    target = _target(spec, pool, seed=7)
    proxy = _screen()
    settings = SearchSettings(population=8, budget=40, exploit=0.5, screen_factor=6)
    runs = [match_target(target, NOTES, spec, "proxy", settings, pool=pool, proxy=proxy, seed=s) for s in (3, 3, 4)]
    a, b, c = runs
    assert np.array_equal(a.values, b.values) and a.curve[-1][2] == b.curve[-1][2]
    assert [f["values"].tolist() for f in a.front] == [f["values"].tolist() for f in b.front]
    assert a.metrics == b.metrics
    assert not np.array_equal(a.front[0]["values"], c.front[0]["values"]) or a.curve != c.curve


def test_the_proxy_takes_the_pitch_and_old_proxies_screen_without_it(shome):
    import torch

    from asm.proxy.models import ProxyNetwork
    from asm.proxy.screen import ProxyScreen

    screen = _screen()
    assert screen.pitch_input and screen.meta["format"] == 2
    first = screen.network.body.net[0]
    assert first.in_features == screen.network.layout.width == 1 + len(screen.meta["free_parameters"]) + sum(
        (p.get("n_values") or 0) - 1 for p in screen.meta["free_parameters"]
        if p["kind"] == "categorical" and (p.get("n_values") or 0) > 1)
    rng = np.random.default_rng(0)
    free = rng.random((6, len(screen.meta["free_parameters"])))
    target = np.sin(2 * np.pi * 220 * np.arange(8000) / SR).astype(np.float32) * 0.3
    low, high = screen.for_target(target, SR, held([40], 100, 0.3)), screen.for_target(target, SR, held([76], 100, 0.3))
    assert not np.allclose(low(free), high(free))  # the same presets at another pitch predict other sounds
    # a format-1 proxy (parameters only) still screens
    torch.manual_seed(0)
    old = ProxyNetwork("mlp", screen.meta["free_parameters"], screen.network.mean.numel(), hidden=16, layers=1)
    legacy = ProxyScreen(old.eval(), {"format": 1}, "old", 0, {"sample_rate": SR, "duration": DURATION})
    assert not legacy.pitch_input and legacy.for_target(target, SR, NOTES)(free).shape == (6,)


def test_a_missing_proxy_is_one_line_exit_2(cli, tmp_path):
    from asm.audio.io import write_audio

    tone = write_audio(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000))
                       .astype(np.float32), 16000)
    assert cli("update-registry", "fixtures/asm_sub.py").code == 0
    cases = [(("match", tone, "--synth", "asm-sub", "--method", "proxy", "--note", "57"), "needs a trained proxy"),
             (("match", tone, "--method", "proxy", "--proxy", "nosuch", "--note", "57"), "no proxy 'nosuch'"),
             (("match", tone, "--method", "nsga2", "--proxy", "nosuch", "--note", "57"), "not nsga2")]
    for args, words in cases:
        r = cli(*args)
        assert r.code == 2, (args, r.err)
        assert words in r.err and "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_method_proxy_needs_a_proxy_in_the_pipeline():
    from asm.errors import AsmError
    from asm.match.pipeline import match_target
    from tests.test_search import asm_sub_spec

    spec = asm_sub_spec()
    with pytest.raises(AsmError, match="needs a trained proxy"):
        match_target(np.zeros(8000, np.float32), NOTES, spec, "proxy", SearchSettings(budget=5), pool=object())


def test_the_benchmark_plans_a_proxy_for_a_synth_without_a_twin_only(cli):
    p = cli("benchmark", "--dry-run", "--json").json()  # asm-sub: its twin refines, no proxy rows
    assert "proxy" not in p["methods"] and p["proxy"] is None
    q = cli("benchmark", "--dry-run", "--json", "--synth", "amsynth", "--no-ood").json()
    assert q["methods"][-1] == "proxy" and q["search"]["recipes"]["proxy"] == {"method": "proxy", "recipe": "asm"}
    assert q["proxy"]["config"] == "proxy-mlp" and q["proxy"]["name"].startswith(q["dataset"]["name"])
    assert q["proxy"]["train"]["epochs"] == 30  # the small scale's


def test_the_benchmark_trains_its_proxy_once_and_reuses_it(shome):
    from asm.bench.runner import build_proxy
    from asm.progress import RecordingReporter

    plan = {"proxy": {"config": "proxy-mlp", "name": "bench-proxy", "train": {"epochs": 2, "patience": 2,
                                                                             "batch_size": 64, "seed": 0}}}
    rec = RecordingReporter()
    assert build_proxy(plan, "sub", "cpu", rec) == "bench-proxy"
    assert build_proxy(plan, "sub", "cpu", rec) == "bench-proxy"
    said = rec.messages()
    assert any(m.startswith("proxy bench-proxy: 2 epochs") for m in said) and "proxy bench-proxy: reused" in said
    assert build_proxy({"proxy": None}, "sub", "cpu", rec) is None


def test_an_estimator_fine_tuned_through_the_frozen_proxy_is_an_ordinary_model(shome, cli):
    import torch

    from asm.models.estimator import load_estimator
    from asm.models.training import train_model
    from asm.proxy.finetune import finetune_model
    from asm.proxy.train import load_proxy
    from asm.registry.db import session_scope
    from asm.registry.models import Model

    train_model("mlp", "sub", epochs=2, batch_size=32, device="cpu", name="est")
    with session_scope() as session:
        proxy_before = {k: v.clone() for k, v in load_proxy(session, "screen")[0].state_dict().items()}
    out = finetune_model("est", "screen", epochs=3, weight=1.0, lr=1e-3, device="cpu")
    assert out["name"] == "est-ft-screen" and out["epochs"] == 3
    assert np.isfinite(out["val_after"]["embedding"]) and np.isfinite(out["val_before"]["embedding"])
    assert out["val_after"]["embedding"] < out["val_before"]["embedding"]  # the sound moved towards the target
    with session_scope() as session:
        row = session.get(Model, out["model_id"])
        assert row.status == "complete" and row.train_settings["finetune"] == {"from": "est", "proxy": "screen",
                                                                                "weight": 1.0}
        assert [e.epoch for e in row.epochs] == [1, 2, 3] and "embedding" in row.epochs[0].parts
        est = load_estimator(session, "est-ft-screen")  # an ordinary model checkpoint
        proxy_after = load_proxy(session, "screen")[0].state_dict()
    assert all(torch.equal(proxy_before[k], proxy_after[k]) for k in proxy_before)  # the proxy stayed frozen
    v = est.candidates([np.zeros(8000, np.float32)], k=1, seed=0)
    assert v.shape[-1] == len(row.free_parameters) and np.all((v >= 0) & (v <= 1))
    r = cli("finetune-model", "est", "--proxy", "nosuch")
    assert r.code == 2 and "no proxy 'nosuch'" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli("finetune-model", "est", "--proxy", "screen")
    assert r.code == 2 and "exists" in r.err


def test_the_hybrid_rule_a_given_proxy_screens_hybrid_on_a_synth_without_a_twin_only():
    from types import SimpleNamespace

    from asm.match.pipeline import uses_proxy
    from tests.test_search import asm_sub_spec

    plugin, sub, proxy = SimpleNamespace(kind="vst2", name="amsynth"), asm_sub_spec(), object()
    assert uses_proxy("proxy", sub, proxy) and uses_proxy("proxy", plugin, proxy)
    assert uses_proxy("hybrid", plugin, proxy) and not uses_proxy("hybrid", plugin, None)
    assert not uses_proxy("hybrid", sub, proxy)  # asm-sub's twin refines instead
    assert not any(uses_proxy(m, plugin, proxy) for m in ("nsga2", "cmaes", "gradient", "model", "nn"))


@pytest.mark.parametrize("screened", [False, True])
def test_nsga2_is_told_only_scores_of_what_was_rendered(shome, spool, monkeypatch, screened):
    """Every (X, F) NSGA-II is told is a rendered candidate with its own scores: the first population
    (already rendered) is not touched by exploit or screening, which once paired mutants with their
    parents' scores."""
    from pymoo.algorithms.moo.nsga2 import NSGA2

    from asm.search.engine import run_search
    from asm.search.problem import Archive, CandidateScorer, MatchProblem

    spec, pool = spool
    target = _target(spec, pool, seed=3)
    told = []
    real = NSGA2.tell

    def tell(self, infills=None, **kw):
        told.append((infills.get("X").copy(), infills.get("F").copy()))
        return real(self, infills=infills, **kw)

    monkeypatch.setattr(NSGA2, "tell", tell)
    settings = SearchSettings(population=10, budget=40, exploit=0.4, screen_factor=4)
    scorer = CandidateScorer(target, SR, settings.objective_names)
    archive = Archive(spec.space.n_free, len(scorer.objectives))
    problem = MatchProblem(pool, spec.space, NOTES, DURATION, scorer, archive, budget=40,
                           screen=_screen().for_target(target, SR, NOTES) if screened else None)
    run_search(problem, settings, None, seed=0)
    values, scores = archive.all_values(), archive.all_scores()
    assert len(told) >= 3 and archive.renders == 40
    for X, F in told:
        for x, f in zip(X, F):
            rows = np.flatnonzero(np.all(np.abs(values - x) < 1e-12, axis=1))
            assert any(np.allclose(scores[r], f) for r in rows)


def test_asm_match_method_proxy_from_the_command_line(shome, cli, tmp_path):
    from asm.audio.io import write_audio
    from asm.registry.db import session_scope
    from asm.registry.models import Result

    tone = write_audio(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 165 * np.arange(8000) / SR))
                       .astype(np.float32), SR)
    r = cli("match", tone, "--method", "proxy", "--budget", "30", "--note", "52", "-j", "2", "--out-dir",
            tmp_path / "m", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    from sqlalchemy import func, select

    from asm.registry.models import Proxy

    with session_scope() as session:
        newest = session.scalar(select(Proxy.name).where(Proxy.id == select(func.max(Proxy.id)).scalar_subquery()))
    assert doc["method"] == "proxy" and doc["proxy"] == newest and doc["renders"] == 30  # the newest proxy
    assert doc["screened"] > doc["renders"]
    with session_scope() as session:
        assert session.get(Result, doc["result_id"]).renders == 30
    r = cli("match", tone, "--method", "hybrid", "--proxy", "screen", "--note", "52")
    assert r.code == 2 and "twin" in r.err and len(r.err.strip().splitlines()) == 1  # asm-sub's twin refines


@pytest.mark.slow
def test_a_tiny_amsynth_benchmark_trains_a_proxy_and_adds_the_proxy_row(asm_home):
    """amsynth (no twin): the benchmark trains its proxy on the benchmark dataset and every target gets a
    ``proxy`` row within the same render budget as the other searches; a rerun reuses the proxy."""
    from plugin_paths import AMSYNTH

    from asm.bench.config import BenchmarkRequest, ModeSettings, ScalePreset
    from asm.bench.runner import run_benchmark
    from asm.progress import RecordingReporter
    from asm.runs import load_run

    if not AMSYNTH.is_file():
        pytest.skip("amsynth is not installed")
    tiny = ScalePreset(name="tiny", description="tests", dataset_size=100, test_targets=2, factory_targets=1,
                       ood_targets=0, models=("mlp",), epochs=2, patience=2, batch_size=16, search_budget=30,
                       search_time_limit=None, mono=ModeSettings(duration=0.5, note_off=0.3, note_range=(48, 72)),
                       poly=ModeSettings(duration=0.5, note_off=0.3, note_range=(48, 72), max_polyphony=3))
    req = BenchmarkRequest(synth="amsynth", ood=False)
    rec = RecordingReporter()
    first = run_benchmark(req, preset=tiny, workers=2, device="cpu", reporter=rec, report=False)
    assert first["plan"]["methods"][-1] == "proxy" and "gradient" not in first["plan"]["methods"]
    name = first["plan"]["proxy"]["name"]
    assert any(m.startswith(f"proxy {name}: 2 epochs") for m in rec.messages())
    run, records = load_run(first["run_id"])
    rows = [r for r in records if r["method"] == "proxy"]
    targets = {r["target"] for r in records}
    assert len(rows) == len(targets) >= 2 and all(0 < r["renders"] <= 30 + 64 for r in rows)
    assert run["settings"]["proxy"] == name
    rec = RecordingReporter()
    run_benchmark(req, preset=tiny, workers=2, device="cpu", reporter=rec, report=False)
    assert f"proxy {name}: reused" in rec.messages()
