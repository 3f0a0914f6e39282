"""MIDI commands: ``partition-midi``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from asm.cli import choices
from asm.cli.app import app, console, err_console
from asm.errors import AsmError
from asm.midi.partition import ChunkFilter, partition_dir


@app.command("partition-midi")
def partition_midi_cmd(
    src: Path = typer.Argument(..., help="Directory of MIDI files (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the chunk files."),
    length: float = typer.Option(3.0, "--length", callback=choices.seconds, help="Chunk length in seconds."),
    pitch_range: Optional[str] = typer.Option(None, "--pitch-range", help="Keep notes in LOW:HIGH (e.g. 36:96 or C2:C7)."),
    max_polyphony: Optional[int] = typer.Option(None, "--max-polyphony", min=1, help="Drop chunks with more notes at once."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Cut MIDI files into LENGTH-second chunks (tracks merged, notes closed at chunk edges) for poly datasets.

    Corrupt files are listed and skipped; empty chunks are dropped.
    """
    from asm.data.settings import parse_range

    if not length > 0 or length > 600:
        raise AsmError(f"--length must be in (0, 600] seconds, got {length}")
    low, high = parse_range(pitch_range, "--note-range", 0, 127) if pitch_range else (0, 127)
    report = partition_dir(src, length, out, ChunkFilter(low, high, max_polyphony))
    if as_json:
        typer.echo(json.dumps({"out": str(out), **report.as_dict()}))
        return
    for path, reason in report.corrupt:
        err_console.print(f"[yellow]skipped[/yellow] {path}: {reason}", highlight=False)
    dropped = []
    if report.dropped_empty:
        dropped.append(f"{report.dropped_empty} empty")
    if report.dropped_polyphony:
        dropped.append(f"{report.dropped_polyphony} over {max_polyphony} voices")
    console.print(f"wrote {report.chunks} chunks of {length:g} s from {report.files} MIDI file(s) to {out}"
                  + (f"; dropped {', '.join(dropped)} chunks" if dropped else "")
                  + (f"; {report.notes_outside_range} notes outside {low}:{high} left out" if report.notes_outside_range else "")
                  + (f"; skipped {len(report.corrupt)} corrupt file(s)" if report.corrupt else ""))
