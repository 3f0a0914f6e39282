"""``asm match`` from options to files and rows: resolve synth, recipe, model and dataset; read the
target; run the method; write the outputs; store the result.

Everything the user can get wrong is checked before the first render (one AsmError line, nothing
written or stored): the target file, the notes and their range, the synth, the model (and that it
was trained for this synth and lock set), the dataset, the output directory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
from sqlalchemy import select

from asm.errors import AsmError
from asm.match.pipeline import METHODS
from asm.progress import Reporter


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


def _load_estimator(session, ref):
    from asm.models.estimator import load_estimator

    return load_estimator(session, ref)


def best_model(session, synth_row, space, poly: bool = False):
    """The trained model to use by default for this synth and lock set, or None.

    Models trained on data of the target's mode (mono or poly) come first; among them, those with
    ``test-model`` results rank by their mean multi-resolution STFT distance, the others follow,
    newest first."""
    from asm.registry.models import Model, Result, Run

    rows = list(session.scalars(select(Model).where(
        Model.synth_id == synth_row.id, Model.status == "complete", Model.arch != "nn",
        Model.free_signature == space.free_signature(), Model.lock_signature == space.lock_signature())))
    if not rows:
        return None

    def score(m):
        vals = [r.metrics.get("mr-stft") for r in session.scalars(
            select(Result).join(Run).where(Result.model_id == m.id, Run.kind == "test-model"))]
        vals = [v for v in vals if isinstance(v, (int, float))]
        other_mode = m.dataset is None or m.dataset.mode != ("poly" if poly else "mono")
        return (other_mode, 0, float(np.mean(vals)), 0) if vals else (other_mode, 1, 0.0, -m.id)

    return min(rows, key=score)


def find_dataset(session, synth_row, space, name: str | None, model_row=None, poly: bool = False):
    """The dataset to take neighbours from: ``name``, else the model's, else the newest complete
    dataset of this synth and lock set (of the target's mode); None when there is none."""
    from asm.data.store import get_dataset
    from asm.registry.models import Dataset

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
    mode = "poly" if poly else "mono"
    rows.sort(key=lambda r: r.mode != mode)  # stable: newest of the right mode first
    return rows[0] if rows else None


_NEIGHBOURS: dict[tuple, object] = {}


def neighbours_for(row):
    """A ``DatasetNeighbours`` index, cached per dataset for this process."""
    from asm.search.seeding import DatasetNeighbours

    key = (row.id, row.name, len(row.shards))
    if key not in _NEIGHBOURS:
        _NEIGHBOURS.clear()
        _NEIGHBOURS[key] = DatasetNeighbours(row.name, "train")
    return _NEIGHBOURS[key]


def _polyphonic(notes) -> bool:
    return any(b.start < a.end - 1e-6 for a, b in pairwise(notes))


def run_match(opts: MatchOptions, reporter: Reporter | None = None) -> dict:
    """Run ``asm match``; returns the match.json document (with the registry ids).

    Progress: one stage ``matching: <method>`` counting renders (figure: best MR-STFT so far)."""
    from asm.match import outputs
    from asm.match.pipeline import match_target
    from asm.match.target import prepare_target
    from asm.registry.db import session_scope
    from asm.registry.models import Model
    from asm.registry.synths import get_synth
    from asm.search.config import load_search_settings
    from asm.search.seeding import factory_presets
    from asm.synth.defaults import render_defaults
    from asm.synth.loader import spec_of

    if opts.method is not None and opts.method not in METHODS:
        raise AsmError(f"unknown method {opts.method!r}: choose from {', '.join(METHODS)}")
    if opts.budget is not None and opts.budget < 1:
        raise AsmError(f"--budget must be at least 1 render, got {opts.budget}")
    if opts.time_limit is not None and not opts.time_limit > 0:
        raise AsmError(f"--time-limit must be positive, got {opts.time_limit}")
    started = time.perf_counter()
    target_path = Path(opts.target)
    poly = False
    if opts.midi is not None and Path(opts.midi).is_file():
        from asm.midi.notes import load_midi

        poly = _polyphonic(load_midi(opts.midi))
    with session_scope() as session:
        synth_row = get_synth(session, opts.synth)
        space = spec_of(synth_row).space
        if space.n_free == 0:
            raise AsmError(f"every parameter of {synth_row.name} is locked: nothing to search")
        settings = load_search_settings(session, opts.search).with_limits(opts.budget, opts.time_limit)
        estimator, model_row = None, None
        if opts.model is not None:
            estimator = _load_estimator(session, opts.model)
            estimator.check_space(space, synth_row.name)
            model_row = session.get(Model, estimator.model_id)
        elif opts.method in (None, "model", "hybrid"):
            model_row = best_model(session, synth_row, space, poly)
            if model_row is not None:
                estimator = _load_estimator(session, model_row.id)
                estimator.check_space(space, synth_row.name)
        method = opts.method or "hybrid"
        if method == "model" and estimator is None:
            raise AsmError(f"method model needs a trained model: none is trained for {synth_row.name} with its "
                           "current locks (train one with asm train-model, or give --model)")
        sample_rate = estimator.sample_rate if estimator is not None else render_defaults(synth_row).sample_rate
        spec = spec_of(synth_row, sample_rate)
        target = prepare_target(target_path, sample_rate, synth_row, opts.note, opts.midi)
        dataset_row = None
        nn_model = estimator is not None and estimator.arch == "nn"
        if method in ("nn", "hybrid") and not (method == "nn" and nn_model):
            dataset_row = find_dataset(session, synth_row, space, opts.dataset, model_row,
                                       poly or _polyphonic(target.notes))
            if method == "nn" and dataset_row is None:
                raise AsmError(f"method nn needs a dataset of {synth_row.name} with its current locks "
                               "(--dataset NAME; make one with asm generate-dataset)")
        elif opts.dataset is not None:
            find_dataset(session, synth_row, space, opts.dataset)  # still refuse a bad name
        factory = factory_presets(session, synth_row, space) if method == "hybrid" else None
        out_dir = outputs.prepare_out_dir(Path(opts.out_dir) if opts.out_dir else outputs.default_out_dir(target_path))
        context = {
            "method": method,
            "search": opts.search,
            "settings": settings.model_dump(mode="json"),
            "model": estimator.name if estimator is not None else None,
            "model_id": estimator.model_id if estimator is not None else None,
            "dataset": dataset_row.name if dataset_row is not None else None,
            "dataset_id": dataset_row.id if dataset_row is not None else None,
            "seed": int(opts.seed),
            "budget": settings.budget,
            "time_limit": settings.time_limit,
        }
        dataset_name = dataset_row.name if dataset_row is not None else None
    neighbours = None
    if dataset_name is not None:
        from asm.data.store import get_dataset

        with session_scope() as session:
            neighbours = neighbours_for(get_dataset(session, dataset_name))
    reporter = reporter or Reporter()
    stage = f"matching: {method}" + (f" ({context['model']})" if context.get("model") else "")
    reporter.start(stage, settings.budget)
    result = match_target(target.audio, target.notes, spec, method, settings, estimator=estimator,
                          neighbours=neighbours, factory=factory, seed=opts.seed, workers=opts.workers,
                          on_batch=lambda archive: reporter.update(archive.renders, stage=stage,
                                                                   best=float(archive.best)))
    reporter.finish(stage)
    with session_scope() as session:
        synth_row = get_synth(session, opts.synth)
        name = f"{target_path.stem} match"
        files = outputs.write_files(out_dir, result, target, synth_row, spec.space, name)
        doc = outputs.match_document(result, target, synth_row, spec.space, context, files)
        outputs.finish(out_dir, doc)
        ids = outputs.store(session, result, target, synth_row, context, files)
    doc.update(ids)
    doc["wall_seconds"] = round(time.perf_counter() - started, 3)  # everything, render pool start included
    outputs.finish(out_dir, doc)
    return doc
