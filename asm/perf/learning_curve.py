"""``asm perf learning-curve``: one model config trained at several training-set sizes, scored on
the same held-out examples, to show what more data buys.

One features-only dataset holds the largest training set followed by the validation and test
examples, so every size is judged on identical held-out targets. The model at size N trains on
the first N training examples (``train_limit``), and is an ordinary registry model
(``lc-CONFIG-DATASET-nN``): a second run reuses finished models and resumes unfinished ones.
Scores: the best validation parameter loss (comparable with the constant predictor's) and the
median MR-STFT of the model's own prediction (no search) rendered against the test targets.
"""

from __future__ import annotations

from typing import Callable

from asm.errors import AsmError


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise AsmError(f"bad --sizes {text!r}: give training-set sizes such as 5000,20000,80000") from None
    if not sizes or sizes[0] < 1:
        raise AsmError(f"bad --sizes {text!r}: every size must be at least 1")
    return sizes


def curve_dataset(synth: str, sizes: list[int], val: int, test: int, duration: float, seed: int,
                  workers: int | str, event: Callable[[str], None]) -> str:
    """Generate (or resume, or reuse) the curve's dataset: max(sizes) train, then val, then test."""
    from pydantic import ValidationError

    from asm.audio.features import FeatureSettings
    from asm.data.generate import generate_dataset
    from asm.data.settings import DatasetSettings, auto_shard_size
    from asm.progress import MessageReporter
    from asm.registry.db import session_scope
    from asm.registry.synth_loader import render_defaults
    from asm.registry.synths import get_synth

    n_train = sizes[-1]
    total = n_train + val + test
    with session_scope() as session:
        row = get_synth(session, synth)
        defaults = render_defaults(row)
        features = FeatureSettings(**dict((row.settings or {}).get("features", {})))
    name = f"lc-{synth}-{n_train}-{val}-{test}-{duration:g}s-s{seed}"
    try:
        settings = DatasetSettings(
            synth=synth, size=total, sample_rate=defaults.sample_rate, duration=duration,
            note_off=min(defaults.note_off, 0.75 * duration), note=defaults.note, velocity=defaults.velocity,
            split=(n_train / total, val / total, test / total), seed=seed, store="features", features=features,
            shard_size=auto_shard_size(duration, defaults.sample_rate, features, "features"))
    except ValidationError as exc:
        raise AsmError(f"bad learning-curve settings: {exc.errors()[0]['msg']}") from None
    if settings.split_counts() != (n_train, val, test):
        raise AsmError(f"cannot split {total} examples into exactly {n_train}/{val}/{test}; change --val or --test")
    generate_dataset(name, settings, workers=workers, reporter=MessageReporter(event))
    return name


def learning_curve(synth: str, config: str, sizes: list[int], *, val: int = 1000, test: int = 200,
                   duration: float = 1.0, seed: int = 0, device: str = "auto", workers: int | str = "auto",
                   epochs: int | None = None, event: Callable[[str], None] = lambda text: None) -> dict:
    from sqlalchemy import select

    from asm.models.evaluate import test_model
    from asm.models.training import train_model
    from asm.registry.db import session_scope
    from asm.registry.models import Model

    if val < 1 or test < 1:
        raise AsmError("--val and --test must be at least 1")
    dataset = curve_dataset(synth, sizes, val, test, duration, seed, workers, event)
    rows = []
    for n in sizes:
        name = f"lc-{config}-{dataset}-n{n}"
        with session_scope() as session:
            existing = session.scalar(select(Model).where(Model.name == name))
            status = existing.status if existing is not None else None
        if status == "complete":
            event(f"size {n}: reusing model {name}")
            with session_scope() as session:
                m = session.scalar(select(Model).where(Model.name == name))
                trained = {"epochs": m.epochs_done, "best_epoch": m.best_epoch, "best_val_loss": m.best_val_loss,
                           "baseline_val_loss": m.baseline_val_loss, "seconds": m.seconds}
        else:
            event(f"size {n}: training {name}")
            trained = train_model(config, dataset, device=device, seed=seed, name=name, train_limit=n,
                                  epochs=epochs, resume=name if status is not None else None)
        scored = test_model(name, "test", None, workers)
        mr = scored["summary"].get("mr-stft", {})
        rows.append({"size": n, "model": name, "epochs": trained["epochs"], "best_epoch": trained["best_epoch"],
                     "val_loss": trained["best_val_loss"], "baseline_val_loss": trained["baseline_val_loss"],
                     "median_mr_stft": mr.get("median"), "mean_mr_stft": mr.get("mean"),
                     "train_seconds": trained["seconds"], "test_run": scored["run_id"]})
    return {"synth": synth, "config": config, "dataset": dataset, "val": val, "test": test, "seed": seed,
            "rows": rows}
