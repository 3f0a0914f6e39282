"""``asm perf match``: methods compared on held-out dataset targets with one render budget each.

Targets are test-split examples of a mono dataset (their stored audio and the notes they played).
Every method runs through one shared ``RenderPool`` (started once, not counted in per-target
seconds). Printed per method: median/mean multi-resolution STFT distance, median headline
(perceptual) distance, median renders and seconds per target; for the seeded search also how many
renders it needed to reach the final score of NSGA-II from random on the same target.

``proxy`` (NSGA-II screened by a neural proxy, the asm recipe) and ``hybrid (proxy)`` (hybrid
screened by it) run with ``--proxy`` or, when the synth has a trained proxy, with its newest; they
are in the default list only then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from asm.errors import AsmError
from asm.match.pipeline import STALL_TIMEOUT, match_target
from asm.registry.db import session_scope
from asm.registry.synth_loader import spec_of
from asm.registry.synths import factory_presets, get_synth
from asm.render import RenderPool
from asm.search.seeding import DatasetNeighbours

# method label -> (match method, search recipe)
DEFAULT_METHODS = {
    "hybrid": ("hybrid", "asm"),
    "model": ("model", "asm"),
    "nn": ("nn", "asm"),
    "nsga2 (autosoundmatch)": ("nsga2", "autosoundmatch"),
    "nsga2 (asm)": ("nsga2", "asm"),
    "gradient": ("gradient", "asm"),
    "cmaes": ("cmaes", "asm"),
    "proxy": ("proxy", "asm"),
    "hybrid (proxy)": ("hybrid", "asm"),
}
SCREENED_LABELS = ("proxy", "hybrid (proxy)")  # labels that run with the proxy


@dataclass
class MethodStats:
    label: str
    scores: list[float] = field(default_factory=list)
    headline: list[float] = field(default_factory=list)
    renders: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    results: list = field(default_factory=list)

    def row(self) -> dict:
        s = np.asarray(self.scores)
        return {"method": self.label, "targets": len(s), "median_mr_stft": float(np.median(s)),
                "mean_mr_stft": float(s.mean()), "median_perceptual": float(np.median(self.headline)),
                "median_renders": float(np.median(self.renders)),
                "seconds_per_target": float(np.mean(self.seconds)), "max_seconds": float(np.max(self.seconds))}


def measure_match(dataset: str, model: str | None = None, n_targets: int = 32, budget: int = 1500,
                  methods: list[str] | None = None, workers: int | str = "auto", seed: int = 0,
                  on_target=None, proxy: str | None = None) -> dict:
    from asm.data.torch_dataset import ShardDataset
    from asm.search.config import load_search_settings

    test = ShardDataset(dataset, split="test")
    if len(test) == 0:
        raise AsmError(f"dataset {dataset} has no test split")
    if test.settings.mode != "mono":
        raise AsmError(f"asm perf match takes a mono dataset; {dataset} is {test.settings.mode}")
    chosen = methods or [m for m in DEFAULT_METHODS if model is not None or DEFAULT_METHODS[m][0] != "model"]
    unknown = [m for m in chosen if m not in DEFAULT_METHODS]
    if unknown:
        raise AsmError(f"unknown method {unknown[0]!r}: choose from {', '.join(DEFAULT_METHODS)}")
    if model is None and any(DEFAULT_METHODS[m][0] == "model" for m in chosen):
        raise AsmError("method model needs --model")
    estimator = screen = None
    with session_scope() as session:
        row = get_synth(session, test.synth)
        spec = spec_of(row, test.sample_rate)
        if proxy is not None or any(m in SCREENED_LABELS for m in chosen):
            from asm.proxy.screen import ProxyScreen, latest_proxy

            found = proxy if proxy is not None else getattr(latest_proxy(session, row, spec.space), "id", None)
            if found is None and methods is not None and any(m in SCREENED_LABELS for m in chosen):
                raise AsmError(f"methods {', '.join(SCREENED_LABELS)} need a trained proxy of {row.name} "
                               "(train one with asm train-proxy, or give --proxy)")
            screen = ProxyScreen.load(session, found, spec.space, row.name) if found is not None else None
        if screen is None:
            chosen = [m for m in chosen if m not in SCREENED_LABELS]
        recipes = {name: load_search_settings(session, name).with_limits(budget=budget)
                   for name in {DEFAULT_METHODS[m][1] for m in chosen}}
        factory = factory_presets(session, row, spec.space)
        if model is not None:
            from asm.models.estimator import load_estimator

            estimator = load_estimator(session, model)
    if methods is None:  # refinement alone needs a differentiable twin
        from asm.synth.diff import TWINS

        chosen = [m for m in chosen if DEFAULT_METHODS[m][0] != "gradient" or spec.name in TWINS]
    if spec.space.free_signature() != test.free_signature or spec.space.lock_signature() != test.lock_signature:
        raise AsmError(f"the locks of {test.synth} changed since dataset {dataset} was made")
    t0 = time.perf_counter()
    neighbours = DatasetNeighbours(dataset, "train")
    index_seconds = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(test), size=min(n_targets, len(test)), replace=False))
    stats = {m: MethodStats(m) for m in chosen}
    reach: list[int | None] = []
    t0 = time.perf_counter()
    pool = RenderPool(spec, workers, stall_timeout=STALL_TIMEOUT)
    pool_seconds = time.perf_counter() - t0
    try:
        for t, i in enumerate(picks):
            audio, notes = test.audio(int(i)), test.notes(int(i))
            per = {}
            for label in chosen:
                method, recipe = DEFAULT_METHODS[label]
                r = match_target(audio, notes, spec, method, recipes[recipe], pool=pool, estimator=estimator,
                                 neighbours=neighbours, factory=factory, seed=seed + int(i),
                                 proxy=screen if label in SCREENED_LABELS else None)
                st = stats[label]
                st.scores.append(r.metrics["mr-stft"])
                st.headline.append(r.metrics["perceptual"])
                st.renders.append(r.renders)
                st.seconds.append(r.seconds)
                per[label] = r
            if "hybrid" in per and "nsga2 (autosoundmatch)" in per:
                reach.append(per["hybrid"].renders_to_reach(per["nsga2 (autosoundmatch)"].metrics["mr-stft"]))
            if on_target is not None:
                on_target(t + 1, len(picks), {k: v.metrics["mr-stft"] for k, v in per.items()})
    finally:
        pool.close()
        test.close()
    rows = [stats[m].row() for m in chosen]
    reached = [r for r in reach if r is not None]
    return {
        "dataset": dataset, "model": model, "synth": spec.name, "sample_rate": spec.sample_rate,
        "duration": test.settings.duration, "targets": [int(i) for i in picks], "budget": budget,
        "proxy": screen.name if screen is not None else None, "workers": pool.size, "pool_start_s": pool_seconds, "index_s": index_seconds, "methods": rows,
        "hybrid_reach": {"targets": len(reach), "reached": len(reached),
                         "median_renders": float(np.median(reached)) if reached else None},
        "per_target": {m: [float(x) for x in stats[m].scores] for m in chosen},
        "per_target_perceptual": {m: [float(x) for x in stats[m].headline] for m in chosen},
    }
