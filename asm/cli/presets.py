"""Preset commands: ``import-presets`` and ``export-preset``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from asm.audio.io import check_writable
from asm.cli import choices
from asm.cli.app import app, console, err_console
from asm.errors import AsmError
from asm.presets.exporter import export_preset
from asm.presets.importer import expand, import_presets
from asm.registry.db import session_scope
from asm.registry.synths import find_preset, get_synth, space_of

SYSTEM_DIRS = ("/usr/share/", "/usr/lib/", "/usr/local/share/", "/opt/")


@app.command("import-presets")
def import_presets_cmd(
    patterns: list[str] = typer.Argument(..., help="Preset files or quoted globs (.fxp .fxb .vstpreset .json .bank)."),
    synth: str = typer.Option(..., "--synth", "-s", help="Registered synth the presets are for."),
    origin: choices.Origin | None = typer.Option(None, "--origin", help="factory or user (default: factory for files "
                                         "under system directories such as /usr/share, else user)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Import preset files; duplicates (same values) are skipped, bad files listed with the reason."""
    files, unmatched = expand(patterns)
    if not files:
        raise AsmError(f"no preset files match {' '.join(patterns)}")
    chosen = origin.value if origin is not None else ("factory" if all(str(f.resolve()).startswith(SYSTEM_DIRS) for f in files) else "user")
    with session_scope() as session:
        row = get_synth(session, synth)
        with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                      TimeElapsedColumn(), console=err_console, transient=True, disable=as_json) as progress:
            task = progress.add_task("", total=len(files))
            report = import_presets(session, row, files, chosen,
                                    on_file=lambda p: progress.update(task, advance=1, description=p.name))
    report.failed = [(p, r) for p, r in unmatched] + report.failed
    summary = report.as_dict()
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        table = Table(title=f"import into {synth}")
        for col in ("imported", "duplicates", "failed"):
            table.add_column(col, justify="right")
        table.add_row(str(summary["imported"]), str(summary["duplicates"]), str(summary["failed"]))
        console.print(table)
        for path, reason in report.failed:
            console.print(f"[red]failed[/red] {path}: {reason}", highlight=False, soft_wrap=True)
    if report.failed and not report.imported and not report.duplicates:
        raise AsmError(f"no presets imported: {len(report.failed)} file(s) failed")
    if report.failed:  # some files failed: the good ones are kept, the exit status says it
        raise typer.Exit(1)


@app.command("export-preset")
def export_preset_cmd(
    synth: str = typer.Option(..., "--synth", "-s", help="Registered synth."),
    preset: str = typer.Option(..., "--preset", "-p", help="Preset name (or #id)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .fxp/.fxb (VST2), .vstpreset (VST3), "
                             ".bank (amsynth) or .json (any synth)."),
) -> None:
    """Write a stored preset in the synth's native format, or as asm's JSON."""
    check_writable(out)
    with session_scope() as session:
        row = get_synth(session, synth)
        item = find_preset(session, row, preset)
        fmt = export_preset(row, space_of(row), item, out)
        name = item.name
    console.print(f"wrote [bold]{out}[/bold] ({fmt}): preset {name!r} of {synth}")
