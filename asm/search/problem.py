"""The search problem: render candidate presets with the target's notes, score them against the target.

``MatchProblem`` is a pymoo ``Problem`` over the free parameters (normalised, see
``asm.search.operators``). A population is rendered as one batch by the ``RenderPool``; each worker
scores its renders against the target in place (``CandidateScorer``), so only a few numbers per
candidate cross processes. Every rendered candidate is recorded in the ``Archive`` with its
objectives and its headline metric (``perceptual``, computed whatever the
objectives are), so the best preset of a search is the best of *everything* it rendered (a seeded
search is never worse than its seeds), and best-so-far can be plotted against renders and seconds.

A problem may carry a ``screen`` (free vectors -> predicted distance, lower is closer; a neural
proxy's, ``asm.proxy.screen``): the search then proposes more candidates than it renders and
renders only those the screen ranks best (``asm.search.engine``). The screen never scores anything
that is reported: the archive holds real renders only, and the budget counts real renders only.

The render budget is exact: when a batch would exceed it, only the candidates within the budget
are rendered; the rest get the worst scores (they never count as found, and the search stops).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pymoo.core.problem import Problem

from asm.audio.metrics import Scorer, worst_scores
from asm.search.config import HEADLINE


class CandidateScorer:
    """``reduce`` for ``RenderPool.render``: audio -> its scores (objectives then the headline metric).

    Picklable; the target's analysis is cached in each worker on first use."""

    def __init__(self, target: np.ndarray, sample_rate: int, objectives: Sequence[str]):
        self.objectives = tuple(objectives)
        self.names = self.objectives + (() if HEADLINE in self.objectives else (HEADLINE,))
        self.scorer = Scorer(np.asarray(target, dtype=np.float32), sample_rate, self.names)
        self.worst = worst_scores(self.names)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return self.reduce_batch([audio])[0]

    def reduce_batch(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """Scores of a worker's chunk of renders, analysed as one batch (cheaper per candidate)."""
        values = self.scorer.distances(np.stack(audios))
        table = np.stack([values[n] for n in self.names], axis=1)
        return list(table)

    def headline_column(self) -> int:
        return self.names.index(HEADLINE)


@dataclass
class Archive:
    """Everything a search rendered, in render order, with the best-so-far curve."""

    n_free: int
    n_objectives: int
    start: float = field(default_factory=time.perf_counter)
    values: list[np.ndarray] = field(default_factory=list)  # batches (b, n_free)
    scores: list[np.ndarray] = field(default_factory=list)  # batches (b, n_objectives)
    headline: list[np.ndarray] = field(default_factory=list)  # batches (b,)
    sources: list[str] = field(default_factory=list)  # per candidate: where it came from
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (renders, seconds, best) on improvement
    batches: int = 0
    best: float = float("inf")
    best_index: int = -1
    renders: int = 0

    def add(self, values: np.ndarray, scores: np.ndarray, headline: np.ndarray, source: str | Sequence[str]) -> None:
        n = len(values)
        if n == 0:
            return
        now = time.perf_counter() - self.start
        self.values.append(np.asarray(values, dtype=np.float64))
        self.scores.append(np.asarray(scores, dtype=np.float64))
        self.headline.append(np.asarray(headline, dtype=np.float64))
        self.sources.extend([source] * n if isinstance(source, str) else list(source))
        for i, h in enumerate(headline):
            if h < self.best:
                self.best, self.best_index = float(h), self.renders + i
                self.curve.append((self.renders + i + 1, now, self.best))
        self.renders += n
        self.batches += 1

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def all_values(self) -> np.ndarray:
        return np.concatenate(self.values) if self.values else np.empty((0, self.n_free))

    def all_scores(self) -> np.ndarray:
        return np.concatenate(self.scores) if self.scores else np.empty((0, self.n_objectives))

    def all_headline(self) -> np.ndarray:
        return np.concatenate(self.headline) if self.headline else np.empty(0)

    def best_values(self) -> np.ndarray:
        return self.all_values()[self.best_index]

    def front(self, k: int) -> list[int]:
        """Indices of up to ``k`` distinct candidates of the non-dominated front of everything rendered
        (objectives), best headline first."""
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

        scores, head, values = self.all_scores(), self.all_headline(), self.all_values()
        if len(scores) == 0:
            return []
        first = NonDominatedSorting().do(scores, only_non_dominated_front=True)
        order = sorted(first, key=lambda i: (head[i], i))
        chosen: list[int] = []
        seen: set[bytes] = set()
        for i in order:
            key = np.round(values[i], 6).tobytes()
            if key not in seen:
                seen.add(key)
                chosen.append(int(i))
            if len(chosen) == k:
                break
        return chosen


class MatchProblem(Problem):
    """Minimise the objectives of candidate presets (free values in [0, 1]) against one target."""

    def __init__(self, pool, space, notes, duration: float, scorer: CandidateScorer, archive: Archive,
                 budget: int | None = None, on_batch: Callable[[Archive], None] | None = None,
                 screen: Callable[[np.ndarray], np.ndarray] | None = None):
        super().__init__(n_var=space.n_free, n_obj=len(scorer.objectives), xl=0.0, xu=1.0)
        self.pool, self.space, self.notes, self.duration = pool, space, list(notes), float(duration)
        self.scorer, self.archive, self.budget = scorer, archive, budget
        self.on_batch = on_batch
        self.screen = screen  # free vectors -> predicted distance (a proxy): chooses what to render
        self.screened = 0  # candidates the screen scored
        self.source = "search"  # label of the candidates rendered next
        self.exhausted = False

    def remaining(self) -> int | None:
        return None if self.budget is None else max(0, self.budget - self.archive.renders)

    def shortlist(self, free: np.ndarray, n: int) -> np.ndarray:
        """Indices (into ``free``) of the ``n`` rows the screen ranks best, in the order of ``free``
        (all of them, in order, without a screen or when ``n`` covers every row). Renders nothing."""
        free = np.atleast_2d(np.asarray(free, dtype=np.float64))
        if self.screen is None or n >= len(free):
            return np.arange(min(n, len(free)))
        predicted = np.asarray(self.screen(free), dtype=np.float64)
        self.screened += len(free)
        predicted = np.where(np.isfinite(predicted), predicted, np.inf)
        return np.sort(np.argsort(predicted, kind="stable")[: max(0, int(n))])

    def score(self, free: np.ndarray, source: str | Sequence[str] | None = None) -> np.ndarray:
        """Render and score rows of free values (within the budget); returns (n, n_objectives + headline)
        with the worst scores for rows past the budget (marked by ``exhausted``)."""
        free = np.atleast_2d(np.asarray(free, dtype=np.float64))
        n = len(free)
        out = np.tile(self.scorer.worst, (n, 1))
        left = self.remaining()
        m = n if left is None else min(n, left)
        if m < n:
            self.exhausted = True
        if m > 0:
            results = self.pool.render(free[:m], self.notes, self.duration, reduce=self.scorer, free=True)
            for i, r in enumerate(results):
                if r is not None:  # a candidate that crashed its worker keeps the worst scores
                    out[i] = r
            k = len(self.scorer.objectives)
            src = self.source if source is None else source
            if not isinstance(src, str):
                src = list(src)[:m]
            self.archive.add(free[:m], out[:m, :k], out[:m, self.scorer.headline_column()], src)
            if self.on_batch is not None:
                self.on_batch(self.archive)
        return out

    def _evaluate(self, X, out, *args, **kwargs):
        out["F"] = self.score(X)[:, : self.n_obj]


@dataclass
class Finalist:
    """The named best of a search: its free values, the audio of its first re-render, and its scores
    (``names``) as the mean over ``renders`` re-renders, with their spread (max - min of the headline)."""

    index: int  # in the archive
    values: np.ndarray
    audio: np.ndarray
    metrics: dict[str, float]
    renders: int
    spread: float


def confirm_best(pool, archive: Archive, notes, duration: float, target: np.ndarray, sample_rate: int,
                 names: Sequence[str], renders: int = 1, top: int = 4) -> Finalist:
    """Re-render the best candidates and name the best by the mean headline over re-renders.

    A nondeterministic synth (amsynth: random oscillator phase) scores each render differently, so
    the best single score of a search is partly luck, and a search favours lucky renders. With
    ``renders`` > 1 the ``top`` best distinct candidates by headline are each rendered ``renders``
    times (these renders are not in the budget or the curve); the one with the lowest mean headline
    wins, and every reported metric is its mean over its re-renders. With ``renders`` = 1 the best
    candidate is rendered once (a deterministic synth plays what it scored).
    """
    from asm.audio.metrics import distances

    names = tuple(dict.fromkeys((HEADLINE, *names)))
    head = archive.all_headline()
    values = archive.all_values()
    if renders <= 1:
        order = [archive.best_index]
    else:
        order, seen = [], set()
        for i in np.argsort(head, kind="stable"):
            key = np.round(values[i], 6).tobytes()
            if key not in seen:
                seen.add(key)
                order.append(int(i))
            if len(order) == top:
                break
    r = max(1, int(renders))
    rows = np.repeat(values[order], r, axis=0)
    audio = pool.render(rows, notes, duration, free=True)
    best: Finalist | None = None
    for j, i in enumerate(order):
        clips = [a for a in audio[j * r:(j + 1) * r] if a is not None]
        if not clips:
            continue
        scores = distances(np.stack(clips), target, sample_rate, names)
        mean = {k: float(np.mean(v)) for k, v in scores.items()}
        if best is None or mean[HEADLINE] < best.metrics[HEADLINE]:
            best = Finalist(i, values[i], clips[0], mean, len(clips), float(np.ptp(scores[HEADLINE])))
    if best is None:
        from asm.errors import AsmError

        raise AsmError("the synth crashed re-rendering the best preset")
    return best
