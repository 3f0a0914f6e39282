"""Benchmark commands: ``ood-targets`` (out-of-domain targets), ``results`` (runs and their tables),
``report`` (rewrite a run's HTML report) and ``benchmark`` (the mono/poly benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from asm.cli.app import app, console


@app.command("ood-targets")
def ood_targets_cmd(
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Directory for the targets (default: <data dir>/targets/ood)."),
    soundfont: Path = typer.Option(Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), "--soundfont",
                                   help="A General MIDI SoundFont (Debian fluid-soundfont-gm)."),
    sr: int = typer.Option(44100, "--sr", help="Sample rate of the written files."),
    duration: float = typer.Option(2.0, "--duration", help="Seconds per target."),
    note_off: float = typer.Option(1.5, "--note-off", help="Seconds until the notes are released."),
    force: bool = typer.Option(False, "--force", help="Render again even when the set is up to date."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Render out-of-domain benchmark targets: 32 real instrument notes and 16 chords from a GM SoundFont.

    Needs pyfluidsynth (pip install -e '.[ood]') and Debian's libfluidsynth3 and fluid-soundfont-gm
    (make system-deps); `make ood-targets` does both. Benchmarks use the set when it is present.
    """
    from rich.progress import Progress

    from asm.bench.ood import default_dir, make_ood_targets

    directory = out or default_dir()
    with Progress(console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task("rendering targets", total=None)
        manifest = make_ood_targets(directory, soundfont=soundfont, sample_rate=sr, duration=duration,
                                    note_off=note_off, force=force,
                                    progress=lambda n, total: bar.update(task, completed=n, total=total))
    if as_json:
        typer.echo(json.dumps({**manifest, "directory": str(directory)}))
        return
    counts = {s: sum(t["set"] == s for t in manifest["targets"]) for s in ("mono", "poly")}
    verb = "already up to date" if manifest["outcome"] == "up to date" else "wrote"
    console.print(f"{verb}: {counts['mono']} mono notes and {counts['poly']} chords in [bold]{directory}[/bold] "
                  f"({manifest['sample_rate']} Hz, {manifest['duration']:g} s, note-off {manifest['note_off']:g} s; "
                  f"manifest.json lists programs and notes)")
