"""Variation operators that respect parameter kinds, on the free vector of normalised values.

The search works on the free (unlocked) values in [0, 1]. A discrete parameter with ``n`` values is
an integer ``k`` encoded as ``k / (n - 1)`` (the registry's encoding); every operator ends with
``KindRepair``, which snaps discrete columns to their values. Continuous and stepped (ordered)
parameters use pymoo's SBX and polynomial mutation; categorical and boolean ones (unordered, where
"between" means nothing) use uniform crossover and random reset to another choice.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.mutation import Mutation
from pymoo.core.repair import Repair
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM

from asm.synth.params import Kind, ParameterSpace


class Kinds:
    """Per-column facts about the free parameters of a space."""

    def __init__(self, space: ParameterSpace):
        free = space.free
        self.space = space
        self.n_values = np.array([p.n_values for p in free], dtype=np.int64)
        self.unordered = np.array([p.kind in (Kind.categorical, Kind.boolean) for p in free], dtype=bool)
        self.discrete = self.n_values > 1

    def quantise(self, x: np.ndarray) -> np.ndarray:
        return self.space.quantise_free(x)

    def reset(self, x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Categorical/boolean entries under ``mask`` move to another choice, drawn uniformly."""
        out = np.array(x, dtype=np.float64, copy=True)
        rows, cols = np.nonzero(mask & self.unordered[None, :])
        if len(rows):
            n = self.n_values[cols]
            current = np.round(out[rows, cols] * (n - 1)).astype(np.int64)
            other = rng.integers(0, np.maximum(n - 1, 1))  # one of the n - 1 other choices
            other = np.where(other >= current, other + 1, other)
            out[rows, cols] = other / (n - 1)
        return out


class KindRepair(Repair):
    def __init__(self, kinds: Kinds):
        super().__init__()
        self.kinds = kinds

    def _do(self, problem, X, **kwargs):
        return self.kinds.quantise(np.asarray(X, dtype=np.float64))


class KindCrossover(SBX):
    """SBX on ordered columns; on categorical/boolean columns each child takes one parent's choice."""

    def __init__(self, kinds: Kinds, **kwargs):
        super().__init__(**kwargs)
        self.kinds = kinds

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        Q = super()._do(problem, X, *args, random_state=random_state, **kwargs)
        cols = self.kinds.unordered
        if cols.any():
            swap = random_state.random((X.shape[1], int(cols.sum()))) < 0.5
            a, b = X[0][:, cols], X[1][:, cols]
            Q[0][:, cols] = np.where(swap, b, a)
            Q[1][:, cols] = np.where(swap, a, b)
        return Q


class KindMutation(Mutation):
    """Polynomial mutation on ordered columns, random reset on categorical/boolean ones; each column
    mutates with probability ``prob_var`` (default 1 / n_free).

    ``bound_prob``: a mutated continuous value goes to the nearer end of its range with this
    probability. Synth sounds often rest on an end (a level, depth or drive at exactly 0), where a
    sliver of noise or modulation costs a lot in log-spectral distance, and neither polynomial
    mutation nor SBX ever lands exactly there.
    """

    def __init__(self, kinds: Kinds, eta: float = 20.0, prob_var: float | None = None, bound_prob: float = 0.0,
                 **kwargs):
        super().__init__(prob=1.0, prob_var=prob_var, **kwargs)
        self.kinds = kinds
        self.bound_prob = float(bound_prob)
        self.pm = PM(eta=eta, prob=1.0, prob_var=prob_var)

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        X = np.asarray(X, dtype=np.float64)
        Xp = self.pm._do(problem, X, random_state=random_state)
        cols = self.kinds.unordered
        if cols.any():
            Xp[:, cols] = X[:, cols]  # PM's move on an unordered column is meaningless: undo it
            p = self.prob_var.value if self.prob_var is not None else min(0.5, 1.0 / problem.n_var)
            mask = random_state.random(X.shape) < p
            Xp = self.kinds.reset(Xp, mask & cols[None, :], random_state)
        if self.bound_prob > 0:
            moved = (Xp != X) & ~self.kinds.discrete[None, :]
            snap = moved & (random_state.random(X.shape) < self.bound_prob)
            Xp[snap] = np.where(Xp[snap] < 0.5, 0.0, 1.0)
        return Xp


def local_mutants(parents: np.ndarray, n: int, kinds: Kinds, rng: np.random.Generator, sigma: float,
                  reset: float, bound_prob: float = 0.0, rate: float = 1.0) -> np.ndarray:
    """``n`` mutants spread round-robin over ``parents``: ordered values plus N(0, sigma) (clipped),
    each with probability ``rate`` (at least one per mutant), unordered values redrawn with
    probability ``reset``; then quantised."""
    parents = np.atleast_2d(np.asarray(parents, dtype=np.float64))
    if n <= 0 or len(parents) == 0:
        return np.empty((0, kinds.space.n_free))
    base = parents[np.arange(n) % len(parents)]
    step = rng.normal(0.0, sigma, base.shape)
    if rate < 1.0:
        keep = rng.random(base.shape) < rate
        ordered = np.flatnonzero(~kinds.unordered)
        if len(ordered):  # one ordered value always moves: a mutant is never a copy of its parent
            keep[np.arange(n), ordered[rng.integers(0, len(ordered), n)]] = True
        step = np.where(keep, step, 0.0)
    # a stepped parameter moves by at least one step when its Gaussian step is large enough to round
    moved = np.where(kinds.unordered[None, :], base, np.clip(base + step, 0.0, 1.0))
    moved = kinds.reset(moved, rng.random(base.shape) < reset, rng)
    if bound_prob > 0:
        snap = (rng.random(base.shape) < bound_prob) & ~kinds.discrete[None, :]
        moved[snap] = np.where(moved[snap] < 0.5, 0.0, 1.0)
    return kinds.quantise(moved)
