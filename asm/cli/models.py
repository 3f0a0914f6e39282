"""Estimator commands: ``train-model``, ``test-model``, ``list-models``, ``show-model``."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.table import Table
from sqlalchemy import select

from asm.cli import choices
from asm.cli.app import app, console, err_console
from asm.cli.progress import RichReporter
from asm.errors import AsmError
from asm.models.evaluate import test_model
from asm.registry.db import session_scope
from asm.registry.models import Model


@app.command("train-model")
def train_model_cmd(
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Model config name (fixtures/models/*.py)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Generated dataset to train on."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Maximum epochs (default: the config's)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Examples per batch (default: the "
                                             "config's)."),
    lr: Optional[float] = typer.Option(None, "--lr", callback=choices.positive,
                                       help="Peak learning rate (cosine decay), greater than 0."),
    patience: Optional[int] = typer.Option(None, "--patience", min=1,
                                           help="Epochs without improvement before stopping."),
    device: choices.Device = typer.Option(choices.Device.auto, "--device", help="Where to train (auto: CUDA when "
                                          "present)."),
    seed: int = typer.Option(0, "--seed", min=0),
    name: Optional[str] = typer.Option(None, "--name", help="Model name (default CONFIG-DATASET-sSEED)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue an interrupted model (name or #id)."),
    stream: Optional[int] = typer.Option(None, "--stream", min=1, help="Train each epoch on this many fresh "
                                         "examples rendered while training (the dataset gives validation)."),
    workers: str = typer.Option("auto", "--workers", "-j", help="Render workers of --stream (auto = cores)."),
    canonical: bool = typer.Option(False, "--canonical", help="Labels in the canonical order of the synth's "
                                   "interchangeable parameter groups (asm-sub: its two oscillators at one pitch)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object at the end."),
) -> None:
    """Train a model config on a dataset; keeps the best checkpoint, resumable after Ctrl-C or kill -9."""
    from asm.models.training import train_model

    if not resume and (not config or not dataset):
        raise AsmError("give --config and --dataset (or --resume MODEL)")
    out = err_console if as_json else console
    try:
        with RichReporter(out, transient=False, keep=True) as reporter:
            result = train_model(config or "", dataset or "", epochs=epochs, batch_size=batch_size, lr=lr,
                                 patience=patience, device=device.value, seed=seed, name=name, resume=resume,
                                 reporter=reporter, stream=stream, workers=workers,
                                 canonical=canonical)
    except KeyboardInterrupt:
        target = resume or name or (f"{config}-{dataset}-s{seed}" if config and dataset else "MODEL")
        err_console.print(f"[bold red]interrupted[/bold red]: completed epochs are saved; continue with "
                          f"asm train-model --resume {target}")
        raise typer.Exit(130)
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(title=f"trained {result['name']} (#{result['model_id']})")
    table.add_column("field")
    table.add_column("value", justify="right")
    for key in ("arch", "dataset", "device", "epochs", "best_epoch", "best_val_loss", "baseline_val_loss", "seconds",
                "data_wait_share", "streamed_examples"):
        value = result.get(key)
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


@app.command("test-model")
def test_model_cmd(
    model: str = typer.Argument(..., help="Model name or #id."),
    split: choices.Split = typer.Option(choices.Split.test, "--split", help="Split of the model's dataset."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Score only the first N examples."),
    workers: str = typer.Option("auto", "--workers", "-j", help="Render workers (auto = cores)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Score a model: parameter MAE/accuracy and audio metrics of its predictions rendered with the same notes."""
    out = err_console if as_json else console
    with RichReporter(out) as reporter:
        result = test_model(model, split.value, limit, workers, reporter=reporter)
    if as_json:
        typer.echo(json.dumps(result))
        return
    console.print(summary_table(f"{result['model']} on {result['dataset']}/{result['split']} "
                                f"({result['examples']} examples, {result['seconds']:.1f} s; run #{result['run_id']})",
                                {result["model"]: result["summary"]}))


