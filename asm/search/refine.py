"""Gradient refinement: move presets down the twin's spectral loss, keep only what the real synth confirms.

A synth with a differentiable twin (``asm.synth.diff``) renders in torch with gradients. Starting from
the best few distinct presets rendered so far, Adam moves their *continuous* free values down the
twin's ``perceptual`` loss (``asm.audio.spectral_loss``, the same formula the search chooses by) in a
logit reparametrisation (value = sigmoid(z), so it never leaves (0, 1)); stepped, categorical and
boolean values and the locks stay at each start's choice (spectral gradients through a choice are
not to be trusted, and the search already picked them).

The twin proposes, the real synth decides: every ``confirm_every`` steps the current presets are
rendered by DawDreamer through the ``MatchProblem`` (scored by the same metric code, added to the
archive, counted against the budget). The archive keeps the best of everything rendered, so
refinement never returns worse than where it started. A start whose confirmed score did not improve
for ``patience`` confirmations goes back to its best confirmed preset with half the step size (the
twin's gradient overshot or disagrees with the synth there); below ``min_lr`` it stops. Refinement
ends when the budget or time is spent, the steps run out, or every start has stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from asm.errors import AsmError
from asm.search.config import RefineSettings, SearchSettings
from asm.search.engine import SearchOutcome, run_search
from asm.search.problem import MatchProblem
from asm.search.seeding import SeedSet
from asm.synth.params import Kind

SOURCE = "gradient"  # archive label of the refinement's confirming renders
_EPS = 1e-4  # starts are kept this far inside (0, 1) so their logits are finite


@dataclass
class RefineOutcome:
    steps: int
    confirmations: int  # real renders spent
    improved: int  # confirmed renders better than the best before them
    stopped: str  # budget, time, steps, stalled


def twin_for(spec):
    """The twin module of a built-in synth, or None (plugins and built-ins without a twin)."""
    from asm.synth.diff import twin_module

    if spec.kind != "faust":
        return None
    try:
        return twin_module(spec.name)
    except AsmError:
        return None


def best_distinct(problem: MatchProblem, k: int) -> np.ndarray:
    """Free values of the ``k`` best distinct presets of the archive by the headline metric."""
    return problem.archive.all_values()[best_distinct_indices(problem, k)]


def best_distinct_indices(problem: MatchProblem, k: int) -> list[int]:
    """Archive indices of the ``k`` best distinct presets by the headline metric."""
    values, head = problem.archive.all_values(), problem.archive.all_headline()
    chosen, seen = [], set()
    for i in np.argsort(head, kind="stable"):
        key = np.round(values[i], 6).tobytes()
        if key not in seen and np.isfinite(head[i]):
            seen.add(key)
            chosen.append(int(i))
        if len(chosen) == k:
            break
    return chosen


def refine(problem: MatchProblem, twin, target: np.ndarray, sample_rate: int, settings: RefineSettings,
           starts: np.ndarray | None = None, time_limit: float | None = None, device: str = "cpu") -> RefineOutcome:
    """Refine ``starts`` (free values; default the archive's ``settings.starts`` best) until the problem's
    budget, ``time_limit`` (seconds on the archive's clock), the steps or every start is spent."""
    import torch

    from asm.audio.spectral_loss import PerceptualLoss
    from asm.synth.diff.chain import Voices

    space = problem.space
    starts = best_distinct(problem, settings.starts) if starts is None else np.atleast_2d(starts)
    cont = np.array([i for i, p in enumerate(space.free) if p.kind is Kind.continuous], dtype=np.int64)
    if len(starts) == 0 or len(cont) == 0:
        return RefineOutcome(0, 0, 0, "nothing to refine")
    starts = space.quantise_free(starts)
    k = len(starts)
    dtype = torch.float32
    base = torch.tensor(space.full(starts), dtype=dtype, device=device)  # locks and discrete values in place
    positions = torch.tensor(space.free_positions[cont], device=device)
    voices = Voices.from_notes([problem.notes] * k, dtype=dtype, device=device)
    loss_fn = PerceptualLoss(target, sample_rate, device, dtype)

    z = [torch.tensor(logit(starts[i, cont]), dtype=dtype, device=device, requires_grad=True) for i in range(k)]
    optimiser = torch.optim.Adam([{"params": [p], "lr": settings.lr} for p in z])
    best = _archived_scores(problem, starts)  # each start's best confirmed score
    best_free = starts.copy()
    stale = np.zeros(k, dtype=np.int64)
    active = np.ones(k, dtype=bool)
    steps = confirmations = improved = 0
    stopped = "steps"
    while steps < settings.steps:
        stopped = _stop_reason(problem, active, time_limit) or stopped
        if stopped != "steps":
            break
        optimiser.zero_grad(set_to_none=True)
        x = torch.sigmoid(torch.stack(z))
        params = base.index_copy(1, positions, x)
        loss = loss_fn(twin.render(params, voices, sample_rate, problem.duration))
        (loss * torch.as_tensor(active, device=device)).nan_to_num(0.0).sum().backward()
        for p in z:
            if p.grad is not None:
                p.grad.nan_to_num_(0.0, 0.0, 0.0)
        optimiser.step()
        steps += 1
        if steps % settings.confirm_every:
            continue
        rows = np.flatnonzero(active)
        current = starts[rows].copy()
        current[:, cont] = torch.sigmoid(torch.stack([z[i] for i in rows])).detach().cpu().double().numpy()
        before, rendered = problem.archive.best, problem.archive.renders
        scores = problem.score(current, SOURCE)[:, problem.scorer.headline_column()]
        confirmations += problem.archive.renders - rendered
        improved += int(np.sum(scores < before))
        for j, i in enumerate(rows):
            if scores[j] < best[i] * (1 - 1e-6):
                best[i], best_free[i], stale[i] = scores[j], current[j], 0
                continue
            stale[i] += 1
            if stale[i] >= settings.patience:  # back to the best confirmed preset, smaller steps
                group = optimiser.param_groups[i]
                group["lr"] *= 0.5
                stale[i] = 0
                with torch.no_grad():
                    z[i].copy_(torch.tensor(logit(best_free[i, cont]), dtype=dtype, device=device))
                optimiser.state.pop(z[i], None)
                if group["lr"] < settings.min_lr:
                    active[i] = False
    return RefineOutcome(steps, confirmations, improved, stopped)


def logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, _EPS, 1 - _EPS)
    return np.log(x) - np.log1p(-x)


def _archived_scores(problem: MatchProblem, starts: np.ndarray) -> np.ndarray:
    """The real score of each start already in the archive (inf for the others)."""
    best = np.full(len(starts), np.inf)
    values, head = problem.archive.all_values(), problem.archive.all_headline()
    for i, start in enumerate(starts):
        hit = np.flatnonzero(np.all(np.isclose(values, start, atol=1e-9), axis=1))
        if len(hit):
            best[i] = float(head[hit].min())
    return best


def _stop_reason(problem: MatchProblem, active: np.ndarray, time_limit: float | None) -> str | None:
    """Why refinement must stop before its next step, or None."""
    if not active.any():
        return "stalled"
    if problem.remaining() == 0 or problem.exhausted:
        return "budget"
    if time_limit is not None and problem.archive.seconds >= time_limit:
        return "time"
    return None


def reserve(settings: SearchSettings, twin) -> tuple[SearchSettings, int, float | None]:
    """The search's settings with the refinement's share of the budget and time limit taken off, and that
    share (renders, seconds); nothing is reserved without a twin."""
    share = settings.refine.share if twin is not None else 0.0
    if share <= 0:
        return settings, 0, None
    budget = None if settings.budget is None else max(1, settings.budget - math.ceil(share * settings.budget))
    limit = None if settings.time_limit is None else settings.time_limit * (1 - share)
    kept = settings.model_copy(update={"budget": budget, "time_limit": limit})
    return kept, (0 if budget is None else settings.budget - budget), limit


def refine_rounds(problem: MatchProblem, twin, target: np.ndarray, sample_rate: int, settings: RefineSettings,
                  time_limit: float | None = None, device: str = "cpu") -> RefineOutcome:
    """``refine`` from the archive's best, again from the (new) best while a round improved and the
    budget, time and steps last, so a round that stalls early does not leave its renders unspent."""
    total = RefineOutcome(0, 0, 0, "steps")
    while total.steps < settings.steps:
        left = settings.model_copy(update={"steps": settings.steps - total.steps})
        r = refine(problem, twin, target, sample_rate, left, time_limit=time_limit, device=device)
        total = RefineOutcome(total.steps + r.steps, total.confirmations + r.confirmations,
                              total.improved + r.improved, r.stopped)
        if r.stopped != "stalled" or r.improved == 0:
            break
    return total


def run_refined(problem: MatchProblem, spec, target: np.ndarray, settings: SearchSettings, seeds: SeedSet | None,
                seed: int) -> SearchOutcome:
    """``hybrid`` when the synth has a twin: refinement of the best seeds on ``refine.first`` of the
    refinement's share of the budget, NSGA-II (``run_search``) seeded with the refined presets and the
    seeds on the budget less the rest of that share, then refinement of the best of everything on the
    rest. Without a twin: NSGA-II on everything."""
    twin = twin_for(spec)
    kept, reserved, _ = reserve(settings, twin)
    if kept is settings:
        return run_search(problem, settings, seeds, seed)
    full = problem.budget
    early = round(settings.refine.first * reserved)  # renders of the refinement before NSGA-II
    if early > 0 and seeds is not None and len(seeds):
        seeds = _refine_seeds_first(problem, twin, target, spec, settings, seeds, early)
        if kept.budget is not None:  # budgets count every render: what the first part left goes to NSGA-II
            kept = kept.model_copy(update={"budget": kept.budget + early})
    problem.budget = kept.budget if full is not None else None
    try:
        outcome = run_search(problem, kept, seeds, seed)
    finally:
        problem.budget = full
    problem.exhausted = False
    r = refine_rounds(problem, twin, target, int(spec.sample_rate), settings.refine, time_limit=settings.time_limit)
    return SearchOutcome(outcome.generations, outcome.stopped if r.confirmations == 0 else r.stopped,
                         outcome.initial)


def _refine_seeds_first(problem: MatchProblem, twin, target: np.ndarray, spec, settings: SearchSettings,
                        seeds: SeedSet, renders: int) -> SeedSet:
    """Render the ``refine.starts`` first seeds (every source's best guess: they are interleaved by rank)
    and refine them on ``renders`` more (``refine.first`` of the reserve); returns the seeds with the refined presets in
    front (NSGA-II then starts from where the twin led).

    In-domain, an estimator's guess usually sits in the right basin, where the twin's gradient goes
    further in 100 renders than NSGA-II in 500 (``gradient`` beat hybrid on the benchmark's test set);
    out of domain the guess is poor and NSGA-II's exploration matters: both get their turn."""
    r = settings.refine
    lead = seeds.values[: r.starts]
    full = problem.budget
    if full is not None:
        problem.budget = min(full, problem.archive.renders + len(lead) + renders)
    limit = None if settings.time_limit is None else settings.time_limit * r.share
    try:
        problem.score(lead, seeds.sources[: r.starts])
        refine_rounds(problem, twin, target, int(spec.sample_rate), r, time_limit=limit)
    finally:
        problem.budget = full
        problem.exhausted = False
    best = best_distinct_indices(problem, r.starts)  # labelled as archived: a seed the twin could not improve keeps its own
    front = SeedSet.empty(problem.space.n_free)
    front.add(problem.archive.all_values()[best], [problem.archive.sources[i] for i in best])
    front.add(seeds.values, seeds.sources)
    return front


def gradient_starts(space, estimator, target: np.ndarray, sample_rate: int, k: int, seed: int) -> SeedSet:
    """Where ``gradient`` starts: the estimators' guesses (``k`` candidates from a flow), else the default preset."""
    from asm.search.seeding import estimator_groups

    groups = estimator_groups(estimator, target, sample_rate, k, seed)
    if groups:
        return SeedSet.interleaved(space.n_free, groups).unique(space)
    return SeedSet.interleaved(space.n_free, [(space.free_part(space.defaults())[None], "default")])


def run_gradient(problem: MatchProblem, spec, target: np.ndarray, settings: SearchSettings,
                 starts: SeedSet) -> SearchOutcome:
    """``gradient``: render the starts, then refinement alone on the whole budget (generations = Adam steps)."""
    twin = twin_for(spec)
    if twin is None:
        from asm.synth.diff import TWINS

        raise AsmError(f"method gradient needs a synth with a differentiable twin ({', '.join(TWINS)}); "
                       f"{spec.name} has none")
    problem.score(starts.values, list(starts.sources))
    r = refine_rounds(problem, twin, target, int(spec.sample_rate), settings.refine, time_limit=settings.time_limit)
    return SearchOutcome(r.steps, r.stopped, starts.counts())
