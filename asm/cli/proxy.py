"""Neural proxy commands: ``train-proxy``, ``test-proxy``, ``find-presets``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from asm.cli.app import app, console, err_console


@app.command("find-presets")
def find_presets_cmd(
    target: Path = typer.Argument(..., help="Target sound (any file libsndfile reads)."),
    synth: str = typer.Option("amsynth", "--synth", "-s", help="Registered synth whose stored presets to search."),
    k: int = typer.Option(10, "-k", min=1, help="Presets to return."),
    note: str = typer.Option("auto", "--note", help="auto (detect pitch and timing) or a note (60, C4)."),
    midi: Optional[Path] = typer.Option(None, "--midi", help="Play these notes (a MIDI file)."),
    shortlist: Optional[int] = typer.Option(None, "--shortlist", min=1, help="Presets rendered for real after "
                                            "the embedding search (default: max(10 k, 100))."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Output directory (default: data/finds/"
                                           "<target>-<n>)."),
    workers: str = typer.Option("auto", "--workers", "-j", help="Render processes (auto = number of cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print find.json to stdout."),
) -> None:
    """The stored presets nearest a target: an embedding search over an index of the synth's presets
    (built once, cached), then real renders with the target's notes ranked by the headline metric."""
    from asm.cli.progress import RichReporter
    from asm.match.find import FindOptions, find_presets
    from asm.render import resolve_workers

    opts = FindOptions(target=target, synth=synth, k=k, note=note, midi=midi, shortlist=shortlist,
                       out_dir=out_dir, workers=resolve_workers(workers))
    with RichReporter(err_console, quiet=as_json) as reporter:
        doc = find_presets(opts, reporter=reporter)
    if as_json:
        typer.echo(json.dumps(doc))
        return
    table = Table(title=f"presets of {doc['synth']} nearest {target.name} ({doc['renders']} rendered of "
                        f"{doc['presets_indexed']}, {doc['seconds']:.1f} s)")
    for col in ("rank", "preset", "perceptual", "mr-stft", "embedding"):
        table.add_column(col, justify="left" if col == "preset" else "right")
    for f in doc["found"]:
        table.add_row(str(f["rank"]), f"{f['name']} (#{f['preset_id']})", f"{f['metrics']['perceptual']:.4f}",
                      f"{f['metrics'].get('mr-stft', float('nan')):.4f}", f"{f['embedding_distance']:.3f}")
    console.print(table)
    console.print(f"renders, presets, target and spectrograms.png in {Path(doc['files']['find_json']).parent}",
                  highlight=False)


@app.command("train-proxy")
def train_proxy_cmd(
    synth: Optional[str] = typer.Option(None, "--synth", "-s", help="The synth the dataset was rendered with "
                                        "(checked)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Generated dataset to train on."),
    config: str = typer.Option("proxy-mlp", "--config", "-c", help="Proxy config (fixtures/proxies/*.py): "
                               "proxy-mlp, proxy-highway, proxy-transformer."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Maximum epochs (default: the config's)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate, greater than 0."),
    patience: Optional[int] = typer.Option(None, "--patience", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, "--seed", min=0),
    name: Optional[str] = typer.Option(None, "--name", help="Proxy name (default CONFIG-DATASET-sSEED)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue an interrupted proxy (name or #id)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object at the end."),
) -> None:
    """Train a neural proxy: free parameters -> audio embedding of the render (resumable)."""
    from asm.cli.progress import RichReporter
    from asm.errors import AsmError
    from asm.proxy.train import train_proxy

    if not resume and not dataset:
        raise AsmError("give --dataset (or --resume PROXY)")
    if synth is not None and dataset:
        _check_dataset_synth(dataset, synth)
    try:
        with RichReporter(err_console if as_json else console, transient=False, keep=True) as reporter:
            result = train_proxy(config, dataset or "", epochs=epochs, batch_size=batch_size, lr=lr,
                                 patience=patience, device=device, seed=seed, name=name, resume=resume,
                                 reporter=reporter)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/bold red]: completed epochs are saved; continue with "
                          f"asm train-proxy --resume {resume or name or 'PROXY'}")
        raise typer.Exit(130)
    if as_json:
        typer.echo(json.dumps(result))
        return
    _table(f"trained proxy {result['name']} (#{result['proxy_id']})", result)


def _check_dataset_synth(dataset: str, synth: str) -> None:
    from asm.data.store import get_dataset
    from asm.errors import AsmError
    from asm.registry.db import session_scope
    from asm.registry.synths import get_synth

    with session_scope() as session:
        row = get_synth(session, synth)
        ds = get_dataset(session, dataset)
        if ds.synth_id != row.id:
            raise AsmError(f"dataset {dataset} was rendered with {ds.synth.name}, not {synth}")


def _table(title: str, result: dict) -> None:
    table = Table(title=title)
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


@app.command("test-proxy")
def test_proxy_cmd(
    proxy: str = typer.Argument(..., help="Trained proxy (name or #id)."),
    presets: Optional[int] = typer.Option(None, "--presets", min=2, help="Factory presets to rank (a seeded "
                                          "sample; default: all)."),
    seed: int = typer.Option(0, "--seed", min=0),
    workers: str = typer.Option("auto", "--workers", "-j", help="Render processes (auto = number of cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object at the end."),
) -> None:
    """Score a proxy: L1 to the audio embedding, MRR over factory presets, Spearman against true audio
    distances; stored as a test-proxy run."""
    from asm.cli.progress import RichReporter
    from asm.proxy.evaluate import test_proxy
    from asm.render import resolve_workers

    with RichReporter(err_console, quiet=as_json) as reporter:
        result = test_proxy(proxy, presets=presets, seed=seed, workers=resolve_workers(workers), reporter=reporter)
    if as_json:
        typer.echo(json.dumps(result))
        return
    _table(f"test of proxy {result['proxy']} (run #{result['run_id']})", result)


@app.command("finetune-model")
def finetune_model_cmd(
    model: str = typer.Argument(..., help="Trained model (name or #id), trained on its parameter loss."),
    proxy: str = typer.Option(..., "--proxy", help="Trained proxy of the same synth and locks (name or #id)."),
    epochs: int = typer.Option(10, "--epochs", min=1),
    weight: float = typer.Option(1.0, "--weight", min=0.0, help="Weight of the proxy embedding loss beside the "
                                 "parameter loss."),
    lr: float = typer.Option(3e-4, "--lr", help="Peak learning rate, greater than 0."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Default: the model's."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, "--seed", min=0),
    name: Optional[str] = typer.Option(None, "--name", help="New model's name (default MODEL-ft-PROXY)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object at the end."),
) -> None:
    """Fine-tune an estimator through a frozen proxy (parameter loss + proxy embedding loss) into a new model."""
    from asm.cli.progress import RichReporter
    from asm.proxy.finetune import finetune_model

    with RichReporter(err_console if as_json else console, transient=False, keep=True) as reporter:
        result = finetune_model(model, proxy, epochs=epochs, weight=weight, lr=lr, batch_size=batch_size,
                                device=device, seed=seed, name=name, reporter=reporter)
    if as_json:
        typer.echo(json.dumps(result))
        return
    _table(f"fine-tuned model {result['name']} (#{result['model_id']})",
           {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in result.items()})
