"""Search recipes: algorithm, objectives, termination and seeding, as data.

A recipe is a ``SearchSettings`` (pydantic) stored by name in the registry's ``search_config``
table, applied from ``fixtures/search/*.py`` with ``SearchConfig`` items::

    from asm.search.config import SearchConfig, SeedSettings
    FIXTURE = [SearchConfig(name="asm", population=50, objectives="asm", budget=1500,
                            seeds=SeedSettings(estimator=8, neighbours=8, factory=8, local=0.5))]

The shipped recipes also exist in code (``BUILTIN_RECIPES``), so ``asm match`` works on a fresh
registry before any fixture was applied; a registry row of the same name wins.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from asm.errors import AsmError
from asm.registry.fixtures import FieldError, FixtureContext, FixtureItem

DEFAULT_RECIPE = "asm"
HEADLINE = "perceptual"  # the metric the best preset is chosen by, and what curves track (= metrics.HEADLINE_METRIC,
# spelt out so that reading a recipe does not import torch)
DETERMINISTIC_KINDS = ("faust",)  # built-in Faust synths render sample-identically; plugins may not (amsynth)
NONDETERMINISTIC_RERENDERS = 3


class SeedSettings(BaseModel):
    """Where a seeded search (``hybrid``) takes its first population from.

    Seeds are rendered first; then ``local`` of the population is filled with mutants of the best
    seeds (continuous and stepped values moved by a Gaussian of ``local_sigma`` in normalised units,
    categorical/boolean values redrawn with probability ``local_reset``), the rest with random presets.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    estimator: int = Field(8, ge=0, le=1024, description="candidates from the estimator (flow: samples; "
                                                         "point estimators give one)")
    neighbours: int = Field(8, ge=0, le=1024, description="nearest neighbours from a dataset")
    factory: int = Field(8, ge=0, le=1024, description="factory presets drawn at random")
    default: bool = Field(True, description="the synth's default preset (its init patch) as a seed")
    local: float = Field(0.5, ge=0.0, le=1.0, description="share of the population made of mutants of the best seeds")
    local_sigma: float = Field(0.05, gt=0.0, le=1.0)
    local_reset: float = Field(0.05, ge=0.0, le=1.0)
    local_parents: int = Field(4, ge=1, le=1024, description="best seeds the mutants are drawn around")
    local_rate: float = Field(1.0, gt=0.0, le=1.0, description="chance that a continuous/stepped value moves "
                                                               "in a mutant (at least one always does)")

    @property
    def any(self) -> bool:
        return bool(self.estimator or self.neighbours or self.factory or self.default)


