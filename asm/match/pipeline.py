"""One method on one target: ``match_target`` -> ``MatchResult``.

Methods (``METHODS``):

* ``model``: the estimator's answer alone (its point estimate; ``estimate_candidates`` renders).
* ``nn``: the nearest training example(s) of a dataset alone (or of an ``nn`` model).
* ``nsga2``: NSGA-II from random presets with the recipe's objectives and budget.
* ``hybrid``: NSGA-II seeded with everything available: estimator candidates (K samples from a
  ``flow``), K dataset neighbours, factory presets, the synth's default preset; mutants of the best
  seeds and random fill. Given a ``proxy`` (``asm match --proxy``) on a synth without a
  differentiable twin, its NSGA-II is proxy-screened as in ``proxy``; with a twin, the twin's gradient
  refinement is used instead and the proxy is not. (Not by default: on amsynth, 32 targets at 600
  renders, screening did not improve hybrid; see the README.)
* ``proxy``: ``nsga2`` screened by a neural proxy (``asm.proxy.screen``): each generation and the
  random start propose ``screen_factor`` times more candidates than they render, and only those the
  proxy ranks nearest the target are rendered. Needs a trained proxy.

Every method renders through the same ``RenderPool`` and scores with the same metric code; the
best preset is the best by the headline metric (``perceptual``) among everything rendered; a
nondeterministic synth re-renders its finalists several times and the best mean wins
(``asm.search.problem.confirm_best``). It is then rendered once more for its audio and full metrics
(so the reported match is exactly what the exported preset plays; see ``asm.match.final``: for
plugins it is a fresh instance's render, and never silent when the search found an audible one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from asm.errors import AsmError
from asm.match.final import FreshSynths, final_render
from asm.midi.notes import Note
from asm.search.seeding import SeedSet, as_estimators, estimator_groups, estimator_seeds

if TYPE_CHECKING:  # torch and pymoo load when a match runs, not when the CLI starts
    from asm.search.config import SearchSettings
    from asm.search.problem import Archive
    from asm.search.seeding import SeedSet

METHODS = ("model", "nn", "nsga2", "hybrid", "gradient", "cmaes", "proxy")
STALL_TIMEOUT = 30.0  # seconds without progress on one candidate before its worker is replaced


@dataclass
class MatchResult:
    method: str
    values: np.ndarray  # best preset: free values, normalised, in free order
    full: np.ndarray  # best preset: every parameter (locks applied)
    audio: np.ndarray  # its render with the target's notes
    metrics: dict[str, float]  # REPORT_METRICS and the objectives, of that render
    objectives: tuple[str, ...]
    renders: int
    seconds: float
    generations: int
    stopped: str
    curve: list[tuple[int, float, float]]  # (renders, seconds, best headline so far), at each improvement
    front: list[dict]  # top-K of the Pareto front: values, full, scores, headline (perceptual), source
    initial: dict[str, int]  # origin -> candidates in the first population (seeded searches)
    best_source: str
    notes: list[Note]
    sample_rate: int
    events: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # search, final_render (seconds)
    screened: int = 0  # candidates a proxy scored to choose what to render (never rendered unless chosen)

    def renders_to_reach(self, score: float) -> int | None:
        """Renders after which the best-so-far was at most ``score`` (None: never)."""
        for renders, _, best in self.curve:
            if best <= score:
                return renders
        return None

    def summary(self) -> dict:
        """JSON-ready summary (match.json, result rows, benchmark tables)."""
        from asm.search.config import HEADLINE

        return {
            "method": self.method,
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "objectives": list(self.objectives),
            "renders": int(self.renders),
            "seconds": round(float(self.seconds), 4),
            "generations": int(self.generations),
            "stopped": self.stopped,
            "best_source": self.best_source,
            "initial_population": dict(self.initial),
            "screened": int(self.screened),
            "values": [float(v) for v in self.values],
            "curve": [[int(r), round(float(s), 4), float(b)] for r, s, b in self.curve],
            "front": [{"values": [float(v) for v in f["values"]], "scores": f["scores"], HEADLINE: f[HEADLINE],
                       "source": f["source"]} for f in self.front],
        }


def _estimator_space_check(estimator, spec) -> None:
    check = getattr(estimator, "check_space", None)
    if check is not None:
        check(spec.space, spec.name)


def match_target(
    target: np.ndarray,
    notes: Sequence[Note],
    spec,
    method: str,
    settings: SearchSettings,
    *,
    pool=None,
    estimator=None,
    neighbours=None,
    factory: np.ndarray | None = None,
    seed: int = 0,
    workers: int | str = "auto",
    on_batch: Callable[[Archive], None] | None = None,
    proxy=None,
) -> MatchResult:
    """Match ``target`` (mono float32 at ``spec.sample_rate``) with ``method``; candidates play ``notes``.

    ``pool``: a ``RenderPool`` for ``spec`` shared across targets (one is started and closed here if
    None). ``estimator``: an ``asm.models.estimator.Estimator`` (``model``, ``hybrid``); the seeded methods
    (``hybrid``, ``gradient``, ``cmaes``) also take a sequence of them, each a source of seeds.
    ``neighbours``: an ``asm.search.seeding.DatasetNeighbours`` (``nn``, ``hybrid``). ``factory``:
    free vectors of factory presets (``hybrid`` draws ``settings.seeds.factory`` of them).
    ``proxy``: an ``asm.proxy.screen.ProxyScreen`` (``proxy``; ``hybrid`` on a synth without a twin,
    see ``uses_proxy``). The budget, time limit and other terminations come from ``settings``.
    """
    from asm.search.problem import Archive, CandidateScorer, MatchProblem

    notes = _check_inputs(method, notes, spec, estimator, neighbours, proxy)
    target = np.ascontiguousarray(target, dtype=np.float32)
    sr = int(spec.sample_rate)
    space = spec.space

    own_pool = pool is None
    if own_pool:
        from asm.render import RenderPool

        pool = RenderPool(spec, workers, stall_timeout=STALL_TIMEOUT)
    events_before = len(pool.events)
    start = time.perf_counter()  # after the pool is up: a shared pool's start is not this target's cost
    fresh = FreshSynths(spec, prefetch=spec.kind != "faust")  # a plugin instance opens during the search
    try:
        duration = len(target) / sr
        scorer = CandidateScorer(target, sr, settings.objective_names)
        archive = Archive(space.n_free, len(scorer.objectives), start=start)
        screen = proxy.for_target(target, sr, notes) if uses_proxy(method, spec, proxy) else None
        problem = MatchProblem(pool, space, notes, duration, scorer, archive, budget=settings.budget,
                               on_batch=on_batch, screen=screen)
        generations, stopped, initial = _run_method(problem, method, target, spec, settings, estimator,
                                                    neighbours, factory, seed)
        if archive.renders == 0:
            raise AsmError("the search rendered nothing (budget 0?)")
        searched = time.perf_counter()
        best, audio, notices, metrics = _final_best(pool, fresh, archive, scorer, notes, duration, target, sr,
                                                    settings, spec.kind)
        best_free = archive.all_values()[best]
        best_full = space.full(best_free)
        finished = time.perf_counter()
        seconds = finished - start
        front = _front(archive, space, scorer.objectives, settings.top_k)
        return MatchResult(
            method=method, values=best_free, full=best_full, audio=audio, metrics=metrics,
            objectives=scorer.objectives, renders=archive.renders, seconds=seconds, generations=generations,
            stopped=stopped, curve=list(archive.curve), front=front, initial=initial,
            best_source=archive.sources[best], notes=notes, sample_rate=sr,
            events=list(pool.events[events_before:]) + notices,
            timings={"search": round(searched - start, 4), "final_render": round(finished - searched, 4)},
            screened=problem.screened,
        )
    finally:
        fresh.close()
        if own_pool:
            pool.close()


def _run_method(problem, method: str, target: np.ndarray, spec, settings: SearchSettings, estimator, neighbours,
                factory, seed: int) -> tuple[int, str, dict]:
    """Run ``method`` on ``problem``: (generations, why it stopped, candidates per origin at the start)."""
    sr = int(spec.sample_rate)
    if method in ("model", "nn"):
        return 0, "done", _score_estimates(problem, method, target, sr, settings, estimator, neighbours, seed)
    from asm.search.cmaes import run_cmaes
    from asm.search.engine import run_search
    from asm.search.refine import gradient_starts, run_gradient, run_refined

    seeds = None
    if method in ("hybrid", "cmaes"):
        seeds = hybrid_seeds(target, sr, spec.space, settings, estimator, neighbours, factory, seed)
    if method == "gradient":
        starts = gradient_starts(spec.space, estimator, target, sr, settings.refine.starts, seed)
        outcome = run_gradient(problem, spec, target, settings, starts)
    elif method == "cmaes":
        outcome = run_cmaes(problem, settings, seeds, seed)
    elif method == "hybrid":
        outcome = run_refined(problem, spec, target, settings, seeds, seed)
    else:
        outcome = run_search(problem, settings, seeds, seed)
    return outcome.generations, outcome.stopped, outcome.initial


def uses_proxy(method: str, spec, proxy=None) -> bool:
    """Whether ``method`` screens its search with a proxy on ``spec``'s synth: ``proxy`` always, ``hybrid``
    when a proxy is given and the synth has no differentiable twin (a twin refines instead)."""
    if method == "proxy":
        return True
    if method != "hybrid" or proxy is None:
        return False
    from asm.search.refine import twin_for

    return twin_for(spec) is None


def _check_inputs(method: str, notes: Sequence[Note], spec, estimator, neighbours, proxy=None) -> list[Note]:
    """Refuse a method without what it needs, or an estimator for another parameter space."""
    if method not in METHODS:
        raise AsmError(f"unknown method {method!r}: choose from {', '.join(METHODS)}")
    notes = list(notes)
    if not notes:
        raise AsmError("no notes to play: give --note or --midi")
    for one in as_estimators(estimator):
        _estimator_space_check(one, spec)
    if neighbours is not None:
        neighbours.check_space(spec.space, spec.name)
    if method == "model" and estimator is None:
        raise AsmError("method model needs a trained model (--model)")
    if method == "proxy" and proxy is None:
        raise AsmError(f"method proxy needs a trained proxy of {spec.name} (train one with asm train-proxy)")
    if method == "nn" and neighbours is None and getattr(estimator, "arch", None) != "nn":
        raise AsmError("method nn needs a dataset (--dataset) or an nn model (--model)")
    return notes


def _score_estimates(problem, method: str, target: np.ndarray, sr: int, settings: SearchSettings, estimator,
                     neighbours, seed: int) -> dict[str, int]:
    """``model`` and ``nn``: render and score the estimator's (or nearest neighbours') candidates."""
    k = settings.estimate_candidates
    if method == "nn" and neighbours is not None:
        cands, label = neighbours.candidates(target, sr, k), f"nn:{neighbours.name}"
    else:
        cands, label = estimator_seeds(estimator, target, sr, k, seed), f"model:{estimator.name}"
    problem.score(problem.space.quantise_free(cands[:k]), label)
    return {label: len(cands[:k])}


def _final_best(pool, fresh, archive, scorer, notes, duration: float, target: np.ndarray, sr: int,
                settings: SearchSettings, kind: str):
    """The best candidate, rendered fresh, with its report metrics: (index, audio, notices, metrics).
    A nondeterministic synth's best is named by the mean over re-renders of the top candidates."""
    from asm.audio.metrics import REPORT_METRICS, distances
    from asm.search.problem import confirm_best

    names = tuple(dict.fromkeys(REPORT_METRICS + scorer.objectives))
    rerenders = settings.rerenders_for(kind)
    chosen = None
    if rerenders > 1:  # the mean over re-renders names the best of a nondeterministic synth
        chosen = confirm_best(pool, archive, notes, duration, target, sr, names, rerenders, settings.rerender_top)
    best, audio, notices = final_render(pool, fresh, archive, scorer.worst[scorer.headline_column()], notes,
                                        duration, prefer=None if chosen is None else chosen.index)
    if chosen is not None and chosen.index == best:
        metrics = dict(chosen.metrics)  # the mean over its re-renders
    else:
        metrics = {k: float(v[0]) for k, v in distances(audio, target, sr, names).items()}
    return best, audio, notices, metrics


