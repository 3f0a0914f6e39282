"""Gradient refinement through asm-sub's twin, CMA-ES, and the gradient / cmaes / hybrid methods.

Small on purpose: 0.5 s notes at 16 kHz, budgets of a few dozen renders, real DawDreamer renders.
"""

from __future__ import annotations

import numpy as np
import pytest

from asm.midi.notes import held
from asm.search.config import RefineSettings, SearchSettings, SeedSettings
from tests.test_search import asm_sub_spec

NOTES = held([57], 100, 0.35)
DURATION = 0.5
SR = 16000


@pytest.fixture(scope="module")
def pool():
    """asm-sub with every parameter free, one pool for the module."""
    import os
    import tempfile

    from asm.render import RenderPool

    with tempfile.TemporaryDirectory() as home, pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASM_DATA", home)
        mp.setenv("ASM_DB", f"sqlite:///{os.path.join(home, 'asm.db')}")
        spec = asm_sub_spec()
    with RenderPool(spec, 2, stall_timeout=30) as p:
        yield spec, p


def _truth_and_start(space, seed: int, sigma: float = 0.1):
    """A random target preset and a start with its continuous values moved by ``sigma``."""
    rng = np.random.default_rng(seed)
    truth = space.random_free(rng, 1)[0]
    cont = [i for i, p in enumerate(space.free) if p.kind.value == "continuous"]
    start = truth.copy()
    start[cont] = np.clip(start[cont] + rng.normal(0, sigma, len(cont)), 0, 1)
    return truth, start


def _problem(spec, pool, target, budget):
    from asm.search.problem import Archive, CandidateScorer, MatchProblem

    scorer = CandidateScorer(target, SR, SearchSettings().objective_names)
    archive = Archive(spec.space.n_free, len(scorer.objectives))
    return MatchProblem(pool, spec.space, NOTES, DURATION, scorer, archive, budget=budget)


def _audible_target(spec, pool, seed):
    from asm.audio.signal import SILENCE_PEAK

    for s in range(seed, seed + 50):
        truth, start = _truth_and_start(spec.space, s)
        target = pool.render(truth[None], NOTES, DURATION, free=True)[0]
        if np.abs(target).max() > 10 * SILENCE_PEAK:
            return truth, start, target
    raise AssertionError("no audible random preset")


def test_perceptual_loss_is_the_metric_and_has_gradients():
    import torch

    from asm.audio.metrics import distances
    from asm.audio.spectral_loss import PerceptualLoss

    t = np.arange(8000) / SR
    target = (0.5 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * t)).astype(np.float32)
    rng = np.random.default_rng(0)
    cands = np.stack([0.3 * np.sign(np.sin(2 * np.pi * 220 * t)),
                      target + 0.01 * rng.standard_normal(len(t))]).astype(np.float32)
    x = torch.tensor(cands, requires_grad=True)
    loss = PerceptualLoss(target, SR)(x)
    loss.sum().backward()
    np.testing.assert_allclose(loss.detach().numpy(), distances(cands, target, SR, ["perceptual"])["perceptual"],
                               rtol=1e-4)
    assert loss[1] < loss[0] and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_refinement_improves_a_perturbed_preset_and_never_returns_worse(pool):
    from asm.search.refine import refine, twin_for

    spec, p = pool
    for seed in (3, 11):
        truth, start, target = _audible_target(spec, p, seed)
        problem = _problem(spec, p, target, budget=30)
        start_score = problem.score(start[None], "start")[0, problem.scorer.headline_column()]
        outcome = refine(problem, twin_for(spec), target, SR, RefineSettings(starts=1, confirm_every=1))
        archive = problem.archive
        assert archive.best <= start_score  # never worse than its start
        assert archive.renders == 1 + outcome.confirmations <= 30  # every confirming render is in the budget
        assert set(archive.sources[1:]) == {"gradient"}
        if seed == 3:  # a perturbed preset gets measurably closer within a few dozen renders
            assert archive.best < 0.8 * start_score, (start_score, archive.best)


