"""Run one search: seeds (if any) are rendered first, then NSGA-II takes over.

The initial population of a seeded search is: the seeds (estimator candidates, dataset neighbours,
factory presets), mutants of the best of them (``SeedSettings.local``), and random presets up to the
population size; everything is rendered once with its origin recorded. From there pymoo's NSGA-II
runs with kind-aware operators until the termination fires. An unseeded search starts from random
presets only (AutoSoundMatch's way).

**Screening** (a problem with a ``screen``, e.g. a neural proxy): every generation proposes
``screen_factor`` times the candidates it renders. NSGA-II's offspring plus more from its own mating
(selection, crossover, mutation, repair, duplicates removed) compete for the search share of the
generation, ``screen_factor`` times as many mutants of the best so far for the exploit share, and
``screen_factor`` times as many random presets (and mutants of the best seeds) for the random part of
the first population; the screen keeps the best of each and only those are rendered. The budget,
the archive, the curve and the result hold real renders only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population

from asm.search.config import SearchSettings
from asm.search.operators import KindCrossover, KindMutation, KindRepair, Kinds, local_mutants
from asm.search.problem import MatchProblem
from asm.search.seeding import SeedSet
from asm.search.termination import make_termination


@dataclass
class SearchOutcome:
    generations: int
    stopped: str
    initial: dict[str, int]  # origin -> candidates in the first population


def _evaluated(problem: MatchProblem, values: np.ndarray, sources: list[str]) -> Population:
    pop = Population.new(X=values)
    if len(values):
        problem.source = sources
        try:
            Evaluator().eval(problem, pop)
        finally:
            problem.source = "search"
    return pop


def run_search(problem: MatchProblem, settings: SearchSettings, seeds: SeedSet | None, seed: int) -> SearchOutcome:
    from pymoo.algorithms.moo.nsga2 import NSGA2

    space = problem.space
    kinds = Kinds(space)
    rng = np.random.default_rng([int(seed), 0x5EED])
    size = settings.population
    seeds = seeds.unique(space) if seeds is not None and len(seeds) else SeedSet.empty(space.n_free)

    parts = [_evaluated(problem, seeds.values, list(seeds.sources))] if len(seeds) else []
    n_local = 0
    if len(seeds) and settings.seeds.local > 0 and not problem.exhausted:
        n_local = min(round(settings.seeds.local * size), max(0, size - len(seeds)))
        mutants = _mutants_of_best(seeds.values, problem.archive.all_headline()[-len(seeds):],
                                   n_local * _factor(problem, settings), kinds, rng, settings)
        mutants = mutants[problem.shortlist(mutants, n_local)]
        parts.append(_evaluated(problem, mutants, ["local"] * len(mutants)))
    n_random = max(0, size - len(seeds) - n_local)
    if n_random and not problem.exhausted:
        randoms = space.random_free(rng, n_random * _factor(problem, settings))
        parts.append(_evaluated(problem, randoms[problem.shortlist(randoms, n_random)], ["random"] * n_random))
    initial = {**seeds.counts(), **({"local": n_local} if n_local else {}), **({"random": n_random} if n_random else {})}
    if problem.exhausted or (settings.budget is not None and problem.archive.renders >= settings.budget):
        return SearchOutcome(0, "budget", initial)

    algorithm = NSGA2(
        pop_size=size,
        sampling=Population.merge(*parts) if len(parts) > 1 else parts[0],
        crossover=KindCrossover(kinds, prob=settings.crossover_prob, eta=settings.crossover_eta),
        mutation=KindMutation(kinds, eta=settings.mutation_eta, prob_var=settings.mutation_prob_var,
                              bound_prob=settings.mutation_bound_prob),
        repair=KindRepair(kinds),
        eliminate_duplicates=True,
    )
    termination = make_termination(settings, problem)
    algorithm.setup(problem, termination=termination, seed=int(rng.integers(2**31)), verbose=False)
    while algorithm.has_next():
        # The first ask() hands back the first population, already rendered: the evaluator skips it, so
        # replacing its X (exploit, screening) would pair mutants with their parents' scores.
        offspring = algorithm.is_initialized
        infills = algorithm.ask()
        if infills is None or len(infills) == 0:
            termination.force_termination = True
            break
        n_exploit = round(settings.exploit * len(infills))
        if offspring and _factor(problem, settings) > 1:
            infills = _screened(problem, algorithm, infills, n_exploit, kinds, rng, settings)
        elif offspring and n_exploit:
            _exploit(problem, infills, n_exploit, kinds, rng, settings)
        try:
            algorithm.evaluator.eval(problem, infills)
        finally:
            problem.source = "search"
        algorithm.tell(infills=infills)
    return SearchOutcome(max(0, algorithm.n_gen - 2), termination.reason(), initial)  # n_gen: next iteration


def _factor(problem: MatchProblem, settings: SearchSettings) -> int:
    """Candidates proposed per candidate rendered: ``screen_factor`` with a screen, else 1."""
    return int(settings.screen_factor) if problem.screen is not None else 1


def _screened(problem: MatchProblem, algorithm, infills: Population, n_exploit: int, kinds: Kinds,
              rng: np.random.Generator, settings: SearchSettings) -> Population:
    """The generation to render, chosen by the screen: ``len(infills)`` candidates, the exploit share
    (mutants of the best so far) first, then the search share (NSGA-II's offspring and more of its mating)."""
    factor = int(settings.screen_factor)
    n = len(infills)
    n_search = n - n_exploit
    X = infills.get("X")
    if n_search:
        want = factor * n_search - n
        if want > 0:
            extra = algorithm.mating.do(problem, algorithm.pop, want, algorithm=algorithm,
                                        random_state=algorithm.random_state)
            if len(extra):
                extra = algorithm.mating.eliminate_duplicates.do(extra, infills)
            if len(extra):
                X = np.concatenate([X, extra.get("X")])
        X = X[problem.shortlist(X, n_search)]
    else:
        X = X[:0]
    sources = ["search"] * len(X)
    if n_exploit:
        mutants = _mutants_of_best(problem.archive.all_values(), problem.archive.all_headline(), factor * n_exploit,
                                   kinds, rng, settings)
        X = np.concatenate([mutants[problem.shortlist(mutants, n_exploit)], X])
        sources = ["local"] * n_exploit + sources
    problem.source = sources
    out = Population.new(X=X)
    out.set("n_gen", algorithm.n_iter)
    out.set("n_iter", algorithm.n_iter)
    return out


def _exploit(problem: MatchProblem, infills: Population, n: int, kinds: Kinds, rng: np.random.Generator,
             settings: SearchSettings) -> None:
    """Replace the first ``n`` offspring by mutants of the best presets rendered so far (by the headline metric).

    NSGA-II keeps a spread front over all objectives, which is slow to refine the one sound that is
    already close; these mutants spend a share of each generation right around it (a memetic step)."""
    X = infills.get("X").copy()
    X[:n] = _mutants_of_best(problem.archive.all_values(), problem.archive.all_headline(), n, kinds, rng, settings)
    infills.set("X", X)
    problem.source = ["local"] * n + ["search"] * (len(X) - n)


def _mutants_of_best(values: np.ndarray, head: np.ndarray, n: int, kinds: Kinds, rng: np.random.Generator,
                     settings: SearchSettings) -> np.ndarray:
    """``n`` mutants (``settings.seeds.local_*``) of the ``local_parents`` best of ``values`` by headline score."""
    s = settings.seeds
    best = np.argsort(head, kind="stable")[: s.local_parents]
    return local_mutants(values[best], n, kinds, rng, s.local_sigma, s.local_reset, settings.mutation_bound_prob,
                         s.local_rate)
