"""``asm match``: find the preset of a synth that reproduces a target sound."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from asm.cli import choices
from asm.cli.app import app, console, err_console
from asm.cli.progress import RichReporter
from asm.match.command import MatchOptions, run_match
from asm.render import resolve_workers


@app.command("match")
def match(
    target: Path = typer.Argument(..., help="Target sound: any file libsndfile reads (wav, flac, ogg, aiff), "
                                            "any rate, mono or stereo."),
    synth: str = typer.Option("asm-sub", "--synth", "-s", help="Registered synth to match with."),
    method: choices.MatchMethod | None = typer.Option(None, "--method", "-m", help="Default: the "
                                         "best available (hybrid: NSGA-II seeded by a trained model when one "
                                         "exists for this synth and lock set, by nearest neighbours otherwise)."),
    model: str | None = typer.Option(None, "--model", help="Trained model (name or #id); default: the best "
                                        "one for this synth and lock set."),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset to take nearest neighbours from; "
                                          "default: the model's, else the newest of this synth and lock set."),
    budget: int | None = typer.Option(None, "--budget", min=1, help="Renders the search may use "
                                         "(default: the recipe's, 1500)."),
    time_limit: float | None = typer.Option(None, "--time-limit", callback=choices.positive,
                                            help="Stop the search after this many seconds."),
    note: str = typer.Option("auto", "--note", help="auto (detect pitch and timing) or a note (60, C4) held "
                             "over the detected span."),
    midi: Path | None = typer.Option(None, "--midi", help="Play these notes (a MIDI file; needed for "
                                        "polyphonic targets)."),
    search: str = typer.Option("asm", "--search", help="Search recipe (fixtures/search): asm, autosoundmatch, ..."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of every random choice."),
    out_dir: Path | None = typer.Option(None, "--out-dir", help="Output directory "
                                           "(default: data/matches/<target>-<n>)."),
    workers: str = typer.Option("auto", "--workers", "-j", help="Render processes (auto = number of cores)."),
    crop: str | None = typer.Option(None, "--crop", help="Match only START:END (seconds) of the target file, "
                                     "e.g. 12.5:20 or :10. A target (or crop) may last at most 30 s."),
    proxy: str | None = typer.Option(None, "--proxy", help="Trained proxy (name or #id) that screens the search: "
                                     "method proxy (default: the synth's newest for its current locks), or hybrid "
                                     "when given (synths without a twin only)."),
    as_json: bool = typer.Option(False, "--json", help="Print match.json to stdout."),
) -> None:
    """Match a target sound: writes the best preset (native format), the top of the Pareto front,
    the rendered match, a spectrogram picture and match.json, and stores the result."""
    from rich.table import Table

    opts = MatchOptions(target=target, synth=synth, method=method.value if method is not None else None,
                        model=model, dataset=dataset, search=search,
                        budget=budget, time_limit=time_limit, note=note, midi=midi, seed=seed, out_dir=out_dir,
                        workers=resolve_workers(workers), crop=crop, proxy=proxy)
    with RichReporter(err_console, quiet=as_json) as reporter:
        doc = run_match(opts, reporter=reporter)
    if as_json:
        typer.echo(json.dumps(doc))
        return
    notes = ", ".join(f"{n['pitch']}@{n['start']:.2f}+{n['duration']:.2f}s" for n in doc["notes"][:6])
    more = f" (+{len(doc['notes']) - 6})" if len(doc["notes"]) > 6 else ""
    table = Table(title=f"match of {target.name} with {doc['synth']}: {doc['method']}"
                        + (f", model {doc['model']}" if doc.get("model") else "")
                        + (f", neighbours from {doc['dataset']}" if doc.get("dataset") else "")
                        + (f", screened by proxy {doc['proxy']}" if doc.get("proxy") else ""))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in doc["metrics"].items():
        table.add_row(name, f"{value:.4f}")
    table.add_row("renders", str(doc["renders"]))
    table.add_row("seconds", f"{doc['seconds']:.1f}")
    table.add_row("stopped by", doc["stopped"])
    table.add_row("best came from", doc["best_source"])
    if doc.get("screened"):
        table.add_row("proposals the proxy screened", str(doc["screened"]))
    console.print(table)
    console.print(f"notes ({doc['notes_from']}): {notes}{more}", highlight=False)
    console.print(f"preset: [bold]{doc['files']['preset']}[/bold]", highlight=False)
    console.print(f"match audio, picture, Pareto presets and match.json in {Path(doc['files']['match_json']).parent}"
                  f" (result #{doc['result_id']}, run #{doc['run_id']})", highlight=False)
