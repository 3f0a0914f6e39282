"""CMA-ES on the headline metric: pymoo's ``CMAES`` (the ``cma`` package) over the match problem.

CMA-ES is single-objective, so it minimises the headline metric (``perceptual``) of the same
renders the multi-objective search scores (the archive still records every objective). A seeded
search renders its seeds first and starts from the best of them (x0); an unseeded one starts from a
random preset. Candidates are quantised before they are rendered (discrete values on their grid;
CMA-ES keeps its continuous sample), and the render budget, time limit and patience stop it as
they stop NSGA-II (``asm.search.termination``); cma's own stopping rules may end it sooner.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.population import Population
from pymoo.core.problem import Problem

from asm.search.config import SearchSettings
from asm.search.engine import SearchOutcome
from asm.search.problem import MatchProblem
from asm.search.seeding import SeedSet
from asm.search.termination import make_termination


class HeadlineProblem(Problem):
    """The match problem seen by a single-objective algorithm: quantised candidates, headline score."""

    def __init__(self, match: MatchProblem):
        super().__init__(n_var=match.n_var, n_obj=1, xl=0.0, xu=1.0)
        self.match = match

    def _evaluate(self, X, out, *args, **kwargs):
        scores = self.match.score(self.match.space.quantise_free(X))
        out["F"] = scores[:, self.match.scorer.headline_column()][:, None]


def run_cmaes(problem: MatchProblem, settings: SearchSettings, seeds: SeedSet | None, seed: int) -> SearchOutcome:
    from pymoo.algorithms.soo.nonconvex.cmaes import CMAES

    space = problem.space
    rng = np.random.default_rng([int(seed), 0xC3A])
    initial: dict[str, int] = {}
    if seeds is not None and len(seeds):
        seeds = seeds.unique(space)
        head = problem.score(seeds.values, list(seeds.sources))[:, problem.scorer.headline_column()]
        x0, f0 = seeds.values[int(np.argmin(head))], float(np.min(head))
        initial = seeds.counts()
    else:
        x0 = space.random_free(rng, 1)[0]
        f0 = float(problem.score(x0[None], "random")[0, problem.scorer.headline_column()])
        initial = {"random": 1}
    if problem.exhausted or problem.remaining() == 0:
        return SearchOutcome(0, "budget", initial)
    start = Population.new(X=x0[None], F=np.array([[f0]]))
    for ind in start:  # already rendered: pymoo must not render it again
        ind.evaluated = {"F"}
    c = settings.cmaes
    algorithm = CMAES(x0=start, sigma=c.sigma, pop_size=c.population, restarts=0, normalize=False)
    single = HeadlineProblem(problem)
    termination = make_termination(settings, problem)
    algorithm.setup(single, termination=termination, seed=int(rng.integers(2**31)), verbose=False)
    while algorithm.has_next():
        infills = algorithm.ask()
        if infills is None or len(infills) == 0:
            termination.force_termination = True
            break
        algorithm.evaluator.eval(single, infills)
        algorithm.tell(infills=infills)
    stopped = termination.reason()
    return SearchOutcome(max(0, algorithm.n_gen - 2), "converged" if stopped == "running" else stopped, initial)
