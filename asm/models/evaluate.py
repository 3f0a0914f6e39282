"""``test-model``: score a model on a split of its dataset, in parameter space and by ear.

Parameter scores compare the point estimate with the true preset (continuous MAE, discrete
accuracy). Audio scores render the predicted preset with the **same notes** the example played
(one note or the whole polyphonic chunk) and compare it with the stored target audio using
``asm.audio.metrics.REPORT_METRICS``; a prediction that renders silent or non-finite gets the
metric's documented worst value, never NaN. Every example's scores are stored as ``result`` rows of
one ``run`` (kind ``test-model``) linked to the model and dataset, through ``asm.runs.RunWriter``;
the first ``MEDIA_EXAMPLES`` rows also keep the target's and the prediction's audio (so the
report, ``asm report RUN``, has players for them).
"""

from __future__ import annotations

import time

import numpy as np

from asm.data.store import get_dataset
from asm.errors import AsmError
from asm.models.scoring import parameter_scores
from asm.progress import Reporter
from asm.registry.db import session_scope
from asm.registry.synth_loader import spec_of
from asm.registry.synths import space_of
from asm.render import RenderPool
from asm.runs import RunWriter

BATCH = 64
MEDIA_EXAMPLES = 32  # examples stored with audio (the report draws 32 targets per set)


def summarise(values: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Mean and median of each score (NaN-free arrays; empty -> omitted)."""
    out = {}
    for key, arr in values.items():
        arr = np.asarray(arr, dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if arr.size:
            out[key] = {"mean": float(arr.mean()), "median": float(np.median(arr)), "n": int(arr.size)}
    return out


def test_model(ref: str, split: str = "test", limit: int | None = None, workers: str | int = "auto",
               reporter: Reporter | None = None) -> dict:
    """Score model ``ref`` on ``split``; progress: one stage ``scoring <model>`` counting examples."""
    from asm.audio.metrics import REPORT_METRICS
    from asm.data.torch_dataset import ShardDataset
    from asm.models.estimator import load_estimator

    if limit is not None and limit < 1:
        raise AsmError("--limit must be at least 1")
    with session_scope() as session:
        est = load_estimator(session, ref)
        from asm.registry.models import Model

        row = session.get(Model, est.model_id)
        dataset_name, synth_row = row.dataset.name, row.synth
        space = space_of(synth_row)
        est.check_space(space, synth_row.name)
        spec = spec_of(synth_row, est.sample_rate)
        config_name = row.config.name
    ds = ShardDataset(dataset_name, split)
    n = len(ds) if limit is None else min(limit, len(ds))
    if n == 0:
        raise AsmError(f"split {split!r} of dataset {dataset_name} is empty")
    reporter = reporter or Reporter()
    stage = f"scoring {est.name}"
    started = time.perf_counter()
    scores: dict[str, list] = {m: [] for m in REPORT_METRICS}
    predictions, truths, notes_all, media, target_media = [], [], [], [], []
    reporter.start(stage, n)
    with RenderPool(spec, workers, stall_timeout=120) as pool:
        for start in range(0, n, BATCH):
            idx = list(range(start, min(n, start + BATCH)))
            import torch

            mel = torch.from_numpy(np.stack([ds.features(i) for i in idx]))
            pred = est.candidates_from_mel(mel, k=1)[:, 0]
            d, rendered, targets = score_predictions(ds, idx, pred, space, pool, return_audio=True)
            for m in REPORT_METRICS:
                scores[m].extend(d[m].tolist())
            keep = max(0, MEDIA_EXAMPLES - len(media))
            media.extend(rendered[:keep])
            target_media.extend(targets[:keep])
            predictions.append(pred)
            truths.append(np.stack([ds.params(i) for i in idx]))
            notes_all.extend(ds.notes(i) for i in idx)
            reporter.update(idx[-1] + 1, stage=stage)
    reporter.finish(stage)
    predicted, truth = np.concatenate(predictions), np.concatenate(truths)
    mae, accuracy = parameter_scores(predicted, truth, est.free_parameters)
    seconds = time.perf_counter() - started
    summary = summarise({**{m: np.array(v) for m, v in scores.items()}, "param_mae": mae, "param_accuracy": accuracy})
    with session_scope() as session:
        dataset_id = ds_id(session, dataset_name)
    method = f"model:{config_name}"
    with RunWriter("test-model", f"test {est.name} on {dataset_name}/{split}", synth_id=synth_row.id,
                   model_id=est.model_id, dataset_id=dataset_id,
                   settings={"split": split, "limit": limit, "examples": n}) as writer:
        writer.add_many(
            {"method": method, "target_set": split, "target": f"{dataset_name}#{ds.position(i)}",
             "example_index": ds.position(i), "model_id": est.model_id, "sample_rate": ds.sample_rate,
             "metrics": {m: scores[m][i] for m in REPORT_METRICS},
             "audio": media[i] if i < len(media) else None,
             "target_audio": target_media[i] if i < len(media) else None,
             "target_label": f"{split} #{ds.position(i)}",
             "param_mae": mae[i], "param_accuracy": accuracy[i], "renders": 1, "seconds": seconds / n,
             "values": predicted[i], "notes": notes_all[i]}
            for i in range(n))
        writer.finish("complete", summary=summary)
        run_id = writer.run_id
    return {"run_id": run_id, "model": est.name, "model_id": est.model_id, "arch": est.arch,
            "dataset": dataset_name, "split": split, "examples": n, "seconds": round(seconds, 3),
            "summary": summary}


def score_predictions(ds, indices, predicted: np.ndarray, space, pool, return_audio: bool = False):
    """Audio metrics of free-parameter predictions for examples ``indices`` of a ShardDataset: each
    rendered with the example's own notes and compared with its stored audio (with
    ``return_audio``: also the renders, None where unusable, and the targets). A features-only dataset has none: its
    targets are rendered again from the stored (exact float32) presets and notes, in the same pool
    call (bit-identical for a deterministic synth such as asm-sub)."""
    from asm.audio.metrics import REPORT_METRICS, distances

    notes = [ds.notes(i) for i in indices]
    values = space.full(predicted)
    if not ds.has_audio:
        truth = space.full(np.stack([ds.params(i) for i in indices]).astype(np.float64))
        values, notes = np.concatenate([values, truth]), notes + notes
    audio = pool.render(values, notes, ds.settings.duration, per_row_notes=True)
    if ds.has_audio:
        target = np.stack([ds.audio(i) for i in indices])
    else:
        audio, rerendered = audio[: len(indices)], audio[len(indices):]
        if any(a is None for a in rerendered):
            raise AsmError(f"a target of dataset {ds.name} crashed the synth when rendered again")
        target = np.stack(rerendered)
    rendered = np.stack([a if a is not None else np.zeros_like(target[0]) for a in audio])
    scores = distances(rendered, target, ds.sample_rate, REPORT_METRICS)
    return (scores, list(audio), list(target)) if return_audio else scores


def ds_id(session, name: str) -> int:
    return get_dataset(session, name).id
