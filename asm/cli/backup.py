"""``asm backup`` and ``asm restore``: copies of the registry (SQLite's online backup API)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from asm.cli.app import app, console
from asm.registry.backup import backup, registry_file, restore


@app.command("backup")
def backup_cmd(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Backup file (default: backups/asm-DATE-TIME.db "
                                       "beside the registry)."),
) -> None:
    """Copy the registry to a file, consistently, even while other commands use it."""
    written = backup(out)
    console.print(f"backed up the registry to [bold]{written}[/bold]", highlight=False, soft_wrap=True)


@app.command("restore")
def restore_cmd(
    path: Path = typer.Argument(..., help="A file written by asm backup."),
) -> None:
    """Replace the registry with a backup (the current registry is backed up first)."""
    saved = restore(path)
    if saved is not None:
        console.print(f"saved the previous registry as [bold]{saved}[/bold]", highlight=False, soft_wrap=True)
    console.print(f"restored [bold]{registry_file()}[/bold] from {path}", highlight=False, soft_wrap=True)
