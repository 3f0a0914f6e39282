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
                                            "the embedding search (default: max(3 k, 24))."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Output directory (default: data/finds/"
                                           "<target>-<n>)."),
    workers: str = typer.Option("auto", "--workers", "-j", help="Render processes (auto = number of cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print find.json to stdout."),
) -> None:
    """The stored presets nearest a target: an embedding search over an index of the synth's presets
    (built once, cached), then real renders with the target's notes ranked by the headline metric."""
    from asm.cli.progress import RichReporter
    from asm.proxy.find import FindOptions, find_presets
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