class RefineSettings(BaseModel):
    """Gradient refinement through a synth's differentiable twin (``asm.search.refine``): ``hybrid``'s last
    phase when the synth has a twin, and all of ``gradient``. Each confirming render counts against the budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float = Field(0.2, ge=0.0, lt=1.0, description="of the budget (and time limit) that hybrid keeps for "
                         "refinement when the synth has a twin")
    first: float = Field(0.5, ge=0.0, le=1.0, description="of hybrid's refinement share spent before NSGA-II, "
                         "refining the best seeds (the estimator's and the nearest neighbour's guesses); the rest "
                         "refines NSGA-II's best at the end")
    starts: int = Field(2, ge=1, le=64, description="best distinct presets refined side by side")
    steps: int = Field(300, ge=1, le=100000, description="Adam steps at most")
    lr: float = Field(0.1, gt=0.0, le=10.0, description="Adam step size, in logit units of the normalised values")
    confirm_every: int = Field(1, ge=1, le=1000, description="Adam steps between confirming real renders (a twin "
                               "step costs about 10 real renders on the CPU)")
    patience: int = Field(2, ge=1, le=100, description="confirmations without a better real score before a start "
                          "goes back to its best confirmed preset with half the step size")
    min_lr: float = Field(0.01, gt=0.0, description="a start whose step size fell below this stops")


class CmaesSettings(BaseModel):
    """CMA-ES (``asm.search.cmaes``) on the headline metric, from the best seed (or a random preset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sigma: float = Field(0.15, gt=0.0, le=1.0, description="initial step size in normalised units")
    population: int | None = Field(None, ge=2, le=10000, description="offspring per generation (None: cma's "
                                   "default, 4 + 3 ln n)")


class SearchSettings(BaseModel):
    """One search recipe. A search is a pymoo Problem (render + objectives), this algorithm and a termination."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Literal["nsga2"] = "nsga2"
    population: int = Field(50, ge=4, le=10000)
    objectives: str | tuple[str, ...] = Field("asm", description="an objective set (asm, autosoundmatch) or metric names")
    # terminations (any that is set stops the search)
    budget: int | None = Field(1500, ge=1, description="renders")
    generations: int | None = Field(None, ge=1)
    time_limit: float | None = Field(None, gt=0, description="seconds")
    patience: int | None = Field(None, ge=1, description="generations without a better best")
    min_improvement: float = Field(1e-3, ge=0.0, description="relative gain of the best that counts for patience")
    # variation operators (pymoo: SBX, polynomial mutation; categorical: uniform crossover, random reset)
    crossover_prob: float = Field(0.9, ge=0.0, le=1.0)
    crossover_eta: float = Field(15.0, gt=0.0)
    mutation_eta: float = Field(20.0, gt=0.0)
    mutation_prob_var: float | None = Field(None, gt=0.0, le=1.0, description="per variable; default 1/n_free")
    mutation_bound_prob: float = Field(0.1, ge=0.0, le=1.0, description="a mutated continuous value jumps to "
                                                                       "the nearer end of its range")
    seeds: SeedSettings = SeedSettings()
    refine: RefineSettings = RefineSettings()
    cmaes: CmaesSettings = CmaesSettings()
    exploit: float = Field(0.0, ge=0.0, lt=1.0, description="share of every generation's offspring replaced "
                           "by mutants (seeds.local_*) of the best presets rendered so far, by the headline metric")
    screen_factor: int = Field(20, ge=1, le=1000, description="with a proxy screen (method proxy; hybrid on a "
                               "synth with a proxy and no twin): candidates proposed per candidate rendered; the "
                               "proxy keeps the best 1/screen_factor of each generation and of the random start")
    estimate_candidates: int = Field(1, ge=1, le=1024, description="renders of the model / nn methods alone")
    top_k: int = Field(5, ge=1, le=100, description="presets of the Pareto front kept")
    rerender: int | None = Field(None, ge=1, le=32, description="renders of each finalist before the best is "
                                 "named; its reported scores are the mean over them (None: from the synth, "
                                 f"1 for a deterministic one, {NONDETERMINISTIC_RERENDERS} otherwise)")
    rerender_top: int = Field(4, ge=1, le=64, description="finalists (best by the headline metric) re-rendered "
                              "when rerender > 1")

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v):
        from asm.audio.metrics import resolve

        try:
            resolve(v if isinstance(v, str) else list(v))
        except AsmError as exc:
            raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _stops(self) -> SearchSettings:
        if self.budget is None and self.generations is None and self.time_limit is None and self.patience is None:
            raise ValueError("a search needs at least one termination: budget, generations, time_limit or patience")
        return self

    @property
    def objective_names(self) -> tuple[str, ...]:
        from asm.audio.metrics import resolve

        return resolve(self.objectives if isinstance(self.objectives, str) else list(self.objectives))

    def rerenders_for(self, synth_kind: str) -> int:
        """Renders per finalist for a synth of ``synth_kind`` (``rerender`` or the synth's default)."""
        if self.rerender is not None:
            return int(self.rerender)
        return 1 if synth_kind in DETERMINISTIC_KINDS else NONDETERMINISTIC_RERENDERS

    def with_limits(self, budget: int | None = None, time_limit: float | None = None) -> SearchSettings:
        """A copy with the command line's budget / time limit in place of the recipe's."""
        changes = {}
        if budget is not None:
            changes["budget"] = int(budget)
        if time_limit is not None:
            changes["time_limit"] = float(time_limit)
        return self.model_copy(update=changes) if changes else self


BUILTIN_RECIPES: dict[str, tuple[SearchSettings, str]] = {
    "asm": (SearchSettings(exploit=0.5, seeds=SeedSettings(estimator=32, neighbours=64, local_rate=0.3)),
            ("asm's default: NSGA-II, population 50, asm objectives (perceptual, loudness envelope, mfcc), 1500 "
             "renders; seeded from 32 estimator candidates, 64 neighbours, factory presets; half of every "
             "generation spent on sparse mutants of the best so far")),
    "asm-v1": (SearchSettings(objectives="asm-v1", exploit=0.5,
                              seeds=SeedSettings(estimator=32, neighbours=64, local_rate=0.3)),
               "the earlier default, for comparison: the asm recipe with the asm-v1 objectives (mr-stft, mfcc, "
               "loudness envelope)"),
    "autosoundmatch": (
        SearchSettings(population=25, objectives="autosoundmatch", mutation_bound_prob=0.0,
                       seeds=SeedSettings(estimator=0, neighbours=0, factory=0, default=False, local=0.0)),
        ("AutoSoundMatch's recipe: NSGA-II, population 25, its three objectives (whole-signal FFT, STFT "
         "magnitude, amplitude envelope), started from random"),
    ),
}


class SearchConfig(SearchSettings, FixtureItem):
    """A named search recipe in a fixture (``fixtures/search/*.py``)."""

    kind = "search"
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""

    def label(self) -> str:
        return f"search {self.name}"

    def settings(self) -> SearchSettings:
        return SearchSettings(**self.model_dump(exclude={"name", "description"}))

    def check(self, ctx: FixtureContext) -> None:
        seen = ctx.slot("check:search-names", set)
        if self.name in seen:
            raise FieldError("name", f"search {self.name!r} is defined twice in these fixtures")
        seen.add(self.name)

    def apply(self, session: Session, ctx: FixtureContext) -> str:
        from asm.registry.models import SearchConfigRow

        row = session.scalar(select(SearchConfigRow).where(SearchConfigRow.name == self.name))
        settings = self.settings().model_dump(mode="json")
        if row is None:
            session.add(SearchConfigRow(name=self.name, settings=settings, description=self.description))
            what = "added"
        else:
            what = "unchanged" if (row.settings == settings and row.description == self.description) else "updated"
            row.settings, row.description = settings, self.description
        session.flush()
        return f"search {self.name}: {what} (population {self.population}, objectives " \
               f"{','.join(self.settings().objective_names)})"


def load_search_settings(session: Session | None, name: str = DEFAULT_RECIPE) -> SearchSettings:
    """The recipe ``name`` from the registry, else a built-in one; unknown names are refused."""
    from asm.registry.models import SearchConfigRow

    row = None
    if session is not None:
        row = session.scalar(select(SearchConfigRow).where(SearchConfigRow.name == name))
    if row is not None:
        try:
            return SearchSettings(**row.settings)
        except ValueError as exc:
            raise AsmError(f"search config {name!r} in the registry is invalid ({exc}); apply its fixture again") from None
    if name in BUILTIN_RECIPES:
        return BUILTIN_RECIPES[name][0]
    known = set(BUILTIN_RECIPES)
    if session is not None:
        known |= set(session.scalars(select(SearchConfigRow.name)))
    raise AsmError(f"unknown search config {name!r}; known: {', '.join(sorted(known))}")
