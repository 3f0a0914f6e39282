"""When a search stops: render budget, generations, time limit, patience (whichever comes first).

Each criterion is a pymoo ``Termination`` reading the search's ``Archive`` (renders, seconds, the
best headline score over time), combined with ``TerminateIfAny``; ``reason()`` names the one that
fired, for ``match.json`` and the result row.
"""

from __future__ import annotations

from pymoo.core.termination import TerminateIfAny, Termination

from asm.search.config import SearchSettings
from asm.search.problem import Archive, MatchProblem


class RenderBudget(Termination):
    name = "budget"

    def __init__(self, problem: MatchProblem, budget: int):
        super().__init__()
        self.problem, self.budget = problem, int(budget)

    def _update(self, algorithm) -> float:
        if self.problem.exhausted:
            return 1.0
        return min(1.0, self.problem.archive.renders / self.budget)


class Generations(Termination):
    name = "generations"

    def __init__(self, generations: int):
        super().__init__()
        self.generations = int(generations)

    def _update(self, algorithm) -> float:
        done = max(0, (algorithm.n_gen or 1) - 1)  # n_gen counts the initial population as generation 1
        return min(1.0, done / self.generations)


class TimeLimit(Termination):
    name = "time"

    def __init__(self, archive: Archive, seconds: float):
        super().__init__()
        self.archive, self.seconds = archive, float(seconds)

    def _update(self, algorithm) -> float:
        return min(1.0, self.archive.seconds / self.seconds)


class Patience(Termination):
    """Stop after ``generations`` generations in a row in which the best headline score improved by
    less than ``min_improvement`` (relative)."""

    name = "patience"

    def __init__(self, archive: Archive, generations: int, min_improvement: float):
        super().__init__()
        self.archive, self.generations, self.min_improvement = archive, int(generations), float(min_improvement)
        self.reference = float("inf")
        self.stale = 0
        self.last_gen = None

    def _update(self, algorithm) -> float:
        gen = algorithm.n_gen
        if gen == self.last_gen:
            return min(1.0, self.stale / self.generations)
        self.last_gen = gen
        best = self.archive.best
        if best < self.reference * (1.0 - self.min_improvement) or self.reference == float("inf"):
            self.reference, self.stale = best, 0
        else:
            self.stale += 1
        return min(1.0, self.stale / self.generations)


class SearchTermination(TerminateIfAny):
    def reason(self) -> str:
        fired = [c.name for c in self.criteria if c.perc >= 1.0]
        if self.force_termination and not fired:
            return "converged"  # pymoo could not make new distinct offspring
        return ",".join(fired) or "running"


def make_termination(settings: SearchSettings, problem: MatchProblem) -> SearchTermination:
    criteria: list[Termination] = []
    if settings.budget is not None:
        criteria.append(RenderBudget(problem, settings.budget))
    if settings.generations is not None:
        criteria.append(Generations(settings.generations))
    if settings.time_limit is not None:
        criteria.append(TimeLimit(problem.archive, settings.time_limit))
    if settings.patience is not None:
        criteria.append(Patience(problem.archive, settings.patience, settings.min_improvement))
    return SearchTermination(*criteria)