def summary_table(title: str, rows: dict[str, dict]) -> Table:
    """Models x metrics (median, with the mean beside it)."""
    from asm.audio.metrics import REPORT_METRICS

    keys = [*REPORT_METRICS, "param_mae", "param_accuracy"]
    table = Table(title=title)
    table.add_column("model")
    for k in keys:
        table.add_column(f"{k}\nmedian (mean)", justify="right")
    for name, summary in rows.items():
        cells = []
        for k in keys:
            s = summary.get(k)
            cells.append("-" if s is None else f"{s['median']:.3f} ({s['mean']:.3f})")
        table.add_row(name, *cells)
    return table


@app.command("list-models")
def list_models(as_json: bool = typer.Option(False, "--json")) -> None:
    """Trained models with their dataset, status and validation loss against the mean-predictor baseline."""
    with session_scope() as session:
        rows = [{"id": m.id, "name": m.name, "arch": m.arch, "config": m.config.name, "dataset": m.dataset.name,
                 "synth": m.synth.name, "status": m.status, "epochs": m.epochs_done, "best_val_loss": m.best_val_loss,
                 "baseline_val_loss": m.baseline_val_loss, "seconds": m.seconds, "device": m.device}
                for m in session.scalars(select(Model).order_by(Model.id))]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title="models")
    for col in ("id", "name", "arch", "dataset", "status", "epochs", "val loss", "baseline", "seconds"):
        table.add_column(col)
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        table.add_row(str(r["id"]), r["name"], r["arch"], r["dataset"], r["status"], str(r["epochs"]),
                      fmt(r["best_val_loss"]), fmt(r["baseline_val_loss"]), f"{r['seconds']:.0f}")
    console.print(table)


@app.command("show-model")
def show_model(model: str = typer.Argument(..., help="Model name or #id."),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """A model's settings, parameter order and per-epoch metrics."""
    from asm.models.estimator import find_model

    with session_scope() as session:
        m = find_model(session, model)
        data = {"id": m.id, "name": m.name, "arch": m.arch, "config": m.config.name, "dataset": m.dataset.name,
                "synth": m.synth.name, "status": m.status, "seed": m.seed, "device": m.device,
                "train_settings": m.train_settings, "config_settings": m.config_settings,
                "feature_settings": m.feature_settings, "sample_rate": m.sample_rate,
                "free_parameters": [p["name"] for p in m.free_parameters], "free_signature": m.free_signature,
                "lock_signature": m.lock_signature, "checkpoint": m.checkpoint, "best_epoch": m.best_epoch,
                "best_val_loss": m.best_val_loss, "baseline_val_loss": m.baseline_val_loss, "seconds": m.seconds,
                "code_version": m.code_version,
                "epochs": [{"epoch": e.epoch, "train_loss": e.train_loss, "val_loss": e.val_loss, "lr": e.lr,
                            "seconds": e.seconds, "parts": dict(e.parts or {})} for e in m.epochs]}
    if as_json:
        typer.echo(json.dumps(data, default=str))
        return
    console.print_json(json.dumps({k: v for k, v in data.items() if k != "epochs"}, default=str))
    table = Table(title="epochs")
    for col in ("epoch", "train", "val", "lr", "s"):
        table.add_column(col, justify="right")
    for e in data["epochs"]:
        table.add_row(str(e["epoch"]), f"{e['train_loss']:.4f}", f"{e['val_loss']:.4f}", f"{e['lr']:.2e}",
                      f"{e['seconds']:.1f}")
    console.print(table)


@app.command("delete-model")
def delete_model_cmd(
    model: str = typer.Argument(..., help="Model name or #id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Delete without asking (needed when not at a terminal)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Delete a model's registry rows and its checkpoints (refused while it trains); its results stay, unlinked."""
    from asm.models.checkpoint import delete_model, describe_model

    info = describe_model(model)
    what = f"model {info['name']} ({info['status']}, {info['epochs']} epochs, {info['bytes'] / 1e6:,.1f} MB)"
    if not yes:
        if not sys.stdin.isatty():
            raise AsmError(f"delete-model removes {what} and its checkpoints: add --yes to confirm")
        typer.confirm(f"delete {what} and its checkpoints?", abort=True)
    info = delete_model(model)
    if as_json:
        typer.echo(json.dumps({"deleted": info["name"], "id": info["id"], "bytes": info["bytes"]}))
        return
    console.print(f"deleted {what}")
