"""``asm update-registry``: apply fixture files (Python files declaring asm config objects)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from asm.cli.app import app, console
from asm.registry.db import session_scope
from asm.registry.fixtures import apply_fixtures


@app.command("update-registry")
def update_registry(
    fixtures: list[Path] = typer.Argument(..., help="Fixture files (.py) defining FIXTURE = [config objects]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the fixtures without writing anything."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Validate fixtures whole, then apply them in one transaction and log them (fixture_log)."""
    with session_scope() as session:
        results = apply_fixtures(session, fixtures, dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(results))
        return
    for result in results:
        if not result["applied"]:
            console.print(f"[green]ok[/green] {result['path']}: {len(result['items'])} item(s) valid (dry run)")
            continue
        console.print(f"applied [bold]{result['path']}[/bold] (fixture_log #{result['log_id']})")
        for line in result["items"]:
            console.print(f"  {line}", highlight=False, soft_wrap=True)
