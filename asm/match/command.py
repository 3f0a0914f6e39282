"""``asm match`` from options to files and rows: resolve synth, recipe, model and dataset; read the
target; run the method; write the outputs; store the result.

Everything the user can get wrong is checked before the first render (one AsmError line, nothing
written or stored): the target file, the notes and their range, the synth, the model (and that it
was trained for this synth and lock set), the dataset, the output directory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
from sqlalchemy import select

from asm.audio.io import parse_crop, target_frames
from asm.data.store import get_dataset
from asm.errors import AsmError
from asm.match import outputs
from asm.match.pipeline import METHODS, STALL_TIMEOUT, match_target
from asm.match.target import parse_note_option, prepare_target
from asm.match.timings import StageTimes
from asm.midi.mode import Mode
from asm.progress import Reporter
from asm.registry.db import session_scope
from asm.registry.models import Dataset, Model, Result, Run
from asm.registry.synth_loader import render_defaults, spec_of
from asm.registry.synths import factory_presets, get_synth
from asm.render import RenderPool
from asm.search.seeding import DatasetNeighbours


@dataclass
class MatchOptions:
    target: Path
    synth: str = "asm-sub"
    method: str | None = None  # None: the best available
    model: str | None = None
    dataset: str | None = None
    search: str = "asm"
    budget: int | None = None
    time_limit: float | None = None
    note: str | None = "auto"
    midi: Path | None = None
    seed: int = 0
    out_dir: Path | None = None
    workers: int | str = "auto"
    crop: str | tuple[float, float | None] | None = None  # START:END seconds of the target file
    proxy: str | None = None  # a trained proxy (name or #id); None: the synth's newest (methods proxy, hybrid)


def _load_estimator(session, ref):
    from asm.models.estimator import load_estimator

    return load_estimator(session, ref)


def best_model(session, synth_row, space, poly: bool = False):
    """The trained model to use by default for this synth and lock set, or None.

    Models trained on data of the target's mode (mono or poly) come first; among them, those with
    ``test-model`` results rank by their mean multi-resolution STFT distance, the others follow,
    newest first."""
    rows = list(session.scalars(select(Model).where(
        Model.synth_id == synth_row.id, Model.status == "complete", Model.arch != "nn",
        Model.free_signature == space.free_signature(), Model.lock_signature == space.lock_signature())))
    if not rows:
        return None

    def score(m):
        vals = [r.metrics.get("mr-stft") for r in session.scalars(
            select(Result).join(Run).where(Result.model_id == m.id, Run.kind == "test-model"))]
        vals = [v for v in vals if isinstance(v, (int, float))]
        other_mode = m.dataset is None or m.dataset.mode != Mode.of(poly)
        return (other_mode, 0, float(np.mean(vals)), 0) if vals else (other_mode, 1, 0.0, -m.id)

    return min(rows, key=score)


def find_dataset(session, synth_row, space, name: str | None, model_row=None, poly: bool = False):
    """The dataset to take neighbours from: ``name``, else the model's, else the newest complete
    dataset of this synth and lock set (of the target's mode); None when there is none."""
    def usable(row) -> bool:
        return (row.status == "complete" and row.synth_id == synth_row.id
                and row.free_signature == space.free_signature() and row.lock_signature == space.lock_signature())

    if name is not None:
        row = get_dataset(session, name)
        if row.synth_id != synth_row.id:
            raise AsmError(f"dataset {name} was rendered by {row.synth.name}, not {synth_row.name}")
        if row.status != "complete":
            raise AsmError(f"dataset {name} is incomplete; finish it with its generate-dataset command")
        if not usable(row):
            raise AsmError(f"dataset {name} was made with other locks on {synth_row.name}; its presets cannot seed")
        return row
    if model_row is not None and model_row.dataset is not None and usable(model_row.dataset):
        return model_row.dataset
    rows = [r for r in session.scalars(select(Dataset).where(Dataset.synth_id == synth_row.id)
                                       .order_by(Dataset.id.desc())) if usable(r)]
    mode = Mode.of(poly)
    rows.sort(key=lambda r: r.mode != mode)  # stable: newest of the right mode first
    return rows[0] if rows else None


_NEIGHBOURS: dict[tuple, object] = {}


def neighbours_for(row):
    """A ``DatasetNeighbours`` index, cached per dataset for this process."""
    key = (row.id, row.name, len(row.shards))
    if key not in _NEIGHBOURS:
        _NEIGHBOURS.clear()
        _NEIGHBOURS[key] = DatasetNeighbours(row.name, "train")
    return _NEIGHBOURS[key]


def _polyphonic(notes) -> bool:
    return any(b.start < a.end - 1e-6 for a, b in pairwise(notes))


def _start_pool(spec, workers, times: StageTimes) -> Future:
    """Start the render workers in a thread, so that the search settings, the target's analysis, the
    model and the neighbour index load meanwhile (the workers' start is most of a match's fixed cost)."""

    def start():
        with times.stage("pool_start"):
            return RenderPool(spec, workers, stall_timeout=STALL_TIMEOUT)

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asm-pool-start")
    try:
        return executor.submit(start)
    finally:
        executor.shutdown(wait=False)


def _discard_pool(future: Future) -> None:
    """Close the pool of ``future`` as soon as it is up, without waiting here (a user error was found
    while it started; that error is what the caller raises)."""

    def close(done: Future) -> None:
        if not done.cancelled() and done.exception() is None:
            done.result().close()

    future.add_done_callback(close)


def _check_options(opts: MatchOptions) -> None:
    """Refuse a bad method, budget or time limit before anything starts."""
    if opts.method is not None and opts.method not in METHODS:
        raise AsmError(f"unknown method {opts.method!r}: choose from {', '.join(METHODS)}")
    if opts.budget is not None and opts.budget < 1:
        raise AsmError(f"--budget must be at least 1 render, got {opts.budget}")
    if opts.time_limit is not None and not opts.time_limit > 0:
        raise AsmError(f"--time-limit must be positive, got {opts.time_limit}")


def run_match(opts: MatchOptions, reporter: Reporter | None = None, *,
              on_start: Callable[[dict], None] | None = None, on_batch: Callable | None = None) -> dict:
    """Run ``asm match``; returns the match.json document (with the registry ids and ``timings``).

    Progress: one stage ``matching: <method>`` counting renders (figure: best score so far).
    Consumers that need the search's own state (the web app draws the current best) also get
    ``on_start(context)`` before the first render and ``on_batch(archive)`` after every batch; an
    exception raised there stops the match (nothing is stored).

    The render workers start (in a thread) as soon as the synth and the sample rate are known and
    the target file's header has been checked; torch, the target's analysis, the model and the
    neighbour index load while they do."""
    times = StageTimes()
    _check_options(opts)
    crop = parse_crop(opts.crop) if isinstance(opts.crop, str) else opts.crop
    started = time.perf_counter()
    target_path = Path(opts.target)
    poly = False
    if opts.midi is not None and Path(opts.midi).is_file():
        from asm.midi.notes import load_midi

        poly = _polyphonic(load_midi(opts.midi))
    t0 = time.perf_counter()
    with session_scope() as session:
        synth_row = get_synth(session, opts.synth)
        space = spec_of(synth_row).space
        if space.n_free == 0:
            raise AsmError(f"every parameter of {synth_row.name} is locked: nothing to search")
        model_row = None
        if opts.model is not None:
            from asm.models.estimator import find_model

            model_row = _usable_model(session, find_model(session, opts.model), space, synth_row)
        elif opts.method in (None, "model", "hybrid"):
            model_row = best_model(session, synth_row, space, poly)
        method = opts.method or "hybrid"
        if method == "model" and model_row is None:
            raise AsmError(f"method model needs a trained model: none is trained for {synth_row.name} with its "
                           "current locks (train one with asm train-model, or give --model)")
        sample_rate = int(model_row.sample_rate) if model_row is not None else render_defaults(synth_row).sample_rate
        spec = spec_of(synth_row, sample_rate)
        target_frames(target_path, crop)  # a missing, unreadable or too long file: before any worker starts
        parse_note_option(opts.note)
        times.add("registry", time.perf_counter() - t0)
        pool_future = _start_pool(spec, opts.workers, times)
        try:
            prepared = _prepare(session, opts, times, synth_row, space, spec, method, model_row, poly, crop)
        except BaseException:
            _discard_pool(pool_future)
            raise
    try:
        estimator = neighbours = None
        if prepared.model_id is not None:
            with times.stage("model_load"), session_scope() as session:
                estimator = _load_estimator(session, prepared.model_id)
                estimator.check_space(space, synth_row.name)
        if prepared.dataset is not None:
            from asm.data.store import get_dataset

            with times.stage("neighbour_index"), session_scope() as session:
                neighbours = neighbours_for(get_dataset(session, prepared.dataset))
            prepared.context["neighbour_index"] = "stored" if neighbours.loaded else "built"
        if not pool_future.done():  # spare time while the workers start: the output writers' imports
            with times.stage("warm_imports"):
                _import_output_writers()
        else:  # the workers were quicker: import them beside the search, whose renders run in the workers
            threading.Thread(target=_import_output_writers, name="asm-warm-imports", daemon=True).start()
        with times.stage("pool_wait"):
            pool = pool_future.result()
    except BaseException:
        _discard_pool(pool_future)
        raise
    return _match_and_write(opts, prepared, pool, estimator, neighbours, times, started, reporter or Reporter(),
                            on_start, on_batch)


def _import_output_writers() -> None:
    """Import what writing the outputs needs (matplotlib is ~1 s), so it is not paid after the search."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401


@dataclass
class _Prepared:
    """What ``run_match`` resolved before the first render."""

    settings: object
    target: object
    context: dict
    factory: object
    out_dir: Path
    model_id: int | None
    dataset: str | None
    spec: object
    proxy: object = None  # asm.proxy.screen.ProxyScreen


def _prepare(session, opts: MatchOptions, times: StageTimes, synth_row, space, spec, method: str, model_row, poly: bool,
             crop) -> _Prepared:
    """Search settings, the target and its notes, the dataset, factory presets and the output directory
    (every remaining user error), while the render workers start."""
    from asm.search.config import load_search_settings

    with times.stage("registry"):
        settings = load_search_settings(session, opts.search).with_limits(opts.budget, opts.time_limit)
    with times.stage("target"):
        target = prepare_target(Path(opts.target), spec.sample_rate, synth_row, opts.note, opts.midi, crop)
    t0 = time.perf_counter()
    dataset_row = None
    nn_model = model_row is not None and model_row.arch == "nn"
    if method in ("nn", "hybrid") and not (method == "nn" and nn_model):
        dataset_row = find_dataset(session, synth_row, space, opts.dataset, model_row,
                                   poly or _polyphonic(target.notes))
        if method == "nn" and dataset_row is None:
            raise AsmError(f"method nn needs a dataset of {synth_row.name} with its current locks "
                           "(--dataset NAME; make one with asm generate-dataset)")
    elif opts.dataset is not None:
        find_dataset(session, synth_row, space, opts.dataset)  # still refuse a bad name
    factory = factory_presets(session, synth_row, space) if method == "hybrid" else None
    proxy = _find_proxy(session, opts, synth_row, space, spec, method)
    out_dir = outputs.prepare_out_dir(Path(opts.out_dir) if opts.out_dir else outputs.default_out_dir(Path(opts.target)))
    context = {
        "method": method,
        "search": opts.search,
        "settings": settings.model_dump(mode="json"),
        "model": model_row.name if model_row is not None else None,
        "model_id": model_row.id if model_row is not None else None,
        "dataset": dataset_row.name if dataset_row is not None else None,
        "dataset_id": dataset_row.id if dataset_row is not None else None,
        "proxy": proxy.name if proxy is not None else None,
        "seed": int(opts.seed),
        "budget": settings.budget,
        "time_limit": settings.time_limit,
    }
    if crop is not None:
        context["crop"] = [crop[0], crop[1]]
    times.add("registry", time.perf_counter() - t0)
    return _Prepared(settings, target, context, factory, out_dir, model_row.id if model_row is not None else None,
                     dataset_row.name if dataset_row is not None else None, spec, proxy)


def _find_proxy(session, opts: MatchOptions, synth_row, space, spec, method: str):
    """The proxy that screens the search (a ``ProxyScreen``), or None. ``proxy`` needs one: ``--proxy``, else
    the synth's newest trained for its current locks. ``hybrid`` is screened only when ``--proxy`` names one
    (and the synth has no twin: ``asm.match.pipeline.uses_proxy``); other methods refuse ``--proxy``."""
    from asm.match.pipeline import uses_proxy
    from asm.proxy.screen import ProxyScreen, latest_proxy

    if opts.proxy is None and method != "proxy":
        return None
    if opts.proxy is not None:
        if method not in ("proxy", "hybrid"):
            raise AsmError(f"--proxy screens methods proxy and hybrid, not {method}")
        if not uses_proxy(method, spec, True):
            raise AsmError(f"{synth_row.name} has a differentiable twin: hybrid refines with it and takes no --proxy")
        return ProxyScreen.load(session, opts.proxy, space, synth_row.name)
    row = latest_proxy(session, synth_row, space)
    if row is None:
        if method == "proxy":
            raise AsmError(f"method proxy needs a trained proxy: none is trained for {synth_row.name} with its "
                           "current locks (train one with asm train-proxy, or give --proxy)")
        return None
    return ProxyScreen.load(session, row.id, space, synth_row.name)


def _match_and_write(opts: MatchOptions, prepared: _Prepared, pool, estimator, neighbours, times: StageTimes,
                     started: float, reporter: Reporter, on_start=None, on_batch=None) -> dict:
    """The search on the started pool (closed afterwards), then the files, the rows and match.json."""
    target, context, settings, spec = prepared.target, prepared.context, prepared.settings, prepared.spec
    try:
        stage = f"matching: {context['method']}" + (f" ({context['model']})" if context.get("model") else "")
        if on_start is not None:
            on_start({**context, "notes": target.notes, "out_dir": str(prepared.out_dir), "budget": settings.budget})
        reporter.start(stage, settings.budget)

        def batch(archive) -> None:
            reporter.update(archive.renders, stage=stage, best=float(archive.best))
            if on_batch is not None:
                on_batch(archive)

        result = match_target(target.audio, target.notes, spec, context["method"], settings, pool=pool,
                              estimator=estimator, neighbours=neighbours, factory=prepared.factory, seed=opts.seed,
                              on_batch=batch, proxy=prepared.proxy)
        reporter.finish(stage)
    finally:
        with times.stage("pool_close"):
            pool.close()
    for name, seconds in result.timings.items():
        times.add(name, seconds)
    out_dir = prepared.out_dir
    target_path = Path(opts.target)
    with session_scope() as session:
        synth_row = get_synth(session, opts.synth)
        name = f"{target_path.stem} match"
        with times.stage("outputs"):
            files = outputs.write_files(out_dir, result, target, synth_row, spec.space, name)
            doc = outputs.match_document(result, target, synth_row, spec.space, context, files)
            outputs.finish(out_dir, doc)
        with times.stage("store"):
            ids = outputs.store(session, result, target, synth_row, context, files)
    doc.update(ids)
    doc["events"] = list(result.events)
    doc["wall_seconds"] = round(time.perf_counter() - started, 3)  # everything, render pool start included
    doc["timings"] = times.as_dict()
    outputs.finish(out_dir, doc)
    return doc


def _usable_model(session, row, space, synth_row):
    """``row`` if it is complete and made for this synth and lock set (checked on the row, without
    loading the network); otherwise the estimator's own check raises its one-line error."""
    if (row.status == "complete" and row.synth_id == synth_row.id and row.free_signature == space.free_signature()
            and row.lock_signature == space.lock_signature()):
        return row
    estimator = _load_estimator(session, row.id)  # raises: unfinished
    estimator.check_space(space, synth_row.name)  # raises: another synth or other locks
    return row
