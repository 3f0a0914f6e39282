"""``asm register-synth``: add a VST2/VST3 plugin to the registry, or bring it up to date."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer

from asm.cli.app import app, console, err_console
from asm.registry.backup import backup
from asm.registry.db import session_scope
from asm.registry.synths import register_plugin, registration_losses, space_of
from asm.synth.plugin import describe_plugin


@app.command("register-synth")
def register_synth(
    name: str = typer.Argument(..., help="Name for the synth in the registry, e.g. amsynth."),
    path: Path = typer.Option(..., "--path", help="VST2 .so or VST3 bundle."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    replace: bool = typer.Option(False, "--replace", help="Allow an update that loses stored work (another "
                                 "plugin, parameters that presets or locks use); the registry is backed up first."),
) -> None:
    """Read every parameter of a plugin (loaded in a child process) and store them.

    Registering again updates the synth in place: locks and presets are kept, changes are listed.
    An update that would lose stored work is refused unless --replace.
    """
    info = describe_plugin(path.resolve() if path.exists() else path)
    backup_file = None
    if replace:
        with session_scope() as session:
            losses = registration_losses(session, name, info)
        if losses:
            say = err_console if as_json else console
            backup_file = backup()
            for loss in losses:
                say.print(f"[yellow]--replace:[/yellow] will {loss}", highlight=False, soft_wrap=True)
            say.print(f"backed up the registry to [bold]{backup_file}[/bold] (asm restore FILE brings it back)",
                          highlight=False, soft_wrap=True)
    with session_scope() as session:
        row, changes, created = register_plugin(session, name, info, replace=replace)
        space = space_of(row)
        kinds = Counter(p.kind.value for p in space.params)
        result = {
            "name": row.name, "kind": row.kind, "path": row.path, "plugin_id": row.plugin_id,
            "created": created, "changes": changes, "parameter_count": space.size, "free_count": space.n_free,
            "kinds": dict(kinds), "preset_count": len(row.presets),
            "backup": str(backup_file) if backup_file else None,
        }
    if as_json:
        typer.echo(json.dumps(result))
        return
    kind_text = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    verb = "registered" if created else "updated"
    console.print(f"{verb} [bold]{name}[/bold]: {row.kind} plugin {row.path} (id {row.plugin_id or '?'}), "
                  f"{space.size} parameters ({kind_text})")
    if not created:
        if changes:
            console.print("[yellow]the plugin changed:[/yellow]")
            for change in changes:
                console.print(f"  {change}", highlight=False)
        else:
            console.print("no parameter changes")
        console.print(f"kept {result['preset_count']} preset(s) and {space.size - space.n_free} lock(s)")
