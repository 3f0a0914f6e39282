"""Running a benchmark: set-up -> dataset -> models -> every method on the same targets -> run, table, report.

Stages (each reuses what a previous run finished, keyed by its settings):

1. **set-up**: apply the synth fixture of ``(synth, params)`` and the model-config fixtures
   (``fixtures/models/<config>.py``, plus ``nn``); with amsynth, import its factory banks once.
2. **dataset**: ``asm.data.generate.generate_dataset`` under the plan's name; a finished dataset
   with the same settings is reused, an interrupted one resumed.
3. **models**: ``asm.models.training.train_model`` for each config (and the ``nn`` index); a
   finished model of the same name is reused, an unfinished one resumed. With the ``proxy`` method
   (synths without a twin) also one proxy (``asm.proxy.train.train_proxy``), reused and resumed alike.
4. **targets**: the test split's first N examples (``test``), with amsynth the test-split
   examples made from factory presets (``factory``: held out from training by the dataset's
   de-duplicated split), and the out-of-domain set when present (``ood``).
5. **methods**: every method answers every target; its answer is rendered with the target's own
   notes (all of them, for polyphonic targets) for the target's length and scored with
   ``asm.audio.metrics``, with the noisiness of target and render (``asm.bench.noisiness``).
   ``random`` is one seeded random preset; ``nn`` and ``model:<config>`` are
   the estimators' point estimates; the search methods run ``asm.match.pipeline.match_target``
   with the recipe and the same render budget.

6. **re-render floor**: once per target set, the synth's floor (``asm.bench.rerender_floor``),
   noted on the set's rows.

Results go to one ``run`` (kind ``benchmark``) through ``asm.runs.RunWriter``; the summary
table is printed and the HTML report written at the end.

Progress goes to one ``asm.progress.Reporter``: the dataset stage (``generating <name>``, its
worker-crash warnings included), each model's training stages, then ``matching ...`` with one step
per (target, method) answer; the set-up and reuse decisions arrive as messages.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from asm.bench.config import (
    FIXTURES,
    METHOD_RECIPES,
    SEARCH_METHODS,
    TWIN_TRAINED,
    BenchmarkRequest,
    ScalePreset,
    plan,
)
from asm.bench.ood import load_ood_targets
from asm.errors import AsmError
from asm.match.pipeline import match_target
from asm.midi.notes import Note
from asm.models.scoring import parameter_scores
from asm.presets.importer import import_presets
from asm.progress import Reporter
from asm.registry.db import session_scope
from asm.registry.fixtures import apply_fixtures
from asm.registry.models import Model, Preset
from asm.registry.shipped import model_config_fixture, shipped_model_configs
from asm.registry.synth_loader import spec_of
from asm.registry.synths import get_synth
from asm.render import RenderPool
from asm.runs import RunWriter, load_run
from asm.search.seeding import DatasetNeighbours

AMSYNTH_BANKS = "/usr/share/amsynth/banks/*.bank"


@dataclass
class Target:
    """One benchmark target: audio at the benchmark's rate, the notes it plays, the truth if known."""

    set: str
    key: str
    label: str
    audio: np.ndarray
    notes: list[Note]
    truth: np.ndarray | None = None  # free values, when a preset made it
    example_index: int | None = None


@dataclass
class Prepared:
    dataset: str
    models: dict[str, str]  # config -> model name
    nn_model: str
    seconds: dict[str, float] = field(default_factory=dict)
    proxy: str | None = None  # the proxy that screens ``proxy``


def _seed_for(*parts) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(str(p).encode()) for p in parts])


# ---- 1-3: set-up, dataset, models ------------------------------------------------------------------

def apply_setup(p: dict, configs: list[str], reporter: Reporter) -> None:
    paths = [FIXTURES.parent / p["fixture"]]
    for config in [*configs, "nn"]:
        path = model_config_fixture(config)
        if path is None:
            raise AsmError(f"unknown model config {config!r}: shipped configs are {', '.join(shipped_model_configs())}")
        paths.append(path)
    with session_scope() as session:
        apply_fixtures(session, paths)
    reporter.event(f"set-up: {p['fixture']} ({p['free_parameters']} free parameters), model configs "
               f"{', '.join([*configs, 'nn'])}")
    if p["request"]["synth"] == "amsynth":
        _import_factory_presets(reporter)


