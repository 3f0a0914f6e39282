"""A small but real benchmark run for report and results tests: asm-sub targets, real renders, real metrics."""

from __future__ import annotations

import time

import numpy as np

from asm.midi.notes import Note

SR = 16000
DURATION = 1.0


def parameter_errors(space, predicted: np.ndarray, truth: np.ndarray) -> tuple[float | None, float | None]:
    free = space.free
    cont = np.array([not p.discrete for p in free])
    mae = float(np.abs(predicted[cont] - truth[cont]).mean()) if cont.any() else None
    steps = np.array([max(p.n_values - 1, 1) for p in free], float)
    disc = ~cont
    acc = (float((np.round(predicted[disc] * steps[disc]) == np.round(truth[disc] * steps[disc])).mean())
           if disc.any() else None)
    return mae, acc


def build_run(n_targets: int = 3, seed: int = 0, name: str = "test run", search_budget: int = 24,
              poly: bool = False, floors: dict | None = None) -> int:
    """Store a benchmark-kind run: ``n_targets`` asm-sub test targets and three methods.

    * ``random``: one random preset;
    * ``nn``: the target's preset with its continuous values nudged (a near miss);
    * ``nsga2``: best of ``search_budget`` random presets in batches of 8, with its best-so-far curve.
    Plus one out-of-domain-like target set (``ood``) of a plain sine, with audio metrics only.
    Every row carries the noisiness of its target and match, as the benchmark stores it; ``floors``
    (target set -> re-render floor) are noted on the sets' rows as the benchmark notes them.
    """
    from asm.registry.db import session_scope
    from asm.registry.synth_loader import spec_of
    from asm.registry.synths import get_synth
    from asm.runs import RunWriter
    from asm.synth.host import open_synth

    with session_scope() as session:
        row = get_synth(session, "asm-sub")
        spec = spec_of(row, SR)
        synth_id = row.id
    synth = open_synth(spec)
    space = spec.space
    rng = np.random.default_rng(seed)
    notes = ([Note(60, 100, 0.0, 0.75), Note(64, 100, 0.0, 0.75), Note(67, 100, 0.0, 0.75)] if poly
             else [Note(57 + 3 * 0, 100, 0.0, 0.75)])
    with RunWriter("benchmark", name, synth_id=synth_id, seed=seed,
                   settings={"mode": "poly" if poly else "mono", "synth": "asm-sub", "scale": "test"}) as writer:
        w = _NoisinessWriter(writer)
        for t in range(n_targets):
            truth = space.random_free(rng, 1)[0]
            target = synth.render_free(truth, notes, DURATION)
            key = f"asm-sub-test#{t}"
            common = {"target_set": "test", "target": key, "sample_rate": SR, "target_audio": target,
                      "notes": notes, "example_index": t}
            # random
            t0 = time.perf_counter()
            guess = space.random_free(rng, 1)[0]
            audio = synth.render_free(guess, notes, DURATION)
            mae, acc = parameter_errors(space, guess, truth)
            w.add(method="random", audio=audio, values=guess, param_mae=mae, param_accuracy=acc, renders=1,
                  seconds=time.perf_counter() - t0, **common)
            # nn: a near miss
            t0 = time.perf_counter()
            near = space.quantise_free(np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1))
            audio = synth.render_free(near, notes, DURATION)
            mae, acc = parameter_errors(space, near, truth)
            w.add(method="nn", audio=audio, values=near, param_mae=mae, param_accuracy=acc, renders=1,
                  seconds=time.perf_counter() - t0, **common)
            # nsga2 stand-in: random search with a best-so-far curve
            t0 = time.perf_counter()
            from asm.audio.metrics import distance

            best, best_v, curve, renders = np.inf, None, [], 0
            for _ in range(search_budget // 8):
                cands = space.random_free(rng, 8)
                audios = np.stack([synth.render_free(c, notes, DURATION) for c in cands])
                scores = distance("mr-stft", audios, target, SR)
                for c, s in zip(cands, scores):
                    renders += 1
                    if s < best:
                        best, best_v = float(s), c
                        curve.append([renders, time.perf_counter() - t0, best])
            audio = synth.render_free(best_v, notes, DURATION)
            mae, acc = parameter_errors(space, best_v, truth)
            w.add(method="nsga2", audio=audio, values=best_v, param_mae=mae, param_accuracy=acc, renders=renders,
                  seconds=time.perf_counter() - t0, curve=curve, **common)
        # an out-of-domain target: a decaying sine (no parameters known)
        t = np.arange(int(DURATION * SR)) / SR
        sine = (0.5 * np.sin(2 * np.pi * 220 * t) * np.exp(-2 * t)).astype(np.float32)
        ood_notes = [Note(57, 100, 0.0, 0.75)]
        for method in ("random", "nn", "nsga2"):
            guess = space.random_free(rng, 1)[0]
            w.add(method=method, target_set="ood", target="sine-A3", sample_rate=SR, target_audio=sine,
                  audio=synth.render_free(guess, ood_notes, DURATION), notes=ood_notes, renders=1, seconds=0.01,
                  extra={"target_label": "decaying sine A3"})
        for target_set, floor in (floors or {}).items():
            from asm.bench.rerender_floor import FLOOR_KEY

            writer.annotate(target_set, {FLOOR_KEY: floor})
        run_id = w.run_id
    synth.close()
    return run_id


class _NoisinessWriter:
    """A ``RunWriter`` whose rows also carry the noisiness of target and match, as the benchmark's do."""

    def __init__(self, writer):
        self.writer = writer
        self.run_id = writer.run_id

    def add(self, **fields):
        from asm.bench.noisiness import noisiness_extra

        noise = noisiness_extra(fields["target_audio"], fields["audio"], fields["sample_rate"])
        return self.writer.add(**{**fields, "extra": {**noise, **(fields.get("extra") or {})}})


def report_audio(index) -> list:
    """The files the report's <audio> players point at (resolved against the report's directory)."""
    import re
    from pathlib import Path
    from urllib.parse import unquote

    index = Path(index)
    return [(index.parent / unquote(src)).resolve()
            for src in re.findall(r'<audio [^>]*src="([^"]+)"', index.read_text(encoding="utf-8"))]