def test_every_reported_score_was_rendered(pool):
    """The archive's scores are the real renders' scores: re-rendering its best gives the same number."""
    from asm.audio.metrics import distances
    from asm.search.refine import refine, twin_for

    spec, p = pool
    _, start, target = _audible_target(spec, p, 3)
    problem = _problem(spec, p, target, budget=12)
    problem.score(start[None], "start")
    refine(problem, twin_for(spec), target, SR, RefineSettings(starts=1, confirm_every=1))
    assert problem.archive.renders == 12
    again = p.render(problem.archive.best_values()[None], NOTES, DURATION, free=True)[0]
    assert distances(again, target, SR, ["perceptual"])["perceptual"][0] == pytest.approx(problem.archive.best,
                                                                                      rel=1e-5)


def test_cmaes_respects_the_budget_and_finds_the_neighbourhood(pool):
    from asm.search.cmaes import run_cmaes
    from asm.search.seeding import SeedSet

    spec, p = pool
    truth, start, target = _audible_target(spec, p, 3)
    problem = _problem(spec, p, target, budget=45)
    settings = SearchSettings(budget=45, cmaes={"sigma": 0.05})
    outcome = run_cmaes(problem, settings, SeedSet(start[None], ["near"]), seed=0)
    archive = problem.archive
    assert archive.renders == 45 and outcome.stopped == "budget"
    assert archive.best < archive.all_headline()[0]  # better than its seed
    cont = [i for i, q in enumerate(spec.space.free) if q.kind.value == "continuous"]
    assert np.abs(archive.best_values()[cont] - truth[cont]).mean() < 0.12  # still around the target preset
    # unseeded: from one random preset, same budget, same exactness
    problem = _problem(spec, p, target, budget=20)
    run_cmaes(problem, settings.with_limits(budget=20), None, seed=1)
    assert problem.archive.renders == 20


def test_methods_gradient_cmaes_and_hybrid_with_refinement(pool):
    from asm.match.pipeline import match_target

    spec, p = pool
    _, _, target = _audible_target(spec, p, 3)
    seeds = SeedSettings(estimator=0, neighbours=0, factory=0, default=True, local=0.5)
    settings = SearchSettings(population=8, budget=40, seeds=seeds,
                              refine=RefineSettings(share=0.25, starts=2, confirm_every=1))
    archives = {}
    results = {m: match_target(target, NOTES, spec, m, settings, pool=p, seed=0,
                               on_batch=lambda a, m=m: archives.__setitem__(m, a))
               for m in ("gradient", "cmaes", "hybrid")}
    for m, r in results.items():
        assert r.renders == archives[m].renders <= 40, m
    assert results["gradient"].initial == {"default": 1}
    assert set(archives["gradient"].sources) == {"default", "gradient"}
    assert "gradient" not in archives["cmaes"].sources
    # hybrid: the best seed refined on half of the 10 renders kept back (refine.first), NSGA-II seeded with
    # the refined preset up to render 35, then refinement of the best of everything on the last 5
    hybrid = archives["hybrid"].sources
    assert results["hybrid"].renders == 40 and hybrid[0] == "default"
    assert hybrid[1:6] == ["gradient"] * 5 and hybrid[35:] == ["gradient"] * 5
    # NSGA-II's first population starts with the 2 best refined presets, then the seeds (rendered again)
    assert hybrid[6:9] == ["gradient", "gradient", "default"]
    assert "gradient" not in hybrid[9:35] and {"local", "random", "search"} <= set(hybrid[9:35])


def test_gradient_method_needs_a_twin():
    from asm.errors import AsmError
    from asm.search.refine import run_gradient

    class Plugin:
        kind, name, sample_rate = "vst", "amsynth", SR

    with pytest.raises(AsmError, match="twin"):
        run_gradient(None, Plugin(), np.zeros(10), SearchSettings(), None)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
def test_refinement_on_cuda(pool):
    from asm.search.refine import refine, twin_for

    spec, p = pool
    _, start, target = _audible_target(spec, p, 3)
    problem = _problem(spec, p, target, budget=10)
    s0 = problem.score(start[None], "start")[0, problem.scorer.headline_column()]
    refine(problem, twin_for(spec), target, SR, RefineSettings(starts=1, confirm_every=1), device="cuda")
    assert problem.archive.best <= s0 and problem.archive.renders == 10