def _import_factory_presets(reporter: Reporter) -> None:
    with session_scope() as session:
        synth = get_synth(session, "amsynth")
        have = session.scalar(select(func.count()).where(Preset.synth_id == synth.id, Preset.origin == "factory"))
        if have:
            return
        files = [Path(f) for f in sorted(glob(AMSYNTH_BANKS))]
        if not files:
            raise AsmError(f"no amsynth factory banks at {AMSYNTH_BANKS}: make synths installs amsynth")
        import_presets(session, synth, files, origin="factory")
    reporter.event(f"imported amsynth's factory presets from {len(files)} banks")


def build_dataset(p: dict, workers, reporter: Reporter) -> str:
    from asm.data.generate import generate_dataset
    from asm.data.settings import DatasetSettings

    name = p["dataset"]["name"]
    settings = DatasetSettings(**{k: v for k, v in p["dataset"]["settings"].items() if k != "synth_version"})

    result = generate_dataset(name, settings, workers=workers, reporter=reporter)
    outcome = result["run"]["outcome"]
    reporter.event(f"dataset {name}: {result['size']:,} examples ({outcome})")
    return name


def build_models(p: dict, dataset: str, device: str, reporter: Reporter) -> tuple[dict[str, str], str]:
    from asm.models.training import train_model

    out: dict[str, str] = {}
    todo = [*p["models"], {"config": "nn", "name": f"{dataset}-nn", "train": p["models"][0]["train"]
                            if p["models"] else {"seed": p["request"]["seed"]}}]
    for m in todo:
        name = m["name"]
        with session_scope() as session:
            row = session.scalar(select(Model).where(Model.name == name))
            status = row.status if row is not None else None
        if status == "complete":
            reporter.event(f"model {name}: reused")
        else:
            train = m["train"]
            if status is None:
                result = train_model(m["config"], dataset, epochs=train.get("epochs"),
                                     batch_size=train.get("batch_size"), patience=train.get("patience"),
                                     device=device, seed=train.get("seed", 0), name=name, reporter=reporter)
            else:
                result = train_model(m["config"], dataset, device=device, resume=name, reporter=reporter)
            reporter.event(f"model {name}: {result.get('epochs', 0)} epochs in {result['seconds']:.0f} s")
        out[m["config"]] = name
    nn = out.pop("nn")
    return out, nn


def build_proxy(p: dict, dataset: str, device: str, reporter: Reporter) -> str | None:
    """Train (or reuse, or resume) the plan's proxy; None when the plan has none."""
    from asm.proxy.train import train_proxy
    from asm.registry.models import Proxy

    spec = p.get("proxy")
    if not spec:
        return None
    name = spec["name"]
    with session_scope() as session:
        row = session.scalar(select(Proxy).where(Proxy.name == name))
        status = row.status if row is not None else None
    if status == "complete":
        reporter.event(f"proxy {name}: reused")
        return name
    train = spec["train"]
    if status is None:
        result = train_proxy(spec["config"], dataset, epochs=train["epochs"], batch_size=train["batch_size"],
                             patience=train["patience"], device=device, seed=train["seed"], name=name,
                             reporter=reporter)
    else:
        result = train_proxy(spec["config"], dataset, device=device, resume=name, reporter=reporter)
    reporter.event(f"proxy {name}: {result.get('epochs', 0)} epochs in {result['seconds']:.0f} s")
    return name


# ---- 4: targets -------------------------------------------------------------------------------------

