"""``test-proxy``: how well a proxy stands in for the synth, stored as a ``test-proxy`` run.

* ``l1``: mean absolute error between proxy and audio embeddings (standardised units) over the
  dataset's test split, beside ``l1_constant`` (the training median: the best input-free answer).
* ``mrr``: mean reciprocal rank, one-vs-all, as synth-proxy reports it: each held-out preset's
  proxy embedding ranks every preset's real embedding; the rank of its own render counts. Over
  the synth's factory presets (hand-made, never in a random dataset), rendered for real with the
  dataset's note; over the test split when the synth has none (``mrr_on`` says which).
* ``spearman``: rank correlation between proxy distance and the true audio distance (the
  headline metric between the two real renders) over seeded pairs of those presets.
"""

from __future__ import annotations

import numpy as np
import torch

from asm.errors import AsmError
from asm.progress import Reporter

PAIRS = 300


def mean_reciprocal_rank(pred: np.ndarray, truth: np.ndarray) -> float:
    """One-vs-all MRR: for row i, the rank of truth[i] among all truth rows by L1 distance to pred[i]."""
    d = np.abs(pred[:, None, :] - truth[None, :, :]).mean(axis=2)
    own = d[np.arange(len(d)), np.arange(len(d))]
    ranks = 1 + (d < own[:, None]).sum(axis=1)
    return float((1.0 / ranks).mean())


def test_proxy(ref: str, *, presets: int | None = None, seed: int = 0, workers: int | str = "auto",
               reporter: Reporter | None = None) -> dict:

    from asm.audio.features import FeatureSettings, logmel
    from asm.data.torch_dataset import ShardDataset
    from asm.proxy.embedding import embed_logmel
    from asm.proxy.train import load_proxy, split_arrays
    from asm.registry.db import session_scope
    from asm.registry.synth_loader import spec_of
    from asm.registry.synths import factory_presets
    from asm.runs import RunWriter

    reporter = reporter or Reporter()
    if presets is not None and presets < 2:
        raise AsmError(f"--presets must be at least 2, got {presets}")
    with session_scope() as session:
        network, meta, row = load_proxy(session, ref)
        ds_settings = dict(row.dataset.settings)
        sr = int(ds_settings["sample_rate"])
        spec = spec_of(row.synth, sr)
        if spec.space.free_signature() != row.free_signature or spec.space.lock_signature() != row.lock_signature:
            raise AsmError(f"proxy {row.name} was trained for other free parameters or locks of {row.synth.name} "
                           "than the registry has now")
        factory = factory_presets(session, row.synth, spec.space)
        info = {"proxy_id": row.id, "name": row.name, "synth_id": row.synth_id, "dataset_id": row.dataset_id,
                "dataset": row.dataset.name, "synth": row.synth.name}
    feats = FeatureSettings(**ds_settings.get("features", {}))
    std, mean = network.std, network.mean

    def z(e) -> np.ndarray:
        return ((torch.as_tensor(e) - mean) / std).numpy()

    def predict(inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return network.standardised(torch.as_tensor(inputs, dtype=torch.float32)).numpy()

    pitch = network.pitch_input
    test = split_arrays(info["dataset"], "test", pitch)
    if len(test) == 0:
        raise AsmError(f"dataset {info['dataset']} has no test examples")
    train = split_arrays(info["dataset"], "train", pitch)
    pred_test, true_test = predict(test.params), z(test.embeddings)
    l1 = float(np.abs(pred_test - true_test).mean())
    l1_constant = float(np.abs(true_test - np.median(z(train.embeddings), axis=0)).mean())
    rng = np.random.default_rng(seed)
    if len(factory) >= 2:
        if presets is not None and presets < len(factory):
            factory = factory[np.sort(rng.choice(len(factory), presets, replace=False))]
        keep, batch = _render_presets(spec, factory, ds_settings, workers, reporter)
        true = z(embed_logmel(logmel(batch, sr, feats)))
        inputs = factory[keep]
        if pitch:  # rendered with the dataset's note (_render_presets)
            from asm.proxy.pitch import with_pitch

            inputs = with_pitch(inputs, float(ds_settings.get("note", 60)))
        pred = predict(inputs)
        mrr_on, n_mrr = "factory", len(keep)
    else:
        keep = list(range(min(len(test), presets or len(test))))
        true, pred = true_test[keep], pred_test[keep]
        ds = ShardDataset(info["dataset"], "test")
        batch = np.stack([ds.audio(i) for i in keep])
        mrr_on, n_mrr = "test", len(keep)
    if n_mrr < 2:
        raise AsmError("fewer than 2 audible presets to rank")
    mrr = mean_reciprocal_rank(pred, true)
    spearman = _distance_spearman(pred, batch, sr, rng)
    summary = {"l1": l1, "l1_constant": l1_constant, "mrr": mrr, "mrr_on": mrr_on, "mrr_presets": n_mrr,
               "mrr_chance": float(np.mean(1.0 / np.arange(1, n_mrr + 1))), "spearman": spearman,
               "test_examples": len(test), "factory_in_training": ds_settings.get("presets", "random") != "random"}
    writer = RunWriter("test-proxy", info["name"], synth_id=info["synth_id"], dataset_id=info["dataset_id"],
                       seed=seed, settings={"proxy_id": info["proxy_id"], "proxy": info["name"], "presets": presets})
    summary = writer.finish("complete", summary=summary)
    return {"run_id": writer.run_id, "proxy": info["name"], "synth": info["synth"], **summary}


def _render_presets(spec, free: np.ndarray, ds_settings: dict, workers, reporter: Reporter):
    """Render ``free`` presets with the dataset's note: (positions of the audible ones, their audio)."""
    from asm.midi.notes import Note
    from asm.render import RenderPool

    sr = spec.sample_rate
    note = Note(int(ds_settings.get("note", 60)), int(ds_settings.get("velocity", 100)), 0.0,
                float(ds_settings.get("note_off", 1.5)))
    duration = float(ds_settings.get("duration", 2.0))
    stage = "rendering factory presets"
    reporter.start(stage, 1)
    with RenderPool(spec, workers) as pool:
        audio = pool.render(free, [note], duration, free=True)
    reporter.finish(stage)
    n = int(round(duration * sr))
    keep = [i for i, a in enumerate(audio) if a is not None and np.isfinite(a).all() and np.abs(a).max() > 1e-4]
    batch = np.zeros((len(keep), n), np.float32)
    for j, i in enumerate(keep):
        batch[j, : min(n, len(audio[i]))] = audio[i][:n]
    return keep, batch


def _distance_spearman(pred: np.ndarray, batch: np.ndarray, sr: int, rng: np.random.Generator) -> float:
    """Rank correlation between proxy distance and the headline distance of the real renders, over seeded pairs."""
    from scipy.stats import spearmanr

    from asm.audio.metrics import HEADLINE_METRIC, distances

    pairs = rng.integers(0, len(pred), size=(PAIRS, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    audio_d = np.array([distances(batch[a][None], batch[b], sr, (HEADLINE_METRIC,))[HEADLINE_METRIC][0]
                        for a, b in pairs])
    proxy_d = np.abs(pred[pairs[:, 0]] - pred[pairs[:, 1]]).mean(axis=1)
    return float(spearmanr(proxy_d, audio_d).statistic)