def _front(archive, space, objectives: Sequence[str], top_k: int) -> list[dict]:
    """The archive's Pareto front (at most ``top_k``), each with its values, scores and source."""
    from asm.search.config import HEADLINE

    values, scores, head = archive.all_values(), archive.all_scores(), archive.all_headline()
    return [{"values": values[i], "full": space.full(values[i]),
             "scores": {n: float(s) for n, s in zip(objectives, scores[i])},
             HEADLINE: float(head[i]), "source": archive.sources[i]} for i in archive.front(top_k)]


def hybrid_seeds(target: np.ndarray, sr: int, space, settings: SearchSettings, estimator, neighbours,
                 factory: np.ndarray | None, seed: int) -> SeedSet:
    """The seeds of a hybrid search, interleaved by rank: every source's best guess first (estimator,
    neighbour, factory, default), then every source's second, and so on, so the most trusted
    candidates are rendered first whatever the number asked of each source."""
    s = settings.seeds
    groups: list[tuple[np.ndarray, str]] = []
    if s.estimator:
        groups.extend(estimator_groups(estimator, target, sr, s.estimator, seed))
    if neighbours is not None and s.neighbours:
        groups.append((neighbours.candidates(target, sr, s.neighbours), f"nn:{neighbours.name}"))
    if factory is not None and len(factory) and s.factory:
        rng = np.random.default_rng([int(seed), 0xFAC])
        pick = rng.choice(len(factory), size=min(s.factory, len(factory)), replace=False)
        groups.append((np.asarray(factory)[np.sort(pick)], "factory"))
    if s.default:
        groups.append((space.free_part(space.defaults())[None], "default"))
    return SeedSet.interleaved(space.n_free, groups)