def collect_targets(p: dict, dataset: str) -> list[Target]:
    from asm.data.torch_dataset import ShardDataset

    sets = p["target_sets"]
    ds = ShardDataset(dataset, "test")
    sr = ds.sample_rate
    out: list[Target] = []
    factory: list[int] = []
    for i in range(len(ds)):
        if len([t for t in out if t.set == "test"]) < sets.get("test", 0):
            out.append(Target("test", f"{dataset}#{ds.position(i)}", f"test #{ds.position(i)}", ds.audio(i),
                              ds.notes(i), ds.params(i).astype(np.float64), ds.position(i)))
        if "factory" in sets and ds.source(i) >= 0 and len(factory) < sets["factory"]:
            factory.append(i)
    for i in factory:
        out.append(Target("factory", f"{dataset}#{ds.position(i)}", f"factory preset #{ds.source(i)}",
                          ds.audio(i), ds.notes(i), ds.params(i).astype(np.float64), ds.position(i)))
    ds.close()
    if "ood" in sets:
        req = p["request"]
        directory = Path(req["ood_dir"]) if req.get("ood_dir") else None
        for t in load_ood_targets(req["mode"], directory)[: sets["ood"]]:
            out.append(Target("ood", f"ood/{t.name}", f"{t.instrument} ({t.family})", t.audio(sr), list(t.notes)))
    return out


# ---- 5: methods ---------------------------------------------------------------------------------------

class Evaluator:
    """Answers targets with every method and stores the results of one run."""

    def __init__(self, p: dict, prepared: Prepared, writer, pool, spec, reporter: Reporter):
        self.p, self.prepared, self.writer, self.pool, self.spec = p, prepared, writer, pool, spec
        self.reporter = reporter
        self.space = spec.space
        self.sr = int(spec.sample_rate)
        self.seed = int(p["request"]["seed"])
        self._estimators: dict[str, object] = {}

    def estimator(self, name: str):
        if name not in self._estimators:
            from asm.models.estimator import load_estimator
            from asm.registry.db import session_scope

            with session_scope() as session:
                est = load_estimator(session, name)
            est.check_space(self.space, self.spec.name)
            self._estimators[name] = est
        return self._estimators[name]

    def methods(self) -> list[str]:
        return list(self.p["methods"])

    def _param_scores(self, values: np.ndarray, truth: np.ndarray | None) -> tuple[float | None, float | None]:
        if truth is None:
            return None, None

        free = [{"n_values": p.n_values} for p in self.space.free]
        mae, acc = parameter_scores(values[None], truth[None], free)
        return (None if np.isnan(mae[0]) else float(mae[0])), (None if np.isnan(acc[0]) else float(acc[0]))

    def _store(self, target: Target, method: str, values: np.ndarray | None, audio, renders: int, seconds: float,
               curve=None, model_id=None, extra=None) -> None:
        from asm.bench.noisiness import noisiness_extra

        mae, acc = self._param_scores(values, target.truth) if values is not None else (None, None)
        self.writer.add(method=method, target_set=target.set, target=target.key, audio=audio, sample_rate=self.sr,
                        target_audio=target.audio, notes=target.notes,
                        values=None if values is None else values.tolist(), param_mae=mae, param_accuracy=acc,
                        renders=renders, seconds=seconds, curve=curve, model_id=model_id,
                        example_index=target.example_index,
                        extra={"target_label": target.label, **noisiness_extra(target.audio, audio, self.sr),
                               **(extra or {})})

    def _render(self, values: np.ndarray, targets: list[Target]) -> list:
        durations = {len(t.audio) for t in targets}
        if len(durations) == 1:
            return self.pool.render(values, [t.notes for t in targets], durations.pop() / self.sr, free=True,
                                    per_row_notes=True)
        return [self.pool.render(values[i : i + 1], t.notes, len(t.audio) / self.sr, free=True)[0]
                for i, t in enumerate(targets)]

    def point_methods(self, targets: list[Target]) -> None:
        """random, nn and each model: one answer per target, rendered in batches."""
        batches = [("random", None)] + [("nn", self.prepared.nn_model)] + [
            (f"model:{c}", n) for c, n in self.prepared.models.items()]
        for method, model in batches:
            if method not in self.methods():
                continue
            for lo in range(0, len(targets), 32):
                chunk = targets[lo : lo + 32]
                t0 = time.perf_counter()
                if model is None:
                    values = np.stack([self.space.random_free(_seed_for(self.seed, "random", t.set, t.key), 1)[0]
                                       for t in chunk])
                    model_id = None
                else:
                    est = self.estimator(model)
                    values = est.candidates([t.audio for t in chunk], k=1, seed=self.seed)[:, 0]
                    values = self.space.quantise_free(values)
                    model_id = est.model_id
                audio = self._render(values, chunk)
                each = (time.perf_counter() - t0) / len(chunk)
                for t, v, a in zip(chunk, values, audio):
                    self._store(t, method, v, a, 1, each, model_id=model_id)
                    self.reporter.advance()

    def search_methods(self, targets: list[Target]) -> None:
        """The searches, target by target, each with its recipe and the same render budget."""
        from asm.search.config import load_search_settings

        budget = self.p["search"]["budget"]
        limit = self.p["search"]["time_limit"]
        with session_scope() as session:
            recipes = {m: load_search_settings(session, r).with_limits(budget, limit)
                       for m, (_, r) in METHOD_RECIPES.items()}
        estimator = self._seed_estimators()
        screen = self._proxy_screen()
        neighbours = DatasetNeighbours(self.prepared.dataset, "train")
        factory = self._training_factory_presets()
        for t in targets:
            for method in SEARCH_METHODS:
                if method not in self.methods():
                    continue
                how, _ = METHOD_RECIPES[method]
                seeded = how in ("hybrid", "gradient", "cmaes")
                result = match_target(t.audio, t.notes, self.spec, how, recipes[method], pool=self.pool,
                                      estimator=estimator if seeded else None,
                                      neighbours=neighbours if seeded else None,
                                      factory=factory if seeded else None, seed=self.seed,
                                      proxy=screen if how == "proxy" else None)
                self._store(t, method, np.asarray(result.values), result.audio, result.renders, result.seconds,
                            curve=result.curve, extra={"best_source": result.best_source,
                                                        "stopped": result.stopped})
                self.reporter.advance()

    def rerender_floors(self, targets: list[Target]) -> None:
        """Measure each target set's re-render floor once (``asm.bench.rerender_floor``) and note it
        on the set's rows: the true presets where the set has them, else each target's best match."""
        from asm.bench.config import METHOD_RECIPES
        from asm.bench.rerender_floor import FLOOR_KEY, deterministic_floor, floor_text, measure_floor
        from asm.registry.db import session_scope
        from asm.runs import load_run
        from asm.search.config import load_search_settings

        with session_scope() as session:
            renders = load_search_settings(session, METHOD_RECIPES["hybrid"][1]).rerenders_for(self.spec.kind)
        records = load_run(self.writer.run_id)[1] if renders > 1 else []
        for target_set in dict.fromkeys(t.set for t in targets):
            chosen = [t for t in targets if t.set == target_set]
            if renders <= 1:
                floor = deterministic_floor()
            elif all(t.truth is not None for t in chosen):
                floor = measure_floor(self.pool, [(t.truth, t.notes, len(t.audio) / self.sr) for t in chosen],
                                      self.sr, renders, "target presets")
            else:
                best = _best_matches([r for r in records if r["target_set"] == target_set])
                presets = [(best[t.key], t.notes, len(t.audio) / self.sr) for t in chosen if t.key in best]
                floor = measure_floor(self.pool, presets, self.sr, renders, "best matches")
            if floor is not None:
                self.writer.annotate(target_set, {FLOOR_KEY: floor})
            self.reporter.event(f"{target_set}: {floor_text(floor)}")

    def _proxy_screen(self):
        if self.prepared.proxy is None:
            return None
        from asm.proxy.screen import ProxyScreen

        with session_scope() as session:
            return ProxyScreen.load(session, self.prepared.proxy, self.space, self.spec.name)

    def _seed_estimators(self):
        """The estimators that seed ``hybrid``, ``gradient`` and ``cmaes``: the models trained through the
        synth's twin (e.g. ``cnn-spectral``, the closest single guesses by ear) first, then a flow model when
        trained (K candidates), else the first other model."""
        models = self.prepared.models
        if not models:
            return None
        spectral = [name for config, name in models.items() if config in TWIN_TRAINED]
        others = [name for config, name in models.items() if config not in TWIN_TRAINED]
        lead = models.get("flow") or (others[0] if others else None)
        names = [*spectral, *([lead] if lead and lead not in spectral else [])]
        return tuple(self.estimator(name) for name in names)

    def _training_factory_presets(self) -> np.ndarray | None:
        """Free values of the factory presets in the training split (never a held-out target's)."""
        from asm.data.torch_dataset import ShardDataset

        ds = ShardDataset(self.prepared.dataset, "train")
        try:
            rows = [ds.params(i) for i in range(len(ds)) if ds.source(i) >= 0]
        finally:
            ds.close()
        if not rows:
            return None
        values = np.unique(np.round(np.stack(rows).astype(np.float64), 6), axis=0)
        return values


def _best_matches(records: list[dict]) -> dict[str, np.ndarray]:
    """target -> free values of its best answer by the headline metric (answers with values only)."""
    from asm.audio.metrics import HEADLINE_METRIC

    best: dict[str, tuple[float, list]] = {}
    for r in records:
        score = r["metrics"].get(HEADLINE_METRIC)
        if r["values"] is not None and score is not None and (r["target"] not in best or score < best[r["target"]][0]):
            best[r["target"]] = (score, r["values"])
    return {t: np.asarray(v, dtype=np.float64) for t, (_, v) in best.items()}


# ---- the whole run ---------------------------------------------------------------------------------------

def run_benchmark(req: BenchmarkRequest, *, preset: ScalePreset | None = None, workers: str | int = "auto",
                  device: str = "auto", reporter: Reporter | None = None, report: bool = True) -> dict:
    """Run one benchmark end to end; returns {"run_id", "summary", "report", "seconds", "notes"}."""
    from asm.bench.report import write_report
    from asm.bench.summary import summarise

    reporter = reporter or Reporter()
    started = time.perf_counter()
    p = plan(req, preset)
    configs = [m["config"] for m in p["models"]]
    apply_setup(p, configs, reporter)
    p = plan(req, preset)  # names are keyed by the registry's state after the set-up
    dataset = build_dataset(p, workers, reporter)
    models, nn = build_models(p, dataset, device, reporter)
    prepared = Prepared(dataset, models, nn, proxy=build_proxy(p, dataset, device, reporter))
    targets = collect_targets(p, dataset)
    with session_scope() as session:
        row = get_synth(session, req.synth)
        spec = spec_of(row, int(p["scale"]["sample_rate"]))
        synth_id = row.id
        from asm.data.store import get_dataset

        dataset_id = get_dataset(session, dataset).id
    notes = list(p["notes"])
    name = f"{req.mode} {req.synth} ({p['free_parameters']} free), {p['scale']['name']}, seed {req.seed}"
    with RenderPool(spec, workers) as pool, RunWriter(
            "benchmark", name, synth_id=synth_id, dataset_id=dataset_id, seed=req.seed,
            settings={"plan": p, "models": models, "nn_model": nn, "proxy": prepared.proxy},
            summarise=lambda records: {"groups": summarise(records)}) as writer:
        ev = Evaluator(p, prepared, writer, pool, spec, reporter)
        methods = ev.methods()
        stage = f"matching {len(targets)} targets x {len(methods)} methods"
        reporter.start(stage, len(targets) * len(methods))
        try:
            ev.point_methods(targets)
            ev.search_methods(targets)
        finally:
            reporter.finish(stage)
        ev.rerender_floors(targets)
        run_id = writer.run_id
    path = write_report(run_id) if report else None
    from asm.bench.summary import reach_summary

    _, records = load_run(run_id)
    return {"run_id": run_id, "summary": summarise(records), "reach": reach_summary(records),
            "report": str(path) if path else None,
            "seconds": time.perf_counter() - started, "notes": notes, "plan": p}
